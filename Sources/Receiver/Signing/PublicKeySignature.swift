internal import CLibCrypto
import FastCGI
import Posix

/// The package-key signatures a scheme may name, verified by libcrypto's EVP.
package enum PublicKeyAlgorithm: String, Sendable, CaseIterable {
    /// Ed25519 (RFC 8032): 32-byte raw package keys, 64-byte signatures.
    case ed25519
    /// ECDSA on P-256 over SHA-256: DER SubjectPublicKeyInfo keys, DER signatures.
    case ecdsaP256 = "ecdsa-p256"

    /// The signature's exact length, when it has one.
    var signatureLength: Int? {
        switch self {
        case .ed25519: 64
        case .ecdsaP256: nil
        }
    }

    /// The digest libcrypto hashes with before signing; Ed25519 hashes itself.
    fileprivate var digestName: String? {
        switch self {
        case .ed25519: nil
        case .ecdsaP256: "SHA256"
        }
    }
}

/// Ed25519 and ECDSA P-256 through EVP, and nothing hand-written: a key or
/// a signature libcrypto does not take is a refusal, never an acceptance.
enum PublicKeySignature {
    /// Whether `publicKey` (raw for Ed25519, DER SubjectPublicKeyInfo for
    /// ECDSA) is a key of `algorithm`.
    static func isPublicKey(_ publicKey: [UInt8], of algorithm: PublicKeyAlgorithm) -> Bool {
        guard let key = Self.publicKey(publicKey, algorithm) else { return false }
        EVP_PKEY_free(key)
        return true
    }

    /// Whether `signature` is `algorithm`'s signature of `message` under `publicKey`.
    static func verify(
        _ algorithm: PublicKeyAlgorithm, publicKey: [UInt8], message: [UInt8], signature: [UInt8]
    ) -> Bool {
        guard !signature.isEmpty, let key = Self.publicKey(publicKey, algorithm) else { return false }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit_ex(context, nil, algorithm.digestName, nil, nil, key, nil) == 1 else { return false }
        let empty: UInt8 = 0
        return withUnsafePointer(to: empty) { emptyPointer in
            signature.withUnsafeBufferPointer { sig in
                message.withUnsafeBufferPointer { data in
                    EVP_DigestVerify(context, sig.baseAddress, sig.count, data.baseAddress ?? emptyPointer, data.count)
                        == 1
                }
            }
        }
    }

    /// `message` signed with a PEM private key of `algorithm`, for `hookguard
    /// sign`; nil when the key is not one.
    static func sign(_ algorithm: PublicKeyAlgorithm, privateKeyPEM: [UInt8], message: [UInt8]) -> [UInt8]? {
        let key: OpaquePointer? = privateKeyPEM.withUnsafeBytes { pem in
            guard let bio = BIO_new_mem_buf(pem.baseAddress, Int32(pem.count)) else { return nil }
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard let key else { return nil }
        defer { EVP_PKEY_free(key) }
        guard EVP_PKEY_is_a(key, algorithm == .ed25519 ? "ED25519" : "EC") == 1,
            let context = EVP_MD_CTX_new()
        else { return nil }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit_ex(context, nil, algorithm.digestName, nil, nil, key, nil) == 1 else { return nil }
        var length = 0
        let empty: UInt8 = 0
        return withUnsafePointer(to: empty) { emptyPointer in
            message.withUnsafeBufferPointer { data -> [UInt8]? in
                let base = data.baseAddress ?? emptyPointer
                guard EVP_DigestSign(context, nil, &length, base, data.count) == 1 else { return nil }
                var output = [UInt8](repeating: 0, count: length)
                let ok = output.withUnsafeMutableBufferPointer { out in
                    EVP_DigestSign(context, out.baseAddress, &length, base, data.count) == 1
                }
                return ok ? Array(output.prefix(length)) : nil
            }
        }
    }

    /// The caller frees the key with EVP_PKEY_free.
    private static func publicKey(_ bytes: [UInt8], _ algorithm: PublicKeyAlgorithm) -> OpaquePointer? {
        switch algorithm {
        case .ed25519:
            guard bytes.count == 32 else { return nil }
            return bytes.withUnsafeBufferPointer { raw in
                EVP_PKEY_new_raw_public_key_ex(nil, "ED25519", nil, raw.baseAddress, raw.count)
            }
        case .ecdsaP256:
            guard !bytes.isEmpty else { return nil }
            let key: OpaquePointer? = bytes.withUnsafeBufferPointer { der in
                var cursor: UnsafePointer<UInt8>? = der.baseAddress
                return d2i_PUBKEY(nil, &cursor, der.count)
            }
            guard let key else { return nil }
            var group = [CChar](repeating: 0, count: 32)
            var length = 0
            guard EVP_PKEY_is_a(key, "EC") == 1,
                EVP_PKEY_get_group_name(key, &group, group.count, &length) == 1,
                String(decoding: group.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "prime256v1"
            else {
                EVP_PKEY_free(key)
                return nil
            }
            return key
        }
    }
}
