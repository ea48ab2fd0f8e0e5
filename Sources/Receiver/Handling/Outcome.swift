package import FastCGI
package import Posix

/// How one request ended. Every answer hookguard gives is decided in
/// `response`, and every log reason in `reason`.
package enum Outcome: Sendable {
    case accepted(DeliveryID, Destination)
    /// A sender's retry of a delivery already accepted (HOOKGUARD_DEDUPE):
    /// answered as the first one was, and not spooled again.
    case duplicate(of: DeliveryID)
    /// A copy of a delivery that another request is storing right now, for longer than we wait.
    case duplicateInFlight
    case methodNotAllowed(String)
    case configInvalid(ConfigError)
    case badRequest(String)
    case body(BodyError)
    case rejected(SignatureFailure, status: Int)
    /// libcrypto failed while checking the signature: neither refused nor accepted.
    case cryptoFailed(CryptoFailure)
    case spoolUnwritable(SystemError, after: ForwardFailure?)
    /// The socket reader or JetStream could not take it, and there is no spool to fall back to.
    case forwardFailed(ForwardFailure)
    /// A sender's check of the endpoint (Slack url_verification, Discord PING, …), answered, not stored.
    case handshake(String, Response)
    /// A GET handshake whose verify token is not the location's.
    case handshakeRefused(String, String)

    /// Where an accepted delivery went.
    package enum Destination: Sendable {
        case spool
        case socket
        case nats(PublishAcknowledgement)
        case spoolAfter(ForwardFailure)
    }

    /// Why the location's forwarder did not take a delivery.
    package enum ForwardFailure: Error, Sendable, CustomStringConvertible {
        case socket(SocketForwardError)
        case nats(NATSForwardError)

        package var description: String {
            switch self {
            case .socket(let error): error.description
            case .nats(let error): error.description
            }
        }
    }

    /// Seconds a sender should wait before retrying after a 503.
    package static let retryAfterSeconds = 30

    package var response: Response {
        switch self {
        case .accepted(let id, _), .duplicate(of: let id):
            Response(
                status: 200, headers: [("Content-Type", "application/json")],
                body: Array("{\"id\":\"\(id.text)\"}\n".utf8))
        case .duplicateInFlight:
            .text(
                503, "Another copy of this delivery is being stored; retry later.",
                headers: [("Retry-After", String(Outcome.retryAfterSeconds))])
        case .methodNotAllowed:
            .text(405, "Method not allowed: webhooks are POSTed.", headers: [("Allow", "POST")])
        case .configInvalid:
            .text(500, "This webhook location is misconfigured; the server log says how.")
        case .badRequest(let problem):
            .text(400, problem)
        case .body(.tooLarge(let limit)):
            .text(413, "Body larger than this location's limit of \(limit) bytes.")
        case .body(.incomplete):
            .text(400, "Body shorter than its Content-Length.")
        case .body(.overlong):
            .text(400, "Body longer than its Content-Length.")
        case .rejected(let failure, let status):
            .text(status, "Signature refused: \(failure).")
        case .cryptoFailed:
            .text(
                503, "The signature could not be checked; retry later.",
                headers: [("Retry-After", String(Outcome.retryAfterSeconds))])
        case .spoolUnwritable, .forwardFailed:
            .text(
                503, "Delivery could not be stored; retry later.",
                headers: [("Retry-After", String(Outcome.retryAfterSeconds))])
        case .handshake(_, let response):
            response
        case .handshakeRefused:
            .text(403, "Verify token does not match.")
        }
    }

    /// `response`, except that an accepted delivery is answered with the body
    /// its sender requires (`Scheme.acceptedBody`, Adyen's `[accepted]`) in
    /// place of `{"id":…}`; the id is still in the log line.
    package func response(acceptedBody: String?) -> Response {
        guard let acceptedBody, kind == .accepted else { return response }
        return Response(status: 200, headers: [("Content-Type", "text/plain")], body: Array(acceptedBody.utf8))
    }

    /// A short, stable code for logs and metrics: the `reason` label is its description.
    package enum Reason: Sendable, Equatable, CustomStringConvertible {
        case accepted, fellBackToSpool, duplicate, duplicateInFlight, methodNotAllowed, configInvalid, badRequest
        case bodyTooLarge, bodyIncomplete, bodyOverlong, cryptoError, spoolUnwritable, socketUnavailable
        case natsUnavailable, handshake, handshakeRefused
        /// `signature-missing`, `signature-mismatch`, …: the failure's own code.
        case signature(SignatureFailure)

        package var description: String {
            switch self {
            case .accepted: "accepted"
            case .fellBackToSpool: "fell-back-to-spool"
            case .duplicate: "duplicate"
            case .duplicateInFlight: "duplicate-in-flight"
            case .methodNotAllowed: "method-not-allowed"
            case .configInvalid: "config-invalid"
            case .badRequest: "bad-request"
            case .bodyTooLarge: "body-too-large"
            case .bodyIncomplete: "body-incomplete"
            case .bodyOverlong: "body-overlong"
            case .signature(let failure): failure.reasonCode
            case .cryptoError: "crypto-error"
            case .spoolUnwritable: "spool-unwritable"
            case .socketUnavailable: "socket-unavailable"
            case .natsUnavailable: "nats-unavailable"
            case .handshake: "handshake"
            case .handshakeRefused: "handshake-refused"
            }
        }
    }

    package var reason: Reason {
        switch self {
        case .accepted(_, .spoolAfter): .fellBackToSpool
        case .accepted(_, .nats(let ack)) where ack.duplicate: .duplicate
        case .accepted: .accepted
        case .duplicate: .duplicate
        case .duplicateInFlight: .duplicateInFlight
        case .methodNotAllowed: .methodNotAllowed
        case .configInvalid: .configInvalid
        case .badRequest: .badRequest
        case .body(.tooLarge): .bodyTooLarge
        case .body(.incomplete): .bodyIncomplete
        case .body(.overlong): .bodyOverlong
        case .rejected(let failure, _): .signature(failure)
        case .cryptoFailed: .cryptoError
        case .spoolUnwritable: .spoolUnwritable
        case .forwardFailed(.socket): .socketUnavailable
        case .forwardFailed(.nats): .natsUnavailable
        case .handshake: .handshake
        case .handshakeRefused: .handshakeRefused
        }
    }

    /// What the log line says beyond the code: the operator's detail, which
    /// may name paths and parameters but never a secret or a signature.
    package var detail: String? {
        switch self {
        case .accepted(_, .spoolAfter(let failure)): "\(failure); stored in the spool instead"
        case .accepted(_, .nats(let ack)):
            "stream \(ack.stream) sequence \(ack.sequence)\(ack.duplicate ? ", already there: JetStream dropped the copy" : "")"
        case .accepted: nil
        case .duplicate(let first): "already accepted as \(first)"
        case .duplicateInFlight: "another request held the delivery's dedupe record too long"
        case .methodNotAllowed(let method): "method \(method.isEmpty ? "(none)" : method)"
        case .configInvalid(let error): error.description
        case .badRequest(let problem): problem
        case .body(.tooLarge(let limit)): "body over HOOKGUARD_MAX_BODY=\(limit)"
        case .body(.incomplete(let expected, let received)):
            "client sent \(received) of \(expected.map(String.init) ?? "an unknown number of") bytes"
        case .body(.overlong(let expected)): "body continues past Content-Length \(expected)"
        case .rejected(let failure, _): failure.description
        case .cryptoFailed(let failure): failure.description
        case .spoolUnwritable(let error, let socketFailure):
            socketFailure.map { "\($0); then the spool: \(error)" } ?? error.description
        case .forwardFailed(let failure): "\(failure); no HOOKGUARD_SPOOL to fall back to"
        case .handshake(let name, _): "answered the sender's \(name) check; nothing stored"
        case .handshakeRefused(let name, let problem): "\(name): \(problem)"
        }
    }

    /// How a request ended, in one word: the `outcome` of log lines and metrics.
    package enum Kind: String, Sendable {
        case accepted, handshake, refused, failed
    }

    package var kind: Kind {
        switch self {
        case .accepted, .duplicate: .accepted
        case .handshake: .handshake
        case .rejected, .body, .methodNotAllowed, .badRequest, .handshakeRefused: .refused
        case .configInvalid, .spoolUnwritable, .forwardFailed, .duplicateInFlight, .cryptoFailed: .failed
        }
    }
}
