/// A place a verified delivery is handed to, as breakers are keyed and logs
/// and metrics name it. `description` is the breaker's spelling in logs and
/// `hookguard_destination_up` (`unix:/run/reader.sock`, `nats://10.0.0.5:4222`);
/// `Kind` is the `destination` of request log lines.
package enum DestinationName: Hashable, Sendable, CustomStringConvertible {
    case spool
    case socket(path: String)
    case nats(url: String)
    /// `drain --to-url`'s service.
    case http(url: String)

    package enum Kind: String, Sendable {
        case spool, socket, nats
    }

    /// The `destination` label of `hookguard_forward_duration_seconds`: the
    /// kind for the receiver's destinations, the URL for drain's service.
    package var metricsLabel: String {
        switch self {
        case .spool: Kind.spool.rawValue
        case .socket: Kind.socket.rawValue
        case .nats: Kind.nats.rawValue
        case .http(let url): url
        }
    }

    package var description: String {
        switch self {
        case .spool: "spool"
        case .socket(let path): "unix:\(path)"
        case .nats(let url), .http(let url): url
        }
    }
}
