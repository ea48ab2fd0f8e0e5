internal import CLibCrypto

/// The hash functions a scheme may name.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha1, sha256, sha384, sha512

    public var byteCount: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    fileprivate var evp: OpaquePointer? {
        switch self {
        case .sha1: EVP_sha1()
        case .sha256: EVP_sha256()
        case .sha384: EVP_sha384()
        case .sha512: EVP_sha512()
        }
    }
}

/// HMAC and constant-time comparison from libcrypto; the only user of CLibCrypto.
public enum MessageAuthentication {
    /// HMAC of `message` under `key`, computed in place over the caller's bytes.
    public static func code(
        _ algorithm: DigestAlgorithm, key: [UInt8], message: UnsafeRawBufferPointer
    ) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // libcrypto wants a non-null data pointer even for an empty message.
        let empty: UInt8 = 0
        withUnsafePointer(to: empty) { emptyPointer in
            let data = message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer
            key.withUnsafeBytes { keyBytes in
                output.withUnsafeMutableBufferPointer { out in
                    _ = HMAC(
                        algorithm.evp, keyBytes.baseAddress ?? UnsafeRawPointer(emptyPointer),
                        Int32(keyBytes.count), data, message.count, out.baseAddress, &length)
                }
            }
        }
        output.removeSubrange(Int(length)...)
        return output
    }

    public static func code(_ algorithm: DigestAlgorithm, key: [UInt8], message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { code(algorithm, key: key, message: $0) }
    }

    /// SHA-256 of `bytes` (a plain digest, no key), e.g. to name a file after
    /// text a sender chose.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let empty: UInt8 = 0
        withUnsafePointer(to: empty) { emptyPointer in
            bytes.withUnsafeBytes { data in
                output.withUnsafeMutableBufferPointer { out in
                    _ = EVP_Digest(
                        data.baseAddress ?? UnsafeRawPointer(emptyPointer), data.count, out.baseAddress, &length,
                        EVP_sha256(), nil)
                }
            }
        }
        output.removeSubrange(Int(length)...)
        return output
    }

    /// Whether a shared token sent in a header equals a secret, in time that
    /// depends on neither where they differ nor the secret's length: both are
    /// first reduced to an HMAC under a key drawn once per process.
    public static func tokenEquals(_ received: [UInt8], _ secret: [UInt8]) -> Bool {
        constantTimeEquals(
            code(.sha256, key: tokenComparisonKey, message: received),
            code(.sha256, key: tokenComparisonKey, message: secret))
    }

    private static let tokenComparisonKey: [UInt8] = {
        var random = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
    }()

    /// Equal lengths and equal bytes, compared in time that does not depend
    /// on where the first difference is.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb in CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, a.count) == 0 }
        }
    }
}
