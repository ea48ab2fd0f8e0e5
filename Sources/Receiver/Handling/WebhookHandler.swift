package import FastCGI
package import Logging
import Posix

/// The request path, top to bottom: method → location config → secrets →
/// body → signature → envelope → forward → answer. Shared by every worker.
/// A location whose `HOOKGUARD_ROLE` is `metrics` or `health` is answered by
/// `StatusResponder` instead.
package final class WebhookHandler: Sendable {
    private let logger: Logger
    private let secretFiles = SecretFileCache()
    private let spools: SpoolRegistry
    private let socketForwarder = SocketForwarder()
    private let publisher: JetStreamPublisher
    private let breakers: DestinationBreakers
    private let duplicates = DuplicateRecords()
    /// Secret file lines already logged as unusable.
    private let reportedSecrets = Locked<Set<UnusableSecret>>([])
    private let status: StatusResponder

    /// `exposition` renders the metrics registry in Prometheus text format;
    /// `connections` is `.request` where the process answers one request (CGI).
    package convenience init(
        logger: Logger, workers: WorkerStatus = WorkerStatus(total: 1),
        exposition: @escaping @Sendable () -> [UInt8] = { [] }, connections: JetStreamPublisher.Lifetime = .process
    ) {
        let spools = SpoolRegistry(reportSwept: { spool, removed, error in
            logger.sweptStaleStaged(spool: spool, removed: removed, error: error)
        })
        self.init(logger: logger, workers: workers, exposition: exposition, spools: spools, connections: connections)
    }

    /// `spools` decides how spool directories are flushed (tests).
    init(
        logger: Logger, workers: WorkerStatus = WorkerStatus(total: 1),
        exposition: @escaping @Sendable () -> [UInt8] = { [] }, spools: SpoolRegistry,
        connections: JetStreamPublisher.Lifetime = .process
    ) {
        self.logger = logger
        self.spools = spools
        self.publisher = JetStreamPublisher(lifetime: connections)
        self.breakers = DestinationBreakers(workers: workers.total, logger: logger)
        self.status = StatusResponder(workers: workers, spools: spools, exposition: exposition)
    }

    package func handle(_ params: RequestParams, body source: inout some RequestBodySource) -> Response {
        switch Role(params) {
        case .receiver:
            return receive(params, body: &source)
        case .metrics:
            return status.metrics(params, logger: logger)
        case .health:
            return status.health(params, logger: logger)
        case nil:
            let role = params[Parameter.role.rawValue] ?? ""
            let error = ConfigError(.role, "unknown role \"\(role)\"; known: \(Role.names)")
            let outcome = Outcome.configInvalid(error)
            log(outcome, status: outcome.response.status, params: params, context: LogContext(), nanoseconds: 0)
            return outcome.response
        }
    }

    /// What `--metrics-listen` serves: the same text as a metrics location.
    package func metricsText() -> [UInt8] { status.exposition() }

    private func receive(_ params: RequestParams, body source: inout some RequestBodySource) -> Response {
        let started = monotonicNanoseconds()
        var context = LogContext()
        let outcome = process(params, body: &source, context: &context)
        let response = outcome.response(acceptedBody: context.acceptedBody)
        let elapsed = monotonicNanoseconds() - started
        log(outcome, status: response.status, params: params, context: context, nanoseconds: elapsed)
        DeliveryMetrics.request(
            outcome, location: params.location, scheme: context.scheme, bytes: context.bytes, nanoseconds: elapsed)
        return response
    }

    private struct LogContext {
        var scheme: String?
        var bytes: Int?
        var senderID: String?
        /// The scheme's `acceptedBody`, once the location's configuration is read.
        var acceptedBody: String?
    }

    private func process(
        _ params: RequestParams, body source: inout some RequestBodySource, context: inout LogContext
    ) -> Outcome {
        guard params.method == "POST" else {
            if params.method == "GET", let answer = getHandshake(params, context: &context) { return answer }
            return .methodNotAllowed(params.method)
        }

        let config: LocationConfig
        let keys: [Secret]
        do {
            config = try LocationConfig(params: params)
            context.scheme = config.scheme.name
            context.acceptedBody = config.scheme.acceptedBody
            keys = try self.keys(for: config)
        } catch {
            return .configInvalid(error)
        }

        var contentLength: Int? = nil
        if let text = params["CONTENT_LENGTH"], !text.isEmpty {
            guard let length = Int(text), length >= 0 else {
                return .badRequest("Content-Length \"\(text)\" is not a number.")
            }
            contentLength = length
        }
        let body: [UInt8]
        do {
            body = try RequestBody.read(from: &source, contentLength: contentLength, limit: config.maxBody)
        } catch {
            return .body(error)
        }
        context.bytes = body.count

        let receivedAt = Timestamp.now()
        do {
            try SignatureVerifier.verify(
                config.scheme, keys: keys, params: params, body: body, now: receivedAt.seconds,
                tolerance: config.tolerance, url: config.signedURL(params))
        } catch {
            switch error {
            case .refused(let failure): return .rejected(failure, status: config.rejectStatus)
            case .crypto(let failure): return .cryptoFailed(failure)
            }
        }
        if let handshake = config.scheme.handshake, !handshake.isGET,
            let answer = Handshakes.answer(handshake, params: params, body: body, keys: keys)
        {
            return answer
        }
        let senderID = config.scheme.idHeader.flatMap { params[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        context.senderID = senderID

        return once(senderID, config: config, now: receivedAt) {
            let id = DeliveryID.next(milliseconds: receivedAt.milliseconds)
            let envelope = Envelope(
                id: id, receivedAt: receivedAt, scheme: config.scheme.name, uri: params.uri,
                event: config.scheme.eventHeader.flatMap { params[$0] }, deliveryID: senderID,
                headers: params.headers, body: body)
            return forward(envelope, config: config)
        }
    }

    /// A GET that is the location's sender checking the endpoint (Meta,
    /// Dropbox); nil for any other GET, which is answered 405.
    private func getHandshake(_ params: RequestParams, context: inout LogContext) -> Outcome? {
        guard let config = try? LocationConfig(params: params), let handshake = config.scheme.handshake, handshake.isGET
        else { return nil }
        context.scheme = config.scheme.name
        return Handshakes.answerGET(handshake, params: params) { () throws(ConfigError) -> [Secret] in
            guard let path = config.verifyTokenFile else {
                throw ConfigError(
                    .verifyTokenFile,
                    "missing; \(config.scheme.name)'s subscription check needs the verify token you gave the sender")
            }
            return try secretFiles.secrets(at: path)
        }
    }

    /// To the location's forwarder (socket reader or JetStream) when it names
    /// one and it is up, else (or when that cannot take it) to the spool; a
    /// 200 only once one of them has it.
    private func forward(_ envelope: Envelope, config: LocationConfig) -> Outcome {
        // A forwarder sends the envelope whole; the spool has it written a chunk at a time.
        let encoded = config.socket != nil || config.nats != nil ? envelope.encoded() : []
        var failure: Outcome.ForwardFailure? = nil
        if let socket = config.socket {
            let result = handOver(
                to: .socket(path: socket.path), policy: config.breaker,
                cutOff: { SocketForwardError(kind: .cutOff, path: socket.path, detail: $0.description) }
            ) { () throws(SocketForwardError) in
                try socketForwarder.send(
                    encoded, to: socket.path, acknowledged: socket.acknowledged,
                    timeoutMilliseconds: socket.timeoutMilliseconds)
            }
            switch result {
            case .success: return .accepted(envelope.id, .socket)
            case .failure(let error): failure = .socket(error)
            }
        }
        if let nats = config.nats {
            let message = JetStreamMessage(
                id: envelope.id.text, scheme: envelope.scheme, event: envelope.event,
                deliveryID: envelope.deliveryID, destination: nats)
            let result = handOver(
                to: .nats(url: nats.url), policy: config.breaker,
                cutOff: { NATSForwardError(url: nats.url, detail: $0.description) }
            ) { () throws(NATSForwardError) in
                try publisher.publish(encoded, as: message, to: nats)
            }
            switch result {
            case .success(let ack): return .accepted(envelope.id, .nats(ack))
            case .failure(let error): failure = .nats(error)
            }
        }
        guard let spool = config.spool else {
            return .forwardFailed(failure!)
        }
        let started = monotonicNanoseconds()
        do {
            try spools.store(id: envelope.id, in: spool) { fd, path throws(SystemError) in
                try envelope.write(to: fd, path: path)
            }
        } catch {
            DeliveryMetrics.forward(to: .spool, succeeded: false, nanoseconds: monotonicNanoseconds() - started)
            return .spoolUnwritable(error, after: failure)
        }
        DeliveryMetrics.forward(to: .spool, succeeded: true, nanoseconds: monotonicNanoseconds() - started)
        return .accepted(envelope.id, failure.map { .spoolAfter($0) } ?? .spool)
    }

    /// Runs `hand` if `destination`'s breaker lets it through (else the
    /// `cutOff` error, at once), timing it for the metrics and telling the
    /// breaker how it went.
    private func handOver<Success, Failure: Error & CustomStringConvertible>(
        to destination: DestinationName, policy: BreakerPolicy,
        cutOff: (CircuitBreaker.Refusal) -> Failure, _ hand: () throws(Failure) -> Success
    ) -> Result<Success, Failure> {
        let pass: CircuitBreaker.Pass
        switch breakers.admit(destination, policy: policy) {
        case .success(let admitted): pass = admitted
        case .failure(let refusal): return .failure(cutOff(refusal))
        }
        let started = monotonicNanoseconds()
        let result = Result { () throws(Failure) in try hand() }
        var failure: String? = nil
        if case .failure(let error) = result { failure = error.description }
        DeliveryMetrics.forward(
            to: destination, succeeded: failure == nil, nanoseconds: monotonicNanoseconds() - started)
        breakers.finish(destination, pass, policy: policy, failure: failure)
        return result
    }

    /// Runs `deliver` unless the location remembers deliveries
    /// (HOOKGUARD_DEDUPE) and this sender id was accepted within the window;
    /// see `DuplicateRecords` for how copies arriving together are ordered.
    private func once(
        _ senderID: String?, config: LocationConfig, now: Timestamp, deliver: () -> Outcome
    ) -> Outcome {
        guard let window = config.dedupeWindow, let senderID, let spool = config.spool else { return deliver() }
        let record: DeliveryRecord
        do {
            switch try duplicates.claim(
                senderID: senderID, scheme: config.scheme.name, spool: spool, window: window, now: now)
            {
            case .duplicate(let first): return .duplicate(of: first)
            case .first(let claimed): record = claimed
            }
        } catch {
            switch error {
            case .system(let failure): return .spoolUnwritable(failure, after: nil)
            case .busy: return .duplicateInFlight
            case .crypto(let failure): return .cryptoFailed(failure)
            }
        }
        defer { record.release() }
        let outcome = deliver()
        if case .accepted(let id, _) = outcome {
            // Stored already: a record that fails to say so only lets a retry in again.
            try? record.commit(id)
        }
        return outcome
    }

    /// The location's HMAC keys (or tokens), from its literal secret and
    /// secret file. A line of the file that cannot be a key is logged (once
    /// per line and problem) and skipped.
    private func keys(for config: LocationConfig) throws(ConfigError) -> [Secret] {
        let file = try config.secretFile.map { path throws(ConfigError) in
            (path, try secretFiles.numberedSecrets(at: path))
        }
        let keys = try LocationKeys(config.scheme, literal: config.literalSecret, file: file)
        for unusable in keys.unusable where reportedSecrets.withLock({ $0.insert(unusable).inserted }) {
            logger.warning(
                "secret-unusable",
                metadata: ["detail": .string("HOOKGUARD_SECRET_FILE \(unusable); skipped, the other lines are used")],
                source: "Receiver")
        }
        return keys.keys
    }

    /// One line per request: what happened and why, never a secret or a signature.
    private func log(_ outcome: Outcome, status: Int, params: RequestParams, context: LogContext, nanoseconds: UInt64) {
        var metadata: Logger.Metadata = [:]
        metadata.reserveCapacity(12)
        metadata["status"] = .string(String(status))
        metadata["outcome"] = .string(outcome.kind.rawValue)
        metadata["reason"] = .string(outcome.reason.description)
        metadata["uri"] = .string(params.uri)
        metadata["duration_ms"] = .string(Self.milliseconds(nanoseconds))
        if let scheme = context.scheme { metadata["scheme"] = .string(scheme) }
        if let bytes = context.bytes { metadata["bytes"] = .string(String(bytes)) }
        if case .accepted(let id, let destination) = outcome {
            metadata["id"] = .string(id.text)
            metadata["destination"] = .string(destination.kind.rawValue)
        }
        if case .duplicate(let id) = outcome { metadata["id"] = .string(id.text) }
        if let senderID = context.senderID { metadata["delivery_id"] = .string(senderID) }
        if let detail = outcome.detail { metadata["detail"] = .string(detail) }
        let level: Logger.Level =
            switch outcome.kind {
            case .accepted, .handshake: .info
            case .refused: .warning
            case .failed: .error
            }
        logger.log(level: level, "request", metadata: metadata, source: "Receiver")
    }
}

extension WebhookHandler {
    /// `4.134` for 4 134 567 ns: milliseconds with three decimals.
    package static func milliseconds(_ nanoseconds: UInt64) -> String {
        let micros = (nanoseconds + 500) / 1000
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

extension Outcome.Destination {
    var kind: DestinationName.Kind {
        switch self {
        case .spool, .spoolAfter: .spool
        case .socket: .socket
        case .nats: .nats
        }
    }
}

extension RequestParams {
    /// The location as metrics label it: `HOOKGUARD_LOCATION` when the web
    /// server names it (do so for prefix locations, so arbitrary request paths
    /// cannot multiply the series), else the request's path without its query.
    var location: String {
        if let name = self[Parameter.location.rawValue], !name.isEmpty { return String(name.prefix(128)) }
        let path = self["DOCUMENT_URI"] ?? self["SCRIPT_NAME"] ?? uri.split(separator: "?").first.map(String.init) ?? ""
        return String(path.prefix(128))
    }
}
