internal import CNats
import Synchronization

/// A JetStream that verified deliveries are published to.
public struct NATSDestination: Sendable, Equatable {
    public static let defaultTimeoutMilliseconds = 2000

    /// `nats://host:port`, never with credentials in it.
    public var url: String
    /// A subject template: `{scheme}` and `{event}` are filled in per delivery.
    public var subjectTemplate: String
    /// A NATS `.creds` file (JWT and NKey seed).
    public var credentialsFile: String?
    /// A file holding an authentication token.
    public var tokenFile: String?
    /// Bounds the wait for JetStream's publish acknowledgement.
    public var timeoutMilliseconds: Int

    public init(
        url: String, subjectTemplate: String, credentialsFile: String? = nil, tokenFile: String? = nil,
        timeoutMilliseconds: Int = NATSDestination.defaultTimeoutMilliseconds
    ) {
        self.url = url
        self.subjectTemplate = subjectTemplate
        self.credentialsFile = credentialsFile
        self.tokenFile = tokenFile
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// The subject for one delivery. Header values become subject tokens only
    /// as letters, digits, `-`, `_` and single inner dots, so a sender cannot
    /// reach another subject with wildcards or spaces.
    public func subject(scheme: String, event: String?) -> String {
        subjectTemplate
            .replacing("{scheme}", with: Self.token(scheme))
            .replacing("{event}", with: event.map(Self.token) ?? "none")
    }

    static func token(_ text: String) -> String {
        let mapped = String(text.prefix(128).map { char -> Character in
            char.isASCII && (char.isLetter || char.isNumber || char == "-" || char == "_" || char == ".") ? char : "_"
        })
        let parts = mapped.split(separator: ".", omittingEmptySubsequences: false).map { $0.isEmpty ? "_" : String($0) }
        return parts.joined(separator: ".")
    }
}

/// How one delivery is addressed in JetStream: the same for the live path and
/// for `drain --to-nats` replaying the spool, so JetStream's duplicate window
/// recognises a delivery it already has.
public struct JetStreamMessage: Sendable, Equatable {
    public var subject: String
    /// `Nats-Msg-Id`: the sender's delivery id where the scheme has one, so a
    /// sender's retry is dropped as a duplicate; else hookguard's own id.
    public var messageID: String
    /// Headers a consumer can route on without parsing the envelope.
    public var headers: [Header]

    public struct Header: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public init(id: String, scheme: String, event: String?, deliveryID: String?, destination: NATSDestination) {
        subject = destination.subject(scheme: scheme, event: event)
        messageID = deliveryID.map { "\(scheme):\($0)" } ?? "hookguard:\(id)"
        headers = [Header(name: "Hookguard-Id", value: id), Header(name: "Hookguard-Scheme", value: scheme)]
        if let event { headers.append(Header(name: "Hookguard-Event", value: event)) }
    }
}

/// Why JetStream did not acknowledge a delivery.
public struct NATSForwardError: Error, Sendable, CustomStringConvertible {
    public let url: String
    public let detail: String

    public var description: String { "NATS \(url): \(detail)" }
}

/// What JetStream answered.
public struct PublishAcknowledgement: Sendable, Equatable {
    public var stream: String
    public var sequence: UInt64
    /// JetStream had this message id within its duplicate window and kept the first.
    public var duplicate: Bool
}

/// Publishes to JetStream over one connection per server and credentials,
/// shared by every worker; libnats reconnects it on its own. The only user of CNats.
public final class JetStreamPublisher: Sendable {
    private struct Key: Hashable {
        var url: String, credentialsFile: String?, tokenFile: String?
    }

    private let connections = Mutex<[Key: JetStreamConnection]>([:])

    public init() {}

    /// Returns once JetStream stored the message (or recognised its id as one it has).
    public func publish(
        _ data: [UInt8], as message: JetStreamMessage, to destination: NATSDestination
    ) throws(NATSForwardError) -> PublishAcknowledgement {
        let connection = try self.connection(for: destination)
        return try connection.publish(
            data, as: message, timeoutMilliseconds: destination.timeoutMilliseconds, url: destination.url)
    }

