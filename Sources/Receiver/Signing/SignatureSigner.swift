import FastCGI
import FoundationEssentials
import Posix

/// What a genuine sender adds to a request, from the same scheme table the
/// verifier reads: for `hookguard sign`, the demo and tests.
package enum SignatureSigner {
    /// The header lines for `body`, in the order senders document them: the
    /// delivery id (when the scheme has one and `id` is given), the timestamp
    /// (for schemes with a header of its own), then the signature.
    package static func headers(
        _ scheme: Scheme, secret: Secret, body: [UInt8], timestamp: Int, id: String?, url: String = ""
    ) throws(Scheme.KeyError) -> [(name: String, value: String)] {
        guard scheme.publicKey == nil else {
            throw Scheme.KeyError(
                scheme: scheme.name, problem: "\(scheme.name) is signed with a private key, not a secret")
        }
        guard scheme.bodySignature == nil else {
            throw Scheme.KeyError(
                scheme: scheme.name, problem: "\(scheme.name) signs inside the body: there is no header to add")
        }
        let key = try scheme.key(from: secret)
        guard !key.isPublicKey else {
            throw Scheme.KeyError(
                scheme: scheme.name,
                problem: "a whpk_ package key cannot sign: give the private key (--private-key-file)")
        }
        return lines(scheme, body: body, timestamp: timestamp, id: id, url: url) { message, stamp in
            signatureValue(scheme, key: key, message: message, timestamp: stamp)
        }
    }

    /// The same for a package-key scheme, signed with the sender's private key
    /// (PEM), to test one's own endpoint.
    package static func headers(
        _ scheme: Scheme, privateKeyPEM: [UInt8], body: [UInt8], timestamp: Int, id: String?, url: String = ""
    ) throws(Scheme.KeyError) -> [(name: String, value: String)] {
        // Standard Webhooks signs v1a entries with an Ed25519 private key.
        guard let algorithm = scheme.publicKey ?? (scheme.asymmetricPrefix == nil ? nil : .ed25519) else {
            throw Scheme.KeyError(
                scheme: scheme.name, problem: "\(scheme.name) is signed with a shared secret, not a private key")
        }
        let prefix = scheme.publicKey == nil ? scheme.asymmetricPrefix ?? "" : scheme.prefix
        var failed = false
        let result = lines(scheme, body: body, timestamp: timestamp, id: id, url: url) { message, stamp in
            guard let signature = PublicKeySignature.sign(algorithm, privateKeyPEM: privateKeyPEM, message: message)
            else {
                failed = true
                return ""
            }
            return wrap(scheme, encode(scheme.encoding, signature), timestamp: stamp, prefix: prefix)
        }
        if failed {
            throw Scheme.KeyError(scheme: scheme.name, problem: "not a PEM \(algorithm.rawValue) private key")
        }
        return result
    }

    private static func lines(
        _ scheme: Scheme, body: [UInt8], timestamp: Int, id: String?, url: String,
        sign: ([UInt8], String) -> String
    ) -> [(name: String, value: String)] {
        let stamp = scheme.timestampFormat.text(timestamp)
        let message = scheme.signedMessage(body: body, timestamp: stamp[...], id: id?[...], url: url)
        var lines: [(name: String, value: String)] = []
        if let idHeader = scheme.idHeader, let id { lines.append((idHeader.display, id)) }
        if case .header(let name) = scheme.timestamp { lines.append((name.display, stamp)) }
        lines.append((scheme.signatureHeader.display, sign(message, stamp)))
        return lines
    }

    /// The signature header's value: prefix and encoded MAC (or the token),
    /// after the timestamp entry for schemes that carry it in the same header.
    /// Signing serves tools and tests, not the request path: a libcrypto
    /// failure stops the process rather than yield a wrong signature.
    static func signatureValue(_ scheme: Scheme, key: Secret, message: [UInt8], timestamp: String?) -> String {
        let encoded =
            scheme.encoding == .token
            ? String(decoding: key.bytes, as: UTF8.self)
            : encode(scheme.encoding, mac(scheme.algorithm, key: key, message: message))
        return wrap(scheme, encoded, timestamp: timestamp)
    }

    private static func mac(_ algorithm: DigestAlgorithm, key: Secret, message: [UInt8]) -> [UInt8] {
        do {
            return try MessageAuthentication.code(algorithm, key: key.bytes, message: message)
        } catch {
            fatalError("cannot sign: \(error)")
        }
    }

    private static func encode(_ encoding: SignatureEncoding, _ bytes: [UInt8]) -> String {
        encoding == .hex ? bytes.hexString : Data(bytes).base64EncodedString()
    }

    private static func wrap(_ scheme: Scheme, _ encoded: String, timestamp: String?, prefix: String? = nil) -> String {
        let signature = (prefix ?? scheme.prefix) + encoded
        if case .field(let field) = scheme.timestamp, let timestamp, let separator = scheme.separator {
            return field + timestamp + String(separator) + signature
        }
        return signature
    }
}
