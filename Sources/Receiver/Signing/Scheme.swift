package import FastCGI
import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS
import Posix

/// What differs between senders, as data: where the signature is and how
/// its header is parsed, what bytes are signed (a template over id,
/// timestamp and body with literal separators), the timestamp's header, unit
/// and tolerance, how the secret becomes a key, and the delivery-id and event
/// headers. One verification path (`SignatureVerifier`) and one signer
/// (`SignatureSigner`) serve every scheme; the presets are `Scheme.catalog`.
package struct Scheme: Sendable {
    package let name: String
    package let signatureHeader: HeaderName
    package let algorithm: DigestAlgorithm
    package let encoding: SignatureEncoding
    /// Text before each encoded MAC, such as `sha256=`, `v0=` or `v1,`.
    package let prefix: String
    /// `nil` when the header holds one signature; else the character between
    /// the entries of a list (Standard Webhooks: space, Stripe: comma, Paddle:
    /// semicolon). Entries without `prefix` are other versions or fields, and
    /// are skipped.
    package let separator: Character?
    /// Where the signed timestamp is, for schemes that sign one.
    package let timestamp: TimestampSource?
    /// How the timestamp is written.
    package let timestampFormat: TimestampFormat
    /// The signed message, in order; `[.body]` for plain body HMACs.
    package let message: [MessagePart]
    /// How a configured secret becomes the HMAC key.
    package let keyForm: KeyForm
    /// The header with the sender's id for a delivery, kept across its retries.
    package let idHeader: HeaderName?
    /// The header naming the event, recorded in the envelope as `event`.
    package let eventHeader: HeaderName?
    /// Seconds a signed timestamp may be from now, either way, unless the
    /// location sets HOOKGUARD_TOLERANCE: the sender's own recommendation.
    package let tolerance: Int
    /// The sender's page that describes the scheme.
    package let documentation: String?
    /// `nil`: an HMAC under a shared secret; else the sender signs with its
    /// private key and the location holds the package key.
    package let publicKey: PublicKeyAlgorithm?
    /// Whether the URL is also tried with its default port added or removed,
    /// as Twilio's SDKs do.
    package let urlPortVariants: Bool
    /// The request a sender makes to check the endpoint, which hookguard
    /// answers itself and never stores as a delivery.
    package let handshake: Handshake?
    /// Where the signature is when it is in the body, not in `signatureHeader`.
    package let bodySignature: BodySignature?
    /// Standard Webhooks' `v1a,`: list entries with this prefix are Ed25519
    /// signatures of the same message, checked with the `whpk_` package keys.
    package let asymmetricPrefix: String?
    /// The body the sender requires in the 200 that accepts a delivery
    /// (Adyen: `[accepted]`), in place of `{"id":…}`; nil for the id.
    package let acceptedBody: String?

    package enum Handshake: String, Sendable, CaseIterable {
        /// Slack Events API: a signed POST `{"type":"url_verification","challenge":…}`, answered `{"challenge":…}`.
        case slackURLVerification = "url_verification"
        /// Discord interactions: a signed POST `{"type":1}` (PING), answered `{"type":1}`.
        case discordPing = "PING"
        /// Twitch EventSub: a signed POST with `Twitch-Eventsub-Message-Type: webhook_callback_verification`,
        /// answered with the body's `challenge` as text/plain.
        case twitchCallbackVerification = "webhook_callback_verification"
        /// Zoom: a signed POST `{"event":"endpoint.url_validation","payload":{"plainToken":…}}`, answered
        /// `{"plainToken":…,"encryptedToken":hex HMAC-SHA256(secret, plainToken)}`.
        case zoomURLValidation = "endpoint.url_validation"
        /// Meta: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`, answered with the challenge
        /// when the token is the location's (HOOKGUARD_VERIFY_TOKEN_FILE).
        case metaSubscribe = "GET hub.challenge"
        /// Dropbox: `GET ?challenge=…`, answered with the challenge as text/plain.
        case dropboxChallenge = "GET challenge"

        /// Whether the sender makes it with GET, unsigned.
        package var isGET: Bool { self == .metaSubscribe || self == .dropboxChallenge }
    }

    package init(
        name: String, signatureHeader: HeaderName, algorithm: DigestAlgorithm = .sha256,
        encoding: SignatureEncoding, prefix: String = "", separator: Character? = nil,
        timestamp: TimestampSource? = nil, timestampFormat: TimestampFormat = .unixSeconds,
        message: [MessagePart] = [.body], keyForm: KeyForm = .asGiven,
        idHeader: HeaderName? = nil, eventHeader: HeaderName? = nil,
        tolerance: Int = SignatureVerifier.defaultTolerance, documentation: String? = nil,
        publicKey: PublicKeyAlgorithm? = nil, urlPortVariants: Bool = false, handshake: Handshake? = nil,
        bodySignature: BodySignature? = nil, asymmetricPrefix: String? = nil, acceptedBody: String? = nil
    ) {
        self.acceptedBody = acceptedBody
        self.asymmetricPrefix = asymmetricPrefix
        self.handshake = handshake
        self.bodySignature = bodySignature
        self.publicKey = publicKey
        self.urlPortVariants = urlPortVariants
        self.name = name
        self.signatureHeader = signatureHeader
        self.algorithm = algorithm
        self.encoding = encoding
        self.prefix = prefix
        self.separator = separator
        self.timestamp = timestamp
        self.timestampFormat = timestampFormat
        self.message = message
        self.keyForm = keyForm
        self.idHeader = idHeader
        self.eventHeader = eventHeader
        self.tolerance = tolerance
        self.documentation = documentation
    }

    package enum TimestampSource: Sendable, Equatable {
        /// A header of its own, e.g. `X-Slack-Request-Timestamp`.
        case header(HeaderName)
        /// An entry of the signature header's list starting with this text, e.g. Stripe's `t=`.
        case field(String)
        /// Inside the body, with the signature (`bodySignature`).
        case body
    }

    /// Senders whose signature travels inside the body instead of a header.
    package enum BodySignature: String, Sendable {
        /// Mailgun: JSON `{"signature":{"timestamp":…,"token":…,"signature":<hex>}}`, the HMAC over
        /// timestamp ‖ token (the token is the message's `{id}`).
        case mailgunJSON = "signature.signature"
        /// Adyen standard notifications: JSON `{"notificationItems":[{"NotificationRequestItem":{…}}]}`,
        /// each item signed on its own: `additionalData.hmacSignature` is the HMAC of `itemFields`.
        case adyenItems = "notificationItems[].NotificationRequestItem.additionalData.hmacSignature"

        /// The fields of each item whose values, joined by `:`, are signed
        /// (a missing one is empty); nil when the body holds one signature.
        package var itemFields: [String]? {
            switch self {
            case .mailgunJSON: nil
            case .adyenItems:
                [
                    "pspReference", "originalReference", "merchantAccountCode", "merchantReference", "amount.value",
                    "amount.currency", "eventCode", "success",
                ]
            }
        }
    }

    package enum MessagePart: Sendable, Equatable, ExpressibleByStringLiteral {
        case literal(String)
        /// The timestamp exactly as sent.
        case timestamp
        /// The value of `idHeader` exactly as sent.
        case id
        case body
        /// The request's method (HubSpot).
        case method
        /// The package URL the sender was given, HOOKGUARD_URL (with the request's query).
        case url
        /// The form parameters, sorted by name: each name then its value (Twilio).
        case form

        package init(stringLiteral value: String) { self = .literal(value) }

        static let names: [(String, MessagePart)] = [
            ("{body}", .body), ("{timestamp}", .timestamp), ("{id}", .id), ("{method}", .method), ("{url}", .url),
            ("{form}", .form),
        ]

        /// A template such as `v0:{timestamp}:{body}`: literal text with
        /// `{body}` once, `{timestamp}` and `{id}` at most once each.
        package static func parse(_ template: String) -> [MessagePart]? {
            var parts: [MessagePart] = []
            var rest = Substring(template)
            while !rest.isEmpty {
                let next =
                    names
                    .compactMap { text, part in rest.firstRange(of: text).map { ($0, part) } }
                    .min { $0.0.lowerBound < $1.0.lowerBound }
                guard let (range, part) = next else {
                    parts.append(.literal(String(rest)))
                    break
                }
                if range.lowerBound > rest.startIndex { parts.append(.literal(String(rest[..<range.lowerBound]))) }
                parts.append(part)
                rest = rest[range.upperBound...]
            }
            // The body once (Twilio's form stands for it), every other field at most once.
            guard parts.filter({ $0 == .body || $0 == .form }).count == 1,
                names.allSatisfy({ _, part in parts.filter { $0 == part }.count <= 1 })
            else { return nil }
            return parts
        }

        /// The template text that `parse` reads back.
        package static func template(_ parts: [MessagePart]) -> String {
            parts.map { part in
                switch part {
                case .literal(let text): text
                case .timestamp: "{timestamp}"
                case .id: "{id}"
                case .body: "{body}"
                case .method: "{method}"
                case .url: "{url}"
                case .form: "{form}"
                }
            }.joined()
        }
    }

    package enum KeyForm: String, Sendable, Equatable, CaseIterable {
        /// The secret's bytes are the key (GitHub, Stripe's whole `whsec_…`, Slack).
        case asGiven = "as-given"
        /// `whsec_` followed by the key in base64 (Standard Webhooks, Svix).
        case whsecBase64 = "whsec-base64"
        /// A raw package key in hex (Discord's application package key).
        case hexPublicKey = "hex-package-key"
        /// A DER SubjectPublicKeyInfo in base64 (SendGrid's verification key).
        case base64PublicKey = "base64-package-key"
        /// The key written in hex, decoded (Adyen's HMAC key).
        case hex = "hex"
    }

    /// The signature's length in bytes, when it has one: the digest's for an
    /// HMAC, 64 for Ed25519; DER ECDSA signatures vary.
    var signatureLength: Int? {
        guard let publicKey else { return algorithm.byteCount }
        return publicKey.signatureLength
    }

    /// What the signature is, for messages: "sha256", "ed25519".
    var signatureName: String { publicKey?.rawValue ?? algorithm.rawValue }

    /// Whether the signature covers the package URL, which the location must give (HOOKGUARD_URL).
    package var isURLBound: Bool { message.contains(.url) }

    /// Whether the signature covers a timestamp, so stale copies can be refused.
    package var isTimestamped: Bool { timestamp != nil }

    /// The schemes a location names with `HOOKGUARD_SCHEME`; `custom` is built
    /// from the location's own parameters instead.
    package static let presets: [String: Scheme] = Dictionary(uniqueKeysWithValues: catalog.map { ($0.name, $0) })

    /// The HMAC key a configured secret stands for. A secret that cannot be
    /// one is the location's configuration problem, never the sender's.
    package func key(from secret: Secret) throws(KeyError) -> Secret {
        switch keyForm {
        case .asGiven:
            return secret
        case .whsecBase64 where asymmetricPrefix != nil && secret.bytes.starts(with: Array("whpk_".utf8)):
            // A Standard Webhooks package key: base64 of the raw Ed25519 key after whpk_.
            let encoded = String(decoding: secret.bytes.dropFirst(5), as: UTF8.self)[...]
            guard let key = SignatureDecoding.base64(SignatureDecoding.padded(encoded)),
                PublicKeySignature.isPublicKey(key, of: .ed25519)
            else {
                throw KeyError(
                    scheme: name,
                    problem: "a \(name) package key is whpk_ followed by the base64 of a 32-byte Ed25519 key")
            }
            return Secret(bytes: key, isPublicKey: true)
        case .whsecBase64:
            let text = String(decoding: secret.bytes, as: UTF8.self)
            let encoded = text.hasPrefix("whsec_") ? text.dropFirst(6) : Substring(text)
            // The standardwebhooks and svix libraries pad before decoding, so a
            // secret copied without its trailing `=` works there, and here.
            guard let key = SignatureDecoding.base64(SignatureDecoding.padded(encoded)), !key.isEmpty else {
                throw KeyError(scheme: name, problem: "a \(name) secret is whsec_ followed by base64")
            }
            return Secret(bytes: key)
        case .hex:
            guard let key = SignatureDecoding.hex(String(decoding: secret.bytes, as: UTF8.self)[...]), !key.isEmpty
            else {
                throw KeyError(scheme: name, problem: "the \(name) key must be hex: an even number of 0-9 and a-f")
            }
            return Secret(bytes: key)
        case .hexPublicKey, .base64PublicKey:
            let text = String(decoding: secret.bytes, as: UTF8.self)[...]
            let decoded = keyForm == .hexPublicKey ? SignatureDecoding.hex(text) : SignatureDecoding.base64(text)
            guard let publicKey, let key = decoded, PublicKeySignature.isPublicKey(key, of: publicKey) else {
                let form = keyForm == .hexPublicKey ? "hex" : "base64 of its DER SubjectPublicKeyInfo"
                throw KeyError(
                    scheme: name,
                    problem: "a \(name) key is the sender's \(publicKey?.rawValue ?? "") package key in \(form)")
            }
            return Secret(bytes: key)
        }
    }

    package struct KeyError: Error, Sendable, CustomStringConvertible {
        package let scheme: String
        package let problem: String
        package var description: String { problem }
    }

    /// The bytes the sender's HMAC covers.
    func signedMessage(
        body: [UInt8], timestamp: Substring?, id: Substring?, method: String = "POST", url: String = ""
    ) -> [UInt8] {
        if message == [.body] { return body }
        var bytes = [UInt8]()
        bytes.reserveCapacity(body.count + 128)
        for part in message {
            switch part {
            case .literal(let text): bytes += text.utf8
            case .timestamp: bytes += (timestamp ?? "").utf8
            case .id: bytes += (id ?? "").utf8
            case .body: bytes += body
            case .method: bytes += method.utf8
            case .url: bytes += url.utf8
            case .form: bytes += SignedURL.sortedForm(body, url: url)
            }
        }
        return bytes
    }

    /// The header value a genuine sender would send for `body`, for schemes
    /// that sign the body alone.
    package func signature(of body: [UInt8], secret: Secret) -> String {
        SignatureSigner.signatureValue(self, key: secret, message: body, timestamp: nil)
    }
}
