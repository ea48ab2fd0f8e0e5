package import FastCGI
import FoundationEssentials  // JSONDecoder, for signatures inside the body
import Posix

/// Why a delivery's signature was refused. The text is safe to show the
/// sender: it never contains the expected value.
package enum SignatureFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(header: String)
    case malformed(header: String, problem: String)
    case mismatch(header: String)
    /// Genuine, but signed longer ago than the tolerance allows: a replay, or a
    /// retry of one held up too long.
    case stale(header: String, seconds: Int, tolerance: Int)
    /// Genuine, but stamped later than now plus the tolerance: a clock is wrong.
    case future(header: String, seconds: Int, tolerance: Int)

    package var reasonCode: String {
        switch self {
        case .missing: "signature-missing"
        case .malformed: "signature-malformed"
        case .mismatch: "signature-mismatch"
        case .stale: "signature-stale"
        case .future: "signature-future"
        }
    }

    package var description: String {
        switch self {
        case .missing(let header): "header \(header) is missing"
        case .malformed(let header, let problem): "signature header \(header) is malformed: \(problem)"
        case .mismatch(let header): "signature in \(header) does not match"
        case .stale(let header, let seconds, let tolerance):
            "timestamp in \(header) is stale: \(seconds) s old, beyond the tolerance of \(tolerance) s"
        case .future(let header, let seconds, let tolerance):
            "timestamp in \(header) is in the future: \(seconds) s ahead, beyond the tolerance of \(tolerance) s"
        }
    }
}

/// Why a request was not verified: its signature was refused, or libcrypto
/// failed before any comparison could be made (never taken as a match).
package enum VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    case refused(SignatureFailure)
    case crypto(CryptoFailure)

    package var description: String {
        switch self {
        case .refused(let failure): failure.description
        case .crypto(let failure): failure.description
        }
    }
}

package enum SignatureVerifier {
    /// Seconds a signed timestamp may differ from now, either way (Stripe's,
    /// Slack's and Standard Webhooks' own default).
    package static let defaultTolerance = 300

    /// Accepts when any of `keys` produced any signature the request carries,
    /// and the signed timestamp, if the scheme has one, is within `tolerance`
    /// seconds of `now` (Unix seconds). Every key and every signature is tried,
    /// so the time taken does not say which one matched. `keys` are the
    /// scheme's HMAC keys (`Scheme.key(from:)`), or the tokens themselves.
    /// `url` is the package URL a URL-bound scheme signs (`LocationConfig.signedURL`).
    package static func verify(
        _ scheme: Scheme, keys: [Secret], params: RequestParams, body: [UInt8],
        now: Int, tolerance: Int = defaultTolerance, url: String? = nil
    ) throws(VerificationError) {
        let received: ReceivedSignature
        do {
            received =
                try scheme.bodySignature == nil
                ? ReceivedSignature(scheme, params) : ReceivedSignature(bodySigned: scheme, body: body)
        } catch {
            throw .refused(error)
        }
        if !received.items.isEmpty {
            try verifyEach(scheme, keys: keys, received.items)
            return
        }
        var matched = false
        let urls = scheme.isURLBound ? SignedURL.candidates(url ?? "", portVariants: scheme.urlPortVariants) : [""]
        do {
            for url in urls {
                let message = scheme.signedMessage(
                    body: body, timestamp: received.timestamp?.text, id: received.id, method: params.method, url: url)
                for key in keys where !key.isPublicKey {
                    matched = try matches(scheme, key: key, message: message, received.signatures) || matched
                }
                // Standard Webhooks v1a: Ed25519 signatures of the same message, under the whpk_ keys.
                for key in keys where key.isPublicKey {
                    for signature in received.asymmetricSignatures {
                        matched =
                            PublicKeySignature.verify(
                                .ed25519, publicKey: key.bytes, message: message, signature: signature) || matched
                    }
                }
                // Twilio's JSON form: the URL's bodySHA256 must be this body's.
                if scheme.message.contains(.form), try !SignedURL.bodyMatchesHash(body, url: url) { matched = false }
            }
        } catch {
            throw .crypto(error)
        }
        guard matched else { throw .refused(.mismatch(header: scheme.signatureHeader.display)) }

        if let timestamp = received.timestamp {
            let age = now - timestamp.seconds
            if age > tolerance {
                throw .refused(.stale(header: timestamp.header, seconds: age, tolerance: tolerance))
            }
            if -age > tolerance {
                throw .refused(.future(header: timestamp.header, seconds: -age, tolerance: tolerance))
            }
        }
    }
}

