import Glibc
public import Logging

/// The request path, top to bottom: method → location config → secrets →
/// body → signature → envelope → spool → answer. Shared by every worker.
public final class WebhookHandler: Sendable {
    private let logger: Logger
    private let secretFiles = SecretFileCache()
    private let spools = SpoolRegistry()
    private let duplicates = DuplicateRecords()

    public init(logger: Logger) {
        self.logger = logger
    }

    public func handle(_ params: RequestParams, body source: inout some RequestBodySource) -> Response {
        let started = monotonicNanoseconds()
        var context = LogContext()
        let outcome = process(params, body: &source, context: &context)
        log(outcome, params: params, context: context, nanoseconds: monotonicNanoseconds() - started)
        return outcome.response
    }

    private struct LogContext {
        var scheme: String?
        var bytes: Int?
        var senderID: String?
    }

    private func process(
        _ params: RequestParams, body source: inout some RequestBodySource, context: inout LogContext
    ) -> Outcome {
        guard params.method == "POST" else { return .methodNotAllowed(params.method) }

        let config: LocationConfig
        let keys: [Secret]
        do {
            config = try LocationConfig(params: params)
            context.scheme = config.scheme.name
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
                tolerance: config.tolerance)
        } catch {
            return .rejected(error, status: config.rejectStatus)
        }
        let senderID = config.scheme.idHeader.flatMap { params[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        context.senderID = senderID

        return once(senderID, config: config, now: receivedAt) {
            let id = DeliveryID.next(milliseconds: receivedAt.milliseconds)
            let envelope = Envelope(
                id: id, receivedAt: receivedAt, scheme: config.scheme.name, uri: params.uri,
                event: config.scheme.eventHeader.flatMap { params[$0] }, deliveryID: senderID,
                headers: params.headers, body: body)
            do throws(SystemError) {
                try spools.store(envelope.encoded(), id: id, in: config.spool)
            } catch {
                return .spoolUnwritable(error)
            }
            return .accepted(id)
        }
    }

    /// Runs `deliver` unless the location remembers deliveries
    /// (HOOKGUARD_DEDUPE) and this sender id was accepted within the window;
    /// see `DuplicateRecords` for how copies arriving together are ordered.
    private func once(
        _ senderID: String?, config: LocationConfig, now: Timestamp, deliver: () -> Outcome
    ) -> Outcome {
        guard let window = config.dedupeWindow, let senderID else { return deliver() }
        let record: DeliveryRecord
        do {
            switch try duplicates.claim(
                senderID: senderID, scheme: config.scheme.name, spool: config.spool, window: window, now: now)
            {
            case .duplicate(let first): return .duplicate(of: first)
            case .first(let claimed): record = claimed
            }
        } catch {
            switch error {
            case .system(let failure): return .spoolUnwritable(failure)
            case .busy: return .duplicateInFlight
            }
        }
        defer { record.release() }
        let outcome = deliver()
        if case .accepted(let id) = outcome {
            // Stored already: a record that fails to say so only lets a retry in again.
            try? record.commit(id)
        }
        return outcome
    }

    /// The location's HMAC keys (or tokens), from its literal secret and secret file.
    private func keys(for config: LocationConfig) throws(ConfigError) -> [Secret] {
        func key(_ secret: Secret, from parameter: Parameter) throws(ConfigError) -> Secret {
            do {
                return try config.scheme.key(from: secret)
            } catch {
                throw ConfigError(parameter, error.problem)
            }
        }
        var keys: [Secret] = []
        if let literal = config.literalSecret { keys.append(try key(literal, from: .secret)) }
        if let path = config.secretFile {
            for secret in try secretFiles.secrets(at: path) { keys.append(try key(secret, from: .secretFile)) }
        }
        return keys
    }

    private func log(_ outcome: Outcome, params: RequestParams, context: LogContext, nanoseconds: UInt64) {
        var metadata: Logger.Metadata = [
            "status": "\(outcome.response.status)",
            "outcome": "\(outcome.outcome)",
            "reason": "\(outcome.reason)",
            "uri": "\(params.uri)",
            "duration_ms": "\(String(format: "%.3f", Double(nanoseconds) / 1_000_000))",
        ]
        if let scheme = context.scheme { metadata["scheme"] = "\(scheme)" }
        if let bytes = context.bytes { metadata["bytes"] = "\(bytes)" }
        if case .accepted(let id) = outcome { metadata["id"] = "\(id)" }
        if case .duplicate(let id) = outcome { metadata["id"] = "\(id)" }
        if let senderID = context.senderID { metadata["delivery_id"] = "\(senderID)" }
        if let detail = outcome.detail { metadata["detail"] = "\(detail)" }
        let level: Logger.Level =
            switch outcome.outcome {
            case "accepted": .info
            case "refused": .warning
            default: .error
            }
        logger.log(level: level, "request", metadata: metadata)
    }
}

func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

import Foundation
