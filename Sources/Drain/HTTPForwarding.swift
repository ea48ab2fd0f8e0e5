import FastCGI
import Posix
package import Receiver

/// What `drain --to-url` sends for each delivery and how it reads the answer.
package struct HTTPForwarding: Sendable {
    package var endpoint: HTTPEndpoint
    package var connection: HTTPConnection.Options
    package var headers: ForwardedHeaders
    /// Re-signs each hop over the forwarded body with this scheme's first key.
    package var signing: (scheme: Scheme, secret: Secret)?
    /// Retry 4xx answers (other than 408 and 429) instead of giving up at once.
    package var retryClientErrors: Bool
    package var breaker: URLCircuitBreaker.Settings

    package init(
        endpoint: HTTPEndpoint, connection: HTTPConnection.Options, headers: ForwardedHeaders = ForwardedHeaders(),
        signing: (scheme: Scheme, secret: Secret)? = nil, retryClientErrors: Bool = false,
        breaker: URLCircuitBreaker.Settings = URLCircuitBreaker.Settings()
    ) {
        self.endpoint = endpoint
        self.connection = connection
        self.headers = headers
        self.signing = signing
        self.retryClientErrors = retryClientErrors
        self.breaker = breaker
    }

    /// The request headers for one attempt: the sender's (as `headers`
    /// narrows them), hookguard's own, the operator's, then the signature.
    /// Later ones replace earlier ones of the same name.
    package func requestHeaders(
        for envelope: StoredEnvelope, attempt: Int, now: Int
    ) throws(Scheme.KeyError) -> [(name: String, value: String)] {
        var result = ForwardedHeaders.Collected()
        for header in envelope.headers where headers.forwards(header.name) { result.set(header) }
        let ours: [(String, String?)] = [
            ("Hookguard-Id", envelope.id), ("Hookguard-Scheme", envelope.scheme), ("Hookguard-Event", envelope.event),
            ("Hookguard-Delivery-Id", envelope.deliveryID), ("Hookguard-Attempt", String(attempt)),
            ("Hookguard-Received-At", envelope.receivedAt),
        ]
        for case (let name, let value?) in ours { result.set((name, value)) }
        for header in headers.extra { result.set(header) }
        if let signing {
            let lines = try SignatureSigner.headers(
                signing.scheme, secret: signing.secret, body: envelope.body, timestamp: now,
                id: signing.scheme.idHeader == nil ? nil : envelope.id)
            for line in lines { result.set(line) }
        }
        return result.headers
    }

    /// What an answer means for the delivery.
    package func verdict(status: Int) -> ForwardVerdict {
        switch status {
        case 200..<300: .delivered
        case 408, 429, 500..<600: .retry
        case 400..<500: retryClientErrors ? .retry : .refused
        default: .retry  // 1xx, 3xx (redirects are not followed): a service misconfigured, not a bad delivery
        }
    }
}

package enum ForwardVerdict: Sendable, Equatable {
    /// 2xx: the service has it; the entry is removed.
    case delivered
    /// Try again after the backoff (or the answer's Retry-After, if longer).
    case retry
    /// The service refused it for good: to failed/ at once.
    case refused
}

/// Which of the sender's headers a forwarded delivery carries.
package struct ForwardedHeaders: Sendable {
    /// Lower-case names never forwarded: hop-by-hop (RFC 9110 §7.6.1), those
    /// the connection sets itself, and anything that could pass for hookguard's own.
    package static let neverForwarded: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
    ]

    /// Only these (lower-case) when given; all otherwise.
    package var keep: Set<String>?
    package var drop: Set<String>
    /// `--header` and `--header-file` values, sent as given.
    package var extra: [(name: String, value: String)]

    package init(keep: Set<String>? = nil, drop: Set<String> = [], extra: [(name: String, value: String)] = []) {
        self.keep = keep.map { Set($0.map { $0.lowercased() }) }
        self.drop = Set(drop.map { $0.lowercased() })
        self.extra = extra
    }

    func forwards(_ name: String) -> Bool {
        let name = name.lowercased()
        guard !Self.neverForwarded.contains(name), !name.hasPrefix("hookguard-"), !drop.contains(name) else {
            return false
        }
        return keep?.contains(name) ?? true
    }

    /// Whether `name: value` can go on the wire as one header line.
    package static func isValid(name: String, value: String) -> Bool {
        let token = "!#$%&'*+-.^_`|~"
        return !name.isEmpty
            && name.unicodeScalars.allSatisfy {
                $0.isASCII
                    && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || token.unicodeScalars.contains($0))
            }
            && !value.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
    }

    /// Headers by name, case-insensitively, a later one replacing an earlier one.
    struct Collected {
        private(set) var headers: [(name: String, value: String)] = []

        mutating func set(_ header: (name: String, value: String)) {
            guard ForwardedHeaders.isValid(name: header.name, value: header.value) else { return }
            let lower = header.name.lowercased()
            headers.removeAll { $0.name.lowercased() == lower }
            headers.append(header)
        }
    }
}
