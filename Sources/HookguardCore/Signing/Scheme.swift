/// What differs between senders: where the signature is, what message is
/// signed, how the MAC is written, and which headers carry the timestamp, the
/// delivery id and the event. One verification path (`SignatureVerifier`) and
/// one signer (`SignatureSigner`) serve every scheme.
public struct Scheme: Sendable {
    public let name: String
    public let signatureHeader: HeaderName
    public let algorithm: DigestAlgorithm
    public let encoding: SignatureEncoding
    /// Text before each encoded MAC, such as `sha256=`, `v0=` or `v1,`.
    public let prefix: String
    /// `nil` when the header holds one signature; else the character between
    /// the entries of a list (Standard Webhooks: space, Stripe: comma). Entries
    /// without `prefix` are other versions or fields, and are skipped.
    public let separator: Character?
    /// Where the signed timestamp is, for schemes that sign one.
    public let timestamp: TimestampSource?
    /// The signed message, in order; `[.body]` for plain body HMACs.
    public let message: [MessagePart]
    /// How a configured secret becomes the HMAC key.
    public let keyForm: KeyForm
    /// The header with the sender's id for a delivery, kept across its retries.
    public let idHeader: HeaderName?
    /// The header naming the event, recorded in the envelope as `event`.
    public let eventHeader: HeaderName?

    public init(
        name: String, signatureHeader: HeaderName, algorithm: DigestAlgorithm = .sha256,
        encoding: SignatureEncoding, prefix: String = "", separator: Character? = nil,
        timestamp: TimestampSource? = nil, message: [MessagePart] = [.body], keyForm: KeyForm = .asGiven,
        idHeader: HeaderName? = nil, eventHeader: HeaderName? = nil
    ) {
        self.name = name
        self.signatureHeader = signatureHeader
        self.algorithm = algorithm
        self.encoding = encoding
        self.prefix = prefix
        self.separator = separator
        self.timestamp = timestamp
        self.message = message
        self.keyForm = keyForm
        self.idHeader = idHeader
        self.eventHeader = eventHeader
    }

    public enum TimestampSource: Sendable, Equatable {
        /// A header of its own, e.g. `X-Slack-Request-Timestamp`.
        case header(HeaderName)
        /// An entry of the signature header's list starting with this text, e.g. Stripe's `t=`.
        case field(String)
    }

    public enum MessagePart: Sendable, Equatable, ExpressibleByStringLiteral {
        case literal(String)
        /// The timestamp exactly as sent (decimal Unix seconds).
        case timestamp
        /// The value of `idHeader` exactly as sent.
        case id
        case body

        public init(stringLiteral value: String) { self = .literal(value) }
    }

    public enum KeyForm: Sendable, Equatable {
        /// The secret's bytes are the key (GitHub, Stripe's whole `whsec_…`, Slack).
        case asGiven
        /// `whsec_` followed by the key in base64 (Standard Webhooks, Svix).
        case whsecBase64
    }

    /// Whether the signature covers a timestamp, so stale copies can be refused.
    public var isTimestamped: Bool { timestamp != nil }

