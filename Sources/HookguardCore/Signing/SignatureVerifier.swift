/// Why a delivery's signature was refused. The text is safe to show the
/// sender: it never contains the expected value.
public enum SignatureFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(header: String)
    case malformed(header: String, problem: String)
    case mismatch(header: String)

    public var reasonCode: String {
        switch self {
        case .missing: "signature-missing"
        case .malformed: "signature-malformed"
        case .mismatch: "signature-mismatch"
        }
    }

    public var description: String {
        switch self {
        case .missing(let header): "signature header \(header) is missing"
        case .malformed(let header, let problem): "signature header \(header) is malformed: \(problem)"
        case .mismatch(let header): "signature in \(header) does not match"
        }
    }
}

public enum SignatureVerifier {
    /// Accepts when any of `secrets` produced the signature the request carries.
    /// Every secret is tried, so the time taken does not say which one matched.
    public static func verify(
        _ scheme: Scheme, secrets: [Secret], params: RequestParams, body: [UInt8]
    ) throws(SignatureFailure) {
        let header = scheme.signatureHeader.display
        guard let raw = params[scheme.signatureHeader], !raw.isEmpty else {
            throw .missing(header: header)
        }
        let value = raw.trimmingASCIIWhitespace()
        guard value.hasPrefixIgnoringCase(scheme.prefix) else {
            throw .malformed(header: header, problem: "expected the prefix \"\(scheme.prefix)\"")
        }
        let encoded = value.dropFirst(scheme.prefix.count)
        guard
            let received = SignatureDecoding.decode(
                encoded, as: scheme.encoding, byteCount: scheme.algorithm.byteCount)
        else {
            throw .malformed(header: header, problem: "not valid \(scheme.encoding.rawValue)")
        }
        guard received.count == scheme.algorithm.byteCount else {
            throw .malformed(
                header: header,
                problem: "\(received.count) bytes where \(scheme.algorithm.rawValue) gives \(scheme.algorithm.byteCount)")
        }
        var matched = false
        for secret in secrets {
            let expected = MessageAuthentication.code(scheme.algorithm, key: secret.bytes, message: body)
            matched = MessageAuthentication.constantTimeEquals(expected, received) || matched
        }
        guard matched else { throw .mismatch(header: header) }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
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
}

private func asciiLower(_ byte: UInt8) -> UInt8 {
    (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
}
