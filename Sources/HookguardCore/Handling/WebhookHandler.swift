import Glibc
public import Logging

/// The request path, top to bottom: method → location config → secrets →
/// body → signature → envelope → spool → answer. Shared by every worker.
public final class WebhookHandler: Sendable {
    private let logger: Logger
    private let secretFiles = SecretFileCache()
    private let spools: SpoolRegistry
    private let socketForwarder = SocketForwarder()

    public convenience init(logger: Logger) {
        self.init(logger: logger, spools: SpoolRegistry())
    }

    /// `spools` decides how spool directories are flushed (tests).
    init(logger: Logger, spools: SpoolRegistry) {
        self.logger = logger
        self.spools = spools
    }

    public func handle(_ params: RequestParams, body source: inout some RequestBodySource) -> Response {
        let started = monotonicNanoseconds()
        var context = LogContext()
        let outcome = process(params, body: &source, context: &context)
        let response = outcome.response
        log(outcome, status: response.status, params: params, context: context,
            nanoseconds: monotonicNanoseconds() - started)
        return response
    }

    private struct LogContext {
        var scheme: String?
        var bytes: Int?
    }

    private func process(
        _ params: RequestParams, body source: inout some RequestBodySource, context: inout LogContext
    ) -> Outcome {
        guard params.method == "POST" else { return .methodNotAllowed(params.method) }

        let config: LocationConfig
        let secrets: [Secret]
        do {
            config = try LocationConfig(params: params)
            context.scheme = config.scheme.name
            secrets = try self.secrets(for: config)
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

        do {
            try SignatureVerifier.verify(config.scheme, secrets: secrets, params: params, body: body)
        } catch {
            return .rejected(error, status: config.rejectStatus)
        }

        let receivedAt = Timestamp.now()
        let id = DeliveryID.next(milliseconds: receivedAt.milliseconds)
        let envelope = Envelope(
            id: id, receivedAt: receivedAt, scheme: config.scheme.name, uri: params.uri,
            event: config.scheme.eventHeader.flatMap { params[$0] }, headers: params.headers, body: body)
        return forward(envelope, config: config)
    }

    /// To the socket when the location names one, else (or when the socket
    /// cannot take it) to the spool; a 200 only once one of them has it.
    private func forward(_ envelope: Envelope, config: LocationConfig) -> Outcome {
        let encoded = envelope.encoded()
        var socketFailure: SocketForwardError? = nil
        if let socket = config.socket {
            do {
                try socketForwarder.send(
                    encoded, to: socket.path, acknowledged: socket.acknowledged,
                    timeoutMilliseconds: socket.timeoutMilliseconds)
                return .accepted(envelope.id, .socket)
            } catch {
                socketFailure = error
            }
        }
        guard let spool = config.spool else {
            return .socketUnavailable(socketFailure!)
        }
        do {
            try spools.store(encoded, id: envelope.id, in: spool)
        } catch {
            return .spoolUnwritable(error, after: socketFailure)
        }
        return .accepted(envelope.id, socketFailure.map { .spoolAfterSocketFailure($0) } ?? .spool)
    }

    private func secrets(for config: LocationConfig) throws(ConfigError) -> [Secret] {
        var secrets = config.literalSecret.map { [$0] } ?? []
        if let path = config.secretFile {
            secrets += try secretFiles.secrets(at: path)
        }
        return secrets
    }

    private func log(_ outcome: Outcome, status: Int, params: RequestParams, context: LogContext, nanoseconds: UInt64) {
        var metadata: Logger.Metadata = [:]
        metadata.reserveCapacity(10)
        metadata["status"] = .string(String(status))
        metadata["outcome"] = .string(outcome.outcome)
        metadata["reason"] = .string(outcome.reason)
        metadata["uri"] = .string(params.uri)
        metadata["duration_ms"] = .string(Self.milliseconds(nanoseconds))
        if let scheme = context.scheme { metadata["scheme"] = .string(scheme) }
        if let bytes = context.bytes { metadata["bytes"] = .string(String(bytes)) }
        if case .accepted(let id, let destination) = outcome {
            metadata["id"] = .string(id.text)
            metadata["destination"] = .string(destination.name)
        }
        if let detail = outcome.detail { metadata["detail"] = .string(detail) }
        let level: Logger.Level =
            switch outcome.outcome {
            case "accepted": .info
            case "refused": .warning
            default: .error
            }
        logger.log(level: level, "request", metadata: metadata, source: "HookguardCore")
    }
}

extension WebhookHandler {
    /// `4.134` for 4 134 567 ns: milliseconds with three decimals.
    static func milliseconds(_ nanoseconds: UInt64) -> String {
        let micros = (nanoseconds + 500) / 1000
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

extension Outcome.Destination {
    var name: String {
        switch self {
        case .spool, .spoolAfterSocketFailure: "spool"
        case .socket: "socket"
        }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
