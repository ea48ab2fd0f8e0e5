internal import CNats
import FastCGI
import FoundationEssentials
import Posix
import Synchronization

/// A JetStream that verified deliveries are published to.
package struct NATSDestination: Sendable, Equatable {
    package static let defaultTimeoutMilliseconds = 2000

    /// `nats://host:port`, never with credentials in it.
    package let url: String
    /// A subject template: `{scheme}` and `{event}` are filled in per delivery.
    package let subjectTemplate: String
    /// A NATS `.creds` file (JWT and NKey seed).
    package let credentialsFile: String?
    /// A file holding an authentication token.
    package let tokenFile: String?
    /// Bounds the wait for JetStream's publish acknowledgement.
    package let timeoutMilliseconds: Int

    /// Checked as a location's HOOKGUARD_NATS_* parameters are (`Destinations`).
    package init(
        url: String, subjectTemplate: String, credentialsFile: String? = nil, tokenFile: String? = nil,
        timeoutMilliseconds: Int = NATSDestination.defaultTimeoutMilliseconds
    ) throws(ConfigError) {
        try Destinations.checkNATS(
            url: url, subjectTemplate: subjectTemplate, credentialsFile: credentialsFile,
            tokenFile: tokenFile, timeoutMilliseconds: timeoutMilliseconds)
        self.url = url
        self.subjectTemplate = subjectTemplate
        self.credentialsFile = credentialsFile
        self.tokenFile = tokenFile
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// The subject for one delivery. Header values become subject tokens only
    /// as letters, digits, `-`, `_` and single inner dots, so a sender cannot
    /// reach another subject with wildcards or spaces.
    package func subject(scheme: String, event: String?) -> String {
        subjectTemplate
            .replacing("{scheme}", with: Self.token(scheme))
            .replacing("{event}", with: event.map(Self.token) ?? "none")
    }

    static func token(_ text: String) -> String {
        let mapped = String(
            text.prefix(128).map { char -> Character in
                char.isASCII && (char.isLetter || char.isNumber || char == "-" || char == "_" || char == ".")
                    ? char : "_"
            })
        let parts = mapped.split(separator: ".", omittingEmptySubsequences: false).map { $0.isEmpty ? "_" : String($0) }
        return parts.joined(separator: ".")
    }
}

/// How one delivery is addressed in JetStream: the same for the live path and
/// for `drain --to-nats` replaying the spool, so JetStream's duplicate window
/// recognises a delivery it already has.
package struct JetStreamMessage: Sendable, Equatable {
    package var subject: String
    /// `Nats-Msg-Id`: the sender's delivery id where the scheme has one, so a
    /// sender's retry is dropped as a duplicate; else hookguard's own id.
    package var messageID: String
    /// Headers a consumer can route on without parsing the envelope.
    package var headers: [Header]

    package struct Header: Sendable, Equatable {
        package var name: String
        package var value: String
    }

    package init(id: String, scheme: String, event: String?, deliveryID: String?, destination: NATSDestination) {
        subject = destination.subject(scheme: scheme, event: event)
        messageID = deliveryID.map { "\(scheme):\($0)" } ?? "hookguard:\(id)"
        headers = [Header(name: "Hookguard-Id", value: id), Header(name: "Hookguard-Scheme", value: scheme)]
        if let event { headers.append(Header(name: "Hookguard-Event", value: event)) }
    }
}

/// Why JetStream did not acknowledge a delivery.
package struct NATSForwardError: Error, Sendable, CustomStringConvertible {
    package let url: String
    package let detail: String

    package var description: String { "NATS \(url): \(detail)" }
}

/// What JetStream answered.
package struct PublishAcknowledgement: Sendable, Equatable {
    package var stream: String
    package var sequence: UInt64
    /// JetStream had this message id within its duplicate window and kept the first.
    package var duplicate: Bool
}

/// Publishes to JetStream over one connection per server, credentials and
/// timeout (its deadlines derive from it), shared by every worker. The only
/// user of CNats.
///
/// No call here waits without a bound, and the pool's lock is never held
/// across one: the first request for a server connects (bounded by its
/// timeout) while the others find it connecting and fall back at once; a
/// connection that is down is reconnected by libnats in the background and
/// refuses publishes until its callbacks say it is back.
package final class JetStreamPublisher: Sendable {
    /// How long a connection lives.
    package enum Lifetime: Sendable {
        /// Kept for the process and reconnected in the background (`serve`).
        case process
        /// One bounded attempt, no background reconnection (plain CGI, `nats-publish`).
        case request
    }

    private struct Key: Hashable {
        var url: String, credentialsFile: String?, tokenFile: String?, timeoutMilliseconds: Int
    }

    private enum Slot {
        case connecting
        case ready(JetStreamConnection)
    }

    private let lifetime: Lifetime
    private let connections = Locked<[Key: Slot]>([:])

    package init(lifetime: Lifetime = .process) {
        self.lifetime = lifetime
    }

    /// Returns once JetStream stored the message (or recognised its id as one
    /// it has), within the destination's timeout: connecting (for the first
    /// request), writing and the acknowledgement share it.
    package func publish(
        _ data: [UInt8], as message: JetStreamMessage, to destination: NATSDestination
    ) throws(NATSForwardError) -> PublishAcknowledgement {
        let deadline = Deadline(milliseconds: destination.timeoutMilliseconds)
        let key = Key(
            url: destination.url, credentialsFile: destination.credentialsFile, tokenFile: destination.tokenFile,
            timeoutMilliseconds: destination.timeoutMilliseconds)
        let connection = try self.connection(key, for: destination)
        do {
            return try connection.publish(data, as: message, deadline: deadline, url: destination.url)
        } catch  where connection.link == .closed {
            // libnats gave up on it: the next request connects afresh.
            connections.withLock { pool in
                if case .ready(let kept) = pool[key], kept === connection { pool[key] = nil }
            }
            throw error
        }
    }

    private func connection(_ key: Key, for destination: NATSDestination) throws(NATSForwardError)
        -> JetStreamConnection
    {
        let found = connections.withLock { pool -> Result<JetStreamConnection?, NATSForwardError> in
            switch pool[key] {
            case .ready(let connection): return .success(connection)
            case .connecting:
                return .failure(
                    NATSForwardError(url: destination.url, detail: "not connected yet (another request is connecting)"))
            case nil:
                pool[key] = .connecting
                return .success(nil)
            }
        }
        if let connection = try found.get() { return connection }
        // This request connects, outside the lock.
        do {
            let made = try JetStreamConnection(destination, lifetime: lifetime)
            connections.withLock { $0[key] = .ready(made) }
            return made
        } catch {
            connections.withLock { $0[key] = nil }
            throw error
        }
    }
}

/// What libnats' callbacks last said about a connection.
enum LinkState: Int, Sendable {
    case connecting, connected, disconnected, closed
}

/// The link state of every live connection, by the number each connection's
/// callbacks receive as their closure: a callback that arrives after its
/// connection is gone finds nothing and changes nothing.
private enum Links {
    static let states = Locked<[Int: LinkState]>([:])
    static let numbers = Atomic<Int>(1)

    static func register() -> Int {
        let number = numbers.add(1, ordering: .relaxed).oldValue
        states.withLock { $0[number] = .connecting }
        return number
    }

    static func state(_ number: Int) -> LinkState { states.withLock { $0[number] ?? .closed } }

    static func set(_ closure: UnsafeMutableRawPointer?, _ state: LinkState) {
        let number = Int(bitPattern: closure)
        states.withLock { all in
            if all[number] != nil { all[number] = state }
        }
    }

    static func remove(_ number: Int) { _ = states.withLock { $0.removeValue(forKey: number) } }
}

/// One libnats connection and its JetStream context. Unchecked Sendable:
/// libnats documents both as safe to share between threads, and this class
/// only reads its pointers and number after init.
final class JetStreamConnection: @unchecked Sendable {
    private let connection: OpaquePointer
    private let context: OpaquePointer
    private let number: Int
    /// A third of the destination's timeout: what one connection attempt, one
    /// write (and the wait for another worker's write) may each take, so that
    /// with the acknowledgement a delivery stays within the timeout.
    private let stepMilliseconds: Int

    /// Connects once, within the destination's timeout. For `.process`, a
    /// failed attempt still returns: libnats keeps trying in the background.
    init(_ destination: NATSDestination, lifetime: JetStreamPublisher.Lifetime) throws(NATSForwardError) {
        let url = destination.url
        func check(_ status: natsStatus, _ what: String) throws(NATSForwardError) {
            guard status == NATS_OK else { throw NATSForwardError(url: url, detail: "\(what): \(Self.text(status))") }
        }
        let number = Links.register()
        let step = max(1, destination.timeoutMilliseconds / 3)
        var options: OpaquePointer? = nil
        do throws(NATSForwardError) {
            try check(natsOptions_Create(&options), "options")
            defer { natsOptions_Destroy(options) }
            let closure = UnsafeMutableRawPointer(bitPattern: number)
            try check(natsOptions_SetURL(options, url), "url")
            // Bounds each connect attempt: TCP connect, INFO, CONNECT and PONG together.
            try check(natsOptions_SetTimeout(options, Int64(step)), "timeout")
            // Non-blocking writes: a server that stops reading fails the write, never hangs it.
            try check(natsOptions_SetWriteDeadline(options, Int64(step)), "write deadline")
            // A publish waiting for its acknowledgement learns of a lost connection at once.
            try check(natsOptions_SetFailRequestsOnDisconnect(options, true), "fail requests on disconnect")
            try check(
                natsOptions_SetDisconnectedCB(options, { _, closure in Links.set(closure, .disconnected) }, closure),
                "callback")
            try check(
                natsOptions_SetReconnectedCB(options, { _, closure in Links.set(closure, .connected) }, closure),
                "callback")
            try check(
                natsOptions_SetClosedCB(options, { _, closure in Links.set(closure, .closed) }, closure), "callback")
            switch lifetime {
            case .process:
                // Keep trying for ever, in the background: deliveries fall back meanwhile.
                try check(natsOptions_SetMaxReconnect(options, -1), "reconnect")
                try check(natsOptions_SetReconnectWait(options, 250), "reconnect wait")
                // With a connected callback, a failed first attempt returns at once
                // (NATS_NOT_YET_CONNECTED) and the retries happen on libnats' thread.
                try check(
                    natsOptions_SetRetryOnFailedConnect(
                        options, true, { _, closure in Links.set(closure, .connected) }, closure), "retry")
            case .request:
                try check(natsOptions_SetAllowReconnect(options, false), "reconnect")
            }
            if let file = destination.credentialsFile {
                try check(natsOptions_SetUserCredentialsFromFiles(options, file, nil), "credentials file \(file)")
            }
            if let file = destination.tokenFile {
                let token: String
                do {
                    token =
                        String(decoding: try readWholeFile(file), as: UTF8.self).trimmingASCIIWhitespace().description
                } catch {
                    throw NATSForwardError(url: url, detail: "token file \(file): \(error.reason)")
                }
                try check(natsOptions_SetToken(options, token), "token")
            }
            var made: OpaquePointer? = nil
            let status = natsConnection_Connect(&made, options)
            guard status == NATS_OK || status == NATS_NOT_YET_CONNECTED, let made else {
                throw NATSForwardError(url: url, detail: "connect: \(Self.text(status)) \(Self.lastError())")
            }
            if status == NATS_OK { Links.set(closure, .connected) }
            var js: OpaquePointer? = nil
            guard natsConnection_JetStream(&js, made, nil) == NATS_OK, let js else {
                natsConnection_Destroy(made)
                throw NATSForwardError(url: url, detail: "JetStream context: \(Self.lastError())")
            }
            connection = made
            context = js
            self.number = number
            stepMilliseconds = step
        } catch {
            Links.remove(number)
            throw error
        }
    }

    deinit {
        jsCtx_Destroy(context)
        natsConnection_Destroy(connection)
        Links.remove(number)
    }

    var link: LinkState { Links.state(number) }

    func publish(
        _ data: [UInt8], as outgoing: JetStreamMessage, deadline: Deadline, url: String
    ) throws(NATSForwardError) -> PublishAcknowledgement {
        let subject = outgoing.subject
        // While libnats reconnects it holds the connection's lock across each
        // attempt: never wait on it, fall back at once.
        switch link {
        case .connected: break
        case .connecting, .disconnected:
            throw NATSForwardError(url: url, detail: "not connected (connecting in the background)")
        case .closed:
            throw NATSForwardError(url: url, detail: "connection closed")
        }
        guard let remaining = deadline.remainingMilliseconds, remaining > 2 * stepMilliseconds else {
            throw NATSForwardError(url: url, detail: "no time left to publish after connecting")
        }
        // The write, and the wait for another worker's, take up to a step each.
        let timeoutMilliseconds = remaining - 2 * stepMilliseconds
        var message: OpaquePointer? = nil
        let created = data.withUnsafeBytes { bytes in
            natsMsg_Create(
                &message, subject, nil, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
        }
        guard created == NATS_OK, let message else {
            throw NATSForwardError(url: url, detail: "message for \(subject): \(Self.text(created))")
        }
        defer { natsMsg_Destroy(message) }
        natsMsgHeader_Set(message, "Nats-Msg-Id", outgoing.messageID)
        for header in outgoing.headers {
            natsMsgHeader_Set(message, header.name, header.value)
        }
        var options = jsPubOptions()
        jsPubOptions_Init(&options)
        options.MaxWait = Int64(timeoutMilliseconds)
        var ack: UnsafeMutablePointer<jsPubAck>? = nil
        var errorCode = jsErrCode(rawValue: 0)
        let status = js_PublishMsg(&ack, context, message, &options, &errorCode)
        defer { if let ack { jsPubAck_Destroy(ack) } }
        guard status == NATS_OK, let ack else {
            let detail =
                switch status {
                case NATS_NO_RESPONDERS: "no JetStream stream takes subject \(subject)"
                case NATS_TIMEOUT: "no acknowledgement within \(timeoutMilliseconds) ms"
                default: "\(Self.text(status)) \(Self.lastError())"
                }
            throw NATSForwardError(url: url, detail: detail)
        }
        return PublishAcknowledgement(
            stream: String(cString: ack.pointee.Stream), sequence: ack.pointee.Sequence,
            duplicate: ack.pointee.Duplicate)
    }

    private static func text(_ status: natsStatus) -> String { String(cString: natsStatus_GetText(status)) }
    private static func lastError() -> String {
        var status = NATS_OK
        return nats_GetLastError(&status).map { String(cString: $0) } ?? ""
    }
}
