/// What differs between senders: where the signature is, how it is made and
/// written. One verification path serves every scheme.
public struct Scheme: Sendable {
    public let name: String
    public let signatureHeader: HeaderName
    public let algorithm: DigestAlgorithm
    public let encoding: SignatureEncoding
    /// Text before the encoded MAC, such as `sha256=`.
    public let prefix: String
    /// The header naming the event, recorded in the envelope as `event`.
    public let eventHeader: HeaderName?

    public init(
        name: String, signatureHeader: HeaderName, algorithm: DigestAlgorithm = .sha256,
        encoding: SignatureEncoding, prefix: String = "", eventHeader: HeaderName? = nil
    ) {
        self.name = name
        self.signatureHeader = signatureHeader
        self.algorithm = algorithm
        self.encoding = encoding
        self.prefix = prefix
        self.eventHeader = eventHeader
    }

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
            // Workspace webhooks with the PHP `hash_hmac` example.
            Scheme(name: "x-signature", signatureHeader: HeaderName("X-Signature"), encoding: .hex),
            // Tikkl's document does not name the encoding.
            Scheme(name: "tikkl", signatureHeader: HeaderName("X-Tikkl-Signature"), encoding: .hexOrBase64),
            // Docs-platform webhooks with the Python `hmac.compare_digest` example.
            Scheme(name: "x-signature-256", signatureHeader: HeaderName("X-Signature-256"),
                   encoding: .hex, prefix: "sha256="),
            Scheme(name: "github", signatureHeader: HeaderName("X-Hub-Signature-256"),
                   encoding: .hex, prefix: "sha256=", eventHeader: HeaderName("X-GitHub-Event")),
        ].map { ($0.name, $0) })

    /// The header value a genuine sender would send for `body`.
    public func signature(of body: [UInt8], secret: Secret) -> String {
        let mac = MessageAuthentication.code(algorithm, key: secret.bytes, message: body)
        switch encoding {
        case .hex: return prefix + mac.hexString
        case .base64, .hexOrBase64: return prefix + Data(mac).base64EncodedString()
        }
    }
}

import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS
