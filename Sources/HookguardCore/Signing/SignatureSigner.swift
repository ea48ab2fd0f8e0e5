import FoundationEssentials

/// What a genuine sender adds to a request, from the same scheme table the
/// verifier reads: for `hookguard sign`, the demo and tests.
public enum SignatureSigner {
    /// The header lines for `body`, in the order senders document them: the
    /// delivery id (when the scheme has one and `id` is given), the timestamp
    /// (for schemes with a header of its own), then the signature.
    public static func headers(
        _ scheme: Scheme, secret: Secret, body: [UInt8], timestamp: Int, id: String?
    ) throws(Scheme.KeyError) -> [(name: String, value: String)] {
        let key = try scheme.key(from: secret)
        let stamp = String(timestamp)
        let message = scheme.signedMessage(body: body, timestamp: stamp[...], id: id?[...])
        var lines: [(name: String, value: String)] = []
        if let idHeader = scheme.idHeader, let id { lines.append((idHeader.display, id)) }
        if case .header(let name) = scheme.timestamp { lines.append((name.display, stamp)) }
        lines.append((scheme.signatureHeader.display, signatureValue(scheme, key: key, message: message, timestamp: stamp)))
        return lines
    }

    /// The signature header's value: prefix and encoded MAC (or the token),
    /// after the timestamp entry for schemes that carry it in the same header.
    /// Signing serves tools and tests, not the request path: a libcrypto
    /// failure stops the process rather than yield a wrong signature.
    static func signatureValue(_ scheme: Scheme, key: Secret, message: [UInt8], timestamp: String?) -> String {
        func mac() -> [UInt8] {
            do {
                return try MessageAuthentication.code(scheme.algorithm, key: key.bytes, message: message)
            } catch {
                fatalError("cannot sign: \(error)")
            }
        }
        let encoded: String
        switch scheme.encoding {
        case .token:
            encoded = String(decoding: key.bytes, as: UTF8.self)
        case .hex:
            encoded = mac().hexString
        case .base64, .hexOrBase64:
            encoded = Data(mac()).base64EncodedString()
        }
        let signature = scheme.prefix + encoded
        if case .field(let field) = scheme.timestamp, let timestamp, let separator = scheme.separator {
            return field + timestamp + String(separator) + signature
        }
        return signature
    }
}
