/// Why a delivery's signature was refused. The text is safe to show the
/// sender: it never contains the expected value.
public enum SignatureFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(header: String)
    case malformed(header: String, problem: String)
    case mismatch(header: String)
    /// Genuine, but signed longer ago than the tolerance allows: a replay, or a
    /// retry of one held up too long.
    case stale(header: String, seconds: Int, tolerance: Int)
    /// Genuine, but stamped later than now plus the tolerance: a clock is wrong.
    case future(header: String, seconds: Int, tolerance: Int)

    public var reasonCode: String {
        switch self {
        case .missing: "signature-missing"
        case .malformed: "signature-malformed"
        case .mismatch: "signature-mismatch"
        case .stale: "signature-stale"
        case .future: "signature-future"
        }
    }

    public var description: String {
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
public enum VerificationError: Error, Sendable, Equatable, CustomStringConvertible {
    case refused(SignatureFailure)
    case crypto(CryptoFailure)

    public var description: String {
        switch self {
        case .refused(let failure): failure.description
        case .crypto(let failure): failure.description
        }
    }
}

public enum SignatureVerifier {
    /// Seconds a signed timestamp may differ from now, either way (Stripe's,
    /// Slack's and Standard Webhooks' own default).
    public static let defaultTolerance = 300

    /// Accepts when any of `keys` produced any signature the request carries,
    /// and the signed timestamp, if the scheme has one, is within `tolerance`
    /// seconds of `now` (Unix seconds). Every key and every signature is tried,
    /// so the time taken does not say which one matched. `keys` are the
    /// scheme's HMAC keys (`Scheme.key(from:)`), or the tokens themselves.
    public static func verify(
        _ scheme: Scheme, keys: [Secret], params: RequestParams, body: [UInt8],
        now: Int, tolerance: Int = defaultTolerance
    ) throws(VerificationError) {
        let received: ReceivedSignature
        do {
            received = try ReceivedSignature(scheme, params)
        } catch {
            throw .refused(error)
        }
        var matched = false
        do {
            if scheme.encoding == .token {
                for key in keys {
                    for token in received.signatures {
                        matched = try MessageAuthentication.tokenEquals(token, key.bytes) || matched
                    }
                }
            } else {
                let message = scheme.signedMessage(body: body, timestamp: received.timestamp?.text, id: received.id)
                for key in keys {
                    let expected = try MessageAuthentication.code(scheme.algorithm, key: key.bytes, message: message)
                    for signature in received.signatures {
                        matched = MessageAuthentication.constantTimeEquals(expected, signature) || matched
                    }
                }
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

/// What a request carries for its scheme, taken apart: the decoded
/// signatures, the timestamp and the id, each as sent.
struct ReceivedSignature {
    var signatures: [[UInt8]] = []
    var timestamp: (text: Substring, seconds: Int, header: String)?
    var id: Substring?

    init(_ scheme: Scheme, _ params: RequestParams) throws(SignatureFailure) {
        let header = scheme.signatureHeader.display
        guard let raw = params[scheme.signatureHeader], !raw.isEmpty else {
            throw .missing(header: header)
        }
        let value = raw.trimmingASCIIWhitespace()
        let entries = scheme.separator.map { separator in
            value.split(separator: separator).map { String($0).trimmingASCIIWhitespace() }.filter { !$0.isEmpty }
        } ?? [value]

        switch scheme.timestamp {
        case nil:
            break
        case .header(let name):
            guard let text = params[name]?.trimmingASCIIWhitespace(), !text.isEmpty else {
                throw .missing(header: name.display)
            }
            timestamp = (text, try Self.unixSeconds(text, header: name.display), name.display)
        case .field(let key):
            guard let entry = entries.first(where: { $0.hasPrefixIgnoringCase(key) }) else {
                throw .malformed(header: header, problem: "no \"\(key)\" timestamp")
            }
            let text = entry.droppingPrefix(key)
            timestamp = (text, try Self.unixSeconds(text, header: header), header)
        }

        if scheme.message.contains(.id), let idHeader = scheme.idHeader {
            guard let text = params[idHeader], !text.isEmpty else { throw .missing(header: idHeader.display) }
            id = Substring(text)
        }

        let encoded = entries.filter { $0.hasPrefixIgnoringCase(scheme.prefix) }.map { $0.droppingPrefix(scheme.prefix) }
        guard !encoded.isEmpty else {
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
        if signatures.isEmpty, let firstProblem {
            throw .malformed(header: header, problem: firstProblem)
        }
    }

    private enum Decoded { case success([UInt8]), failure(String) }

    private static func decode(_ text: Substring, _ scheme: Scheme) -> Decoded {
        let byteCount = scheme.algorithm.byteCount
        let hint = SignatureDecoding.misencodingHint(text, expected: scheme.encoding, byteCount: byteCount)
            .map { "; \($0)" } ?? ""
        guard let bytes = SignatureDecoding.decode(text, as: scheme.encoding, byteCount: byteCount) else {
            return .failure("not valid \(scheme.encoding.rawValue)\(hint)")
        }
        if scheme.encoding != .token, bytes.count != byteCount {
            return .failure(
                "\(bytes.count) bytes where \(scheme.algorithm.rawValue) gives \(byteCount)\(hint)")
        }
        return .success(bytes)
    }

    /// Decimal Unix seconds, as every timestamped sender writes them.
    private static func unixSeconds(_ text: Substring, header: String) throws(SignatureFailure) -> Int {
        guard text.utf8.count <= 12, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let seconds = Int(text)
        else {
            throw .malformed(header: header, problem: "the timestamp is not a Unix time in seconds")
        }
        return seconds
    }
}

extension String {
    /// Without leading and trailing spaces, tabs, CRs and LFs.
    public func trimmingASCIIWhitespace() -> Substring {
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
    public func trimmingASCIIWhitespace() -> Substring { String(self).trimmingASCIIWhitespace() }
}