    private func connection(for destination: NATSDestination) throws(NATSForwardError) -> JetStreamConnection {
        let key = Key(url: destination.url, credentialsFile: destination.credentialsFile, tokenFile: destination.tokenFile)
        let result = connections.withLock { pool -> Result<JetStreamConnection, NATSForwardError> in
            if let existing = pool[key] { return .success(existing) }
            let made = Result { () throws(NATSForwardError) in try JetStreamConnection(destination) }
            if case .success(let connection) = made { pool[key] = connection }
            return made
        }
        return try result.get()
    }
}

/// One libnats connection and its JetStream context. Unchecked Sendable:
/// libnats documents both as safe to share between threads, and this class
/// only reads its two pointers after init.
final class JetStreamConnection: @unchecked Sendable {
    private let connection: OpaquePointer
    private let context: OpaquePointer

    init(_ destination: NATSDestination) throws(NATSForwardError) {
        let url = destination.url
        func check(_ status: natsStatus, _ what: String) throws(NATSForwardError) {
            guard status == NATS_OK else { throw NATSForwardError(url: url, detail: "\(what): \(Self.text(status))") }
        }
        var options: OpaquePointer? = nil
        try check(natsOptions_Create(&options), "options")
        defer { natsOptions_Destroy(options) }
        try check(natsOptions_SetURL(options, url), "url")
        try check(natsOptions_SetTimeout(options, Int64(destination.timeoutMilliseconds)), "timeout")
        // Keep trying for ever, in the background: deliveries fall back meanwhile.
        try check(natsOptions_SetMaxReconnect(options, -1), "reconnect")
        try check(natsOptions_SetReconnectWait(options, 250), "reconnect wait")
        try check(natsOptions_SetRetryOnFailedConnect(options, true, nil, nil), "retry")
        if let file = destination.credentialsFile {
            try check(natsOptions_SetUserCredentialsFromFiles(options, file, nil), "credentials file \(file)")
        }
        if let file = destination.tokenFile {
            let token: String
            do {
                token = String(decoding: try readFile(file), as: UTF8.self).trimmingASCIIWhitespace().description
            } catch {
                throw NATSForwardError(url: url, detail: "token file \(file): \(error.reason)")
            }
            try check(natsOptions_SetToken(options, token), "token")
        }
        var made: OpaquePointer? = nil
        let status = natsConnection_Connect(&made, options)
        guard status == NATS_OK || status == NATS_NOT_YET_CONNECTED, let made else {
            throw NATSForwardError(url: url, detail: "connect: \(Self.text(status))")
        }
        var js: OpaquePointer? = nil
        guard natsConnection_JetStream(&js, made, nil) == NATS_OK, let js else {
            natsConnection_Destroy(made)
            throw NATSForwardError(url: url, detail: "JetStream context: \(Self.lastError())")
        }
        connection = made
        context = js
    }

    deinit {
        jsCtx_Destroy(context)
        natsConnection_Destroy(connection)
    }

    func publish(
        _ data: [UInt8], as outgoing: JetStreamMessage, timeoutMilliseconds: Int, url: String
    ) throws(NATSForwardError) -> PublishAcknowledgement {
        let subject = outgoing.subject
        // While libnats reconnects, a publish would only wait out its timeout.
        guard natsConnection_Status(connection) == NATS_CONN_STATUS_CONNECTED else {
            throw NATSForwardError(url: url, detail: "not connected (reconnecting in the background)")
        }
        var message: OpaquePointer? = nil
        let created = data.withUnsafeBytes { bytes in
            natsMsg_Create(&message, subject, nil, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
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
            stream: String(cString: ack.pointee.Stream), sequence: ack.pointee.Sequence, duplicate: ack.pointee.Duplicate)
    }

    private static func text(_ status: natsStatus) -> String { String(cString: natsStatus_GetText(status)) }
    private static func lastError() -> String {
        var status = NATS_OK
        return nats_GetLastError(&status).map { String(cString: $0) } ?? ""
    }
}

import FoundationEssentials