extension SignatureVerifier {
    /// Adyen: every item must match under some key. Every key is tried on
    /// every item, so the time taken does not say which key or item failed;
    /// the first that failed is named.
    private static func verifyEach(
        _ scheme: Scheme, keys: [Secret], _ items: [ReceivedSignature.Item]
    ) throws(VerificationError) {
        var unmatched: String? = nil
        do {
            for item in items {
                var matched = false
                for key in keys where !key.isPublicKey {
                    matched = try matches(scheme, key: key, message: item.message, [item.signature]) || matched
                }
                if !matched, unmatched == nil { unmatched = item.place }
            }
        } catch {
            throw .crypto(error)
        }
        if let unmatched { throw .refused(.mismatch(header: unmatched)) }
    }

    /// Whether `key` made any of `signatures` over `message`; every one is tried.
    private static func matches(
        _ scheme: Scheme, key: Secret, message: [UInt8], _ signatures: [[UInt8]]
    ) throws(CryptoFailure) -> Bool {
        var matched = false
        if scheme.encoding == .token {
            for token in signatures { matched = try MessageAuthentication.tokenEquals(token, key.bytes) || matched }
        } else if let algorithm = scheme.publicKey {
            for signature in signatures {
                matched =
                    PublicKeySignature.verify(algorithm, publicKey: key.bytes, message: message, signature: signature)
                    || matched
            }
        } else {
            let expected = try MessageAuthentication.code(scheme.algorithm, key: key.bytes, message: message)
            for signature in signatures {
                matched = MessageAuthentication.constantTimeEquals(expected, signature) || matched
            }
        }
        return matched
    }
}

/// What a request carries for its scheme, taken apart: the decoded
/// signatures, the timestamp and the id, each as sent.
struct ReceivedSignature {
    var signatures: [[UInt8]] = []
    /// Entries with the scheme's `asymmetricPrefix` (Standard Webhooks `v1a,`), decoded.
    var asymmetricSignatures: [[UInt8]] = []
    var timestamp: (text: Substring, seconds: Int, header: String)?
    var id: Substring?
    /// Items signed on their own, each of which must match (Adyen).
    var items: [Item] = []

    struct Item {
        var message: [UInt8]
        var signature: [UInt8]
        /// Where its signature is, for the refusal's reason.
        var place: String
    }

    init(_ scheme: Scheme, _ params: RequestParams) throws(SignatureFailure) {
        let header = scheme.signatureHeader.display
        guard let raw = params[scheme.signatureHeader], !raw.isEmpty else {
            throw .missing(header: header)
        }
        let value = raw.trimmingASCIIWhitespace()
        let entries =
            scheme.separator.map { separator in
                value.split(separator: separator).map { String($0).trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
            } ?? [value]

        switch scheme.timestamp {
        case nil:
            break
        case .header(let name):
            guard let text = params[name]?.trimmingASCIIWhitespace(), !text.isEmpty else {
                throw .missing(header: name.display)
            }
            timestamp = (text, try Self.seconds(text, scheme.timestampFormat, header: name.display), name.display)
        case .body:
            throw .missing(header: "the signature in the body")
        case .field(let key):
            guard let entry = entries.first(where: { $0.hasPrefixIgnoringCase(key) }) else {
                throw .malformed(header: header, problem: "no \"\(key)\" timestamp")
            }
            let text = entry.droppingPrefix(key)
            timestamp = (text, try Self.seconds(text, scheme.timestampFormat, header: header), header)
        }

        if scheme.message.contains(.id), let idHeader = scheme.idHeader {
            guard let text = params[idHeader], !text.isEmpty else { throw .missing(header: idHeader.display) }
            id = Substring(text)
        }

        if let asymmetric = scheme.asymmetricPrefix {
            asymmetricSignatures = entries.filter { $0.hasPrefixIgnoringCase(asymmetric) }
                .compactMap { SignatureDecoding.base64($0.droppingPrefix(asymmetric)) }.filter { $0.count == 64 }
        }
        let encoded = entries.filter { $0.hasPrefixIgnoringCase(scheme.prefix) }.map {
            $0.droppingPrefix(scheme.prefix)
        }
        guard !encoded.isEmpty || !asymmetricSignatures.isEmpty else {
            throw .malformed(
                header: header,
                problem: scheme.separator == nil
                    ? "expected the prefix \"\(scheme.prefix)\"" : "no entry starting with \"\(scheme.prefix)\"")
        }
        // In a list, an entry that does not decode is skipped like another
        // version's; the request is malformed only when none decodes.
        var firstProblem: String? = nil
        for text in encoded {
            switch Self.decode(text, scheme) {
            case .success(let bytes): signatures.append(bytes)
            case .failure(let problem): firstProblem = firstProblem ?? problem
            }
        }
        if signatures.isEmpty, asymmetricSignatures.isEmpty, let firstProblem {
            throw .malformed(header: header, problem: firstProblem)
        }
    }

    /// Mailgun: `signature.{timestamp,token,signature}` in the JSON body;
    /// Adyen: `notificationItems`, each with its own signature.
    init(bodySigned scheme: Scheme, body: [UInt8]) throws(SignatureFailure) {
        if let fields = scheme.bodySignature?.itemFields {
            items = try Self.items(scheme, fields: fields, body: body)
            return
        }
        struct Envelope: Decodable {
            struct Signature: Decodable { var timestamp: String?, token: String?, signature: String? }
            var signature: Signature?
        }
        let place = scheme.signatureHeader.display
        guard let fields = (try? JSONDecoder().decode(Envelope.self, from: Data(body)))?.signature,
            let text = fields.signature, !text.isEmpty
        else { throw .missing(header: place) }
        guard let timestampText = fields.timestamp, !timestampText.isEmpty else {
            throw .missing(header: "signature.timestamp (JSON body)")
        }
        guard let token = fields.token, !token.isEmpty else { throw .missing(header: "signature.token (JSON body)") }
        let stamp = Substring(timestampText)
        timestamp = (
            stamp, try Self.seconds(stamp, scheme.timestampFormat, header: "signature.timestamp (JSON body)"),
            "signature.timestamp (JSON body)"
        )
        id = Substring(token)
        switch Self.decode(Substring(text), scheme) {
        case .success(let bytes): signatures = [bytes]
        case .failure(let problem): throw .malformed(header: place, problem: problem)
        }
    }

    /// Adyen's `notificationItems[].NotificationRequestItem`: each item's
    /// `fields` joined by `:` and its `additionalData.hmacSignature`.
    private static func items(_ scheme: Scheme, fields: [String], body: [UInt8]) throws(SignatureFailure) -> [Item] {
        struct Notification: Decodable {
            struct Wrapper: Decodable { var NotificationRequestItem: FlatJSONObject? }
            var notificationItems: [Wrapper]?
        }
        let list = "notificationItems (JSON body)"
        guard let wrappers = (try? JSONDecoder().decode(Notification.self, from: Data(body)))?.notificationItems else {
            throw .missing(header: list)
        }
        guard !wrappers.isEmpty else { throw .malformed(header: list, problem: "no items: nothing is signed") }
        var items: [Item] = []
        for (index, wrapper) in wrappers.enumerated() {
            let place = "notificationItems[\(index)].NotificationRequestItem.additionalData.hmacSignature"
            guard let item = wrapper.NotificationRequestItem, let text = item.values["additionalData.hmacSignature"],
                !text.isEmpty
            else { throw .missing(header: place) }
            switch decode(Substring(text), scheme) {
            case .success(let signature):
                let message = fields.map { item.values[$0] ?? "" }.joined(separator: ":")
                items.append(Item(message: Array(message.utf8), signature: signature, place: place))
            case .failure(let problem): throw .malformed(header: place, problem: problem)
            }
        }
        return items
    }

    private enum Decoded {
        case success([UInt8])
        case failure(String)
    }

    private static func decode(_ text: Substring, _ scheme: Scheme) -> Decoded {
        let byteCount = scheme.signatureLength
        let hint =
            byteCount.flatMap { SignatureDecoding.misencodingHint(text, expected: scheme.encoding, byteCount: $0) }
            .map { "; \($0)" } ?? ""
        guard let bytes = SignatureDecoding.decode(text, as: scheme.encoding, byteCount: byteCount ?? 0) else {
            return .failure("not valid \(scheme.encoding.rawValue)\(hint)")
        }
        if scheme.encoding != .token, let byteCount, bytes.count != byteCount {
            return .failure(
                "\(bytes.count) bytes where \(scheme.signatureName) gives \(byteCount)\(hint)")
        }
        return .success(bytes)
    }

    /// The Unix seconds of a timestamp written in the scheme's format.
    private static func seconds(
        _ text: Substring, _ format: TimestampFormat, header: String
    ) throws(SignatureFailure) -> Int {
        guard let seconds = format.seconds(text) else {
            throw .malformed(header: header, problem: "the timestamp is not \(format.expectation)")
        }
        return seconds
    }
}

/// A JSON object's scalar members as text, and those of the objects inside
/// it as `outer.inner` (`amount.value`): numbers as written for integers,
/// `true`/`false`, null as absent. Arrays and deeper objects are left out.
struct FlatJSONObject: Decodable {
    var values: [String: String] = [:]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let object = try decoder.container(keyedBy: Key.self)
        for key in object.allKeys {
            if let text = Self.scalar(object, key) {
                values[key.stringValue] = text
            } else if let inner = try? object.nestedContainer(keyedBy: Key.self, forKey: key) {
                for innerKey in inner.allKeys {
                    if let text = Self.scalar(inner, innerKey) {
                        values[key.stringValue + "." + innerKey.stringValue] = text
                    }
                }
            }
        }
    }

    private static func scalar(_ object: KeyedDecodingContainer<Key>, _ key: Key) -> String? {
        if let text = try? object.decode(String.self, forKey: key) { return text }
        if let number = try? object.decode(Int64.self, forKey: key) { return String(number) }
        if let flag = try? object.decode(Bool.self, forKey: key) { return flag ? "true" : "false" }
        if let number = try? object.decode(Double.self, forKey: key) { return String(number) }
        return nil
    }
}

extension String {
    /// Without leading and trailing spaces, tabs, CRs and LFs.
    package func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return self[endIndex...] }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}

extension Substring {
    func hasPrefixIgnoringCase(_ prefix: String) -> Bool {
        guard utf8.count >= prefix.utf8.count else { return false }
        return zip(utf8, prefix.utf8).allSatisfy { a, b in asciiLower(a) == asciiLower(b) }
    }

    /// What follows `prefix`, which `hasPrefixIgnoringCase` matched: counted
    /// in bytes, as it was matched. Counted in characters, a combining mark
    /// after the prefix would go with it (`v1=` + U+0301 is one character).
    func droppingPrefix(_ prefix: String) -> Substring {
        Substring(utf8.dropFirst(prefix.utf8.count))
    }
}

private func asciiLower(_ byte: UInt8) -> UInt8 {
    (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
}

extension Substring {
    /// Without leading and trailing spaces, tabs, CRs and LFs.
    package func trimmingASCIIWhitespace() -> Substring { String(self).trimmingASCIIWhitespace() }
}