    /// The schemes a location names with `HOOKGUARD_SCHEME`; `custom` is built
    /// from the location's own parameters instead.
    public static let presets: [String: Scheme] = Dictionary(
        uniqueKeysWithValues: [
            // Ticket Spot: GitHub-style, Sinatra example in its docs.
            Scheme(name: "ticketspot", signatureHeader: HeaderName("X-TS-Signature-256"),
                   encoding: .hex, prefix: "sha256="),
            // Tito: base64 of the HMAC, event in X-Webhook-Name.
            Scheme(name: "tito", signatureHeader: HeaderName("Tito-Signature"),
                   encoding: .base64, eventHeader: HeaderName("X-Webhook-Name")),
            // Tito's newer API: hex HMAC of "<timestamp>.<body>".
            Scheme(name: "tito-timestamp", signatureHeader: HeaderName("X-Tito-Signature"), encoding: .hex,
                   timestamp: .header(HeaderName("X-Tito-Timestamp")), message: [.timestamp, ".", .body],
                   eventHeader: HeaderName("X-Tito-Webhook-Event")),
            // Workspace webhooks with the PHP `hash_hmac` example.
            Scheme(name: "x-signature", signatureHeader: HeaderName("X-Signature"), encoding: .hex),
            // Tikkl's document does not name the encoding.
            Scheme(name: "tikkl", signatureHeader: HeaderName("X-Tikkl-Signature"), encoding: .hexOrBase64),
            // Docs-platform webhooks with the Python `hmac.compare_digest` example.
            Scheme(name: "x-signature-256", signatureHeader: HeaderName("X-Signature-256"),
                   encoding: .hex, prefix: "sha256="),
            // X-GitHub-Delivery stays the same when a delivery is redelivered.
            Scheme(name: "github", signatureHeader: HeaderName("X-Hub-Signature-256"),
                   encoding: .hex, prefix: "sha256=", idHeader: HeaderName("X-GitHub-Delivery"),
                   eventHeader: HeaderName("X-GitHub-Event")),
            // standardwebhooks.com; "v1,<base64>" entries, space-separated while a secret rotates.
            standardWebhooks(name: "standard-webhooks", headerPrefix: "webhook-"),
            // Svix sends the same scheme under svix-* names (webhook-* when white-labelled).
            standardWebhooks(name: "svix", headerPrefix: "svix-"),
            // Stripe: "t=<unix>,v1=<hex>[,v1=<hex>…]"; v0 entries are test-mode signatures, skipped.
            Scheme(name: "stripe", signatureHeader: HeaderName("Stripe-Signature"), encoding: .hex,
                   prefix: "v1=", separator: ",", timestamp: .field("t="), message: [.timestamp, ".", .body]),
            // Slack: "v0=<hex>" of "v0:<timestamp>:<body>".
            Scheme(name: "slack", signatureHeader: HeaderName("X-Slack-Signature"), encoding: .hex,
                   prefix: "v0=", timestamp: .header(HeaderName("X-Slack-Request-Timestamp")),
                   message: ["v0:", .timestamp, ":", .body]),
            // Shopify: base64 HMAC of the body; X-Shopify-Webhook-Id is kept across retries.
            Scheme(name: "shopify", signatureHeader: HeaderName("X-Shopify-Hmac-Sha256"), encoding: .base64,
                   idHeader: HeaderName("X-Shopify-Webhook-Id"), eventHeader: HeaderName("X-Shopify-Topic")),
            // GitLab: the secret token itself; Idempotency-Key is kept across retries (GitLab 17.4+).
            Scheme(name: "gitlab", signatureHeader: HeaderName("X-Gitlab-Token"), encoding: .token,
                   idHeader: HeaderName("Idempotency-Key"), eventHeader: HeaderName("X-Gitlab-Event")),
        ].map { ($0.name, $0) })

    private static func standardWebhooks(name: String, headerPrefix: String) -> Scheme {
        Scheme(
            name: name, signatureHeader: HeaderName(headerPrefix + "signature"), encoding: .base64,
            prefix: "v1,", separator: " ", timestamp: .header(HeaderName(headerPrefix + "timestamp")),
            message: [.id, ".", .timestamp, ".", .body], keyForm: .whsecBase64,
            idHeader: HeaderName(headerPrefix + "id"))
    }

    /// The HMAC key a configured secret stands for. A secret that cannot be
    /// one is the location's configuration problem, never the sender's.
    public func key(from secret: Secret) throws(KeyError) -> Secret {
        switch keyForm {
        case .asGiven:
            return secret
        case .whsecBase64:
            let text = String(decoding: secret.bytes, as: UTF8.self)
            let encoded = text.hasPrefix("whsec_") ? text.dropFirst(6) : Substring(text)
            // The standardwebhooks and svix libraries pad before decoding, so a
            // secret copied without its trailing `=` works there, and here.
            guard let key = SignatureDecoding.base64(SignatureDecoding.padded(encoded)), !key.isEmpty else {
                throw KeyError(scheme: name, problem: "a \(name) secret is whsec_ followed by base64")
            }
            return Secret(bytes: key)
        }
    }

    public struct KeyError: Error, Sendable, CustomStringConvertible {
        public let scheme: String
        public let problem: String
        public var description: String { problem }
    }

    /// The bytes the sender's HMAC covers.
    func signedMessage(body: [UInt8], timestamp: Substring?, id: Substring?) -> [UInt8] {
        if message == [.body] { return body }
        var bytes = [UInt8]()
        bytes.reserveCapacity(body.count + 128)
        for part in message {
            switch part {
            case .literal(let text): bytes += text.utf8
            case .timestamp: bytes += (timestamp ?? "").utf8
            case .id: bytes += (id ?? "").utf8
            case .body: bytes += body
            }
        }
        return bytes
    }

    /// The header value a genuine sender would send for `body`, for schemes
    /// that sign the body alone.
    public func signature(of body: [UInt8], secret: Secret) -> String {
        SignatureSigner.signatureValue(self, key: secret, message: body, timestamp: nil)
    }
}

import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS
