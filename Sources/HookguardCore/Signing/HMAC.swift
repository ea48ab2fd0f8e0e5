internal import CLibCrypto
import Synchronization

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

    /// The digest's name for libcrypto's EVP_MAC.
    fileprivate var libcryptoName: String {
        switch self {
        case .sha1: "SHA1"
        case .sha256: "SHA256"
        case .sha384: "SHA384"
        case .sha512: "SHA512"
        }
    }
}

/// HMAC and constant-time comparison from libcrypto; the only user of CLibCrypto.
public enum MessageAuthentication {
    /// HMAC of `message` under `key`, computed in place over the caller's bytes.
    public static func code(
        _ algorithm: DigestAlgorithm, key: [UInt8], message: UnsafeRawBufferPointer
    ) -> [UInt8] {
        if let keyed = KeyedMAC.cached(algorithm, key: key), let code = keyed.code(message) {
            return code
        }
        return oneShot(algorithm, key: key, message: message)
    }

    /// libcrypto's one-shot `HMAC()`: it looks the algorithms up and sets the
    /// key on every call, about 2 µs more than a keyed context for a 1.5 KB body.
    static func oneShot(
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

/// An HMAC context with its key already set (libcrypto's algorithm lookups and
/// the key's two hash blocks done once); each message runs on a duplicate, so
/// one keyed context serves every worker at once.
final class KeyedMAC: @unchecked Sendable {  // the context is only read (duplicated) after init
    private let context: OpaquePointer
    private let outputSize: Int

    private struct CacheKey: Hashable {
        var algorithm: DigestAlgorithm
        var key: [UInt8]
    }

    /// Keyed contexts by algorithm and key. Secrets are few; the cache is
    /// emptied if it ever holds more than `cacheLimit` of them.
    private static let cache = Mutex<[CacheKey: KeyedMAC]>([:])
    private static let cacheLimit = 256

    static func cached(_ algorithm: DigestAlgorithm, key: [UInt8]) -> KeyedMAC? {
        let cacheKey = CacheKey(algorithm: algorithm, key: key)
        if let keyed = cache.withLock({ $0[cacheKey] }) { return keyed }
        guard let keyed = KeyedMAC(algorithm, key: key) else { return nil }
        cache.withLock { cache in
            if cache.count >= cacheLimit { cache.removeAll() }
            cache[cacheKey] = keyed
        }
        return keyed
    }

    init?(_ algorithm: DigestAlgorithm, key: [UInt8]) {
        let made = key.withUnsafeBytes { bytes in
            hookguard_hmac_context(algorithm.libcryptoName, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard let made else { return nil }
        context = made
        outputSize = algorithm.byteCount
    }

    deinit {
        EVP_MAC_CTX_free(context)
    }

    /// The MAC of `message`; nil if libcrypto failed (the caller falls back).
    func code(_ message: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let run = EVP_MAC_CTX_dup(context) else { return nil }
        defer { EVP_MAC_CTX_free(run) }
        var output = [UInt8](repeating: 0, count: outputSize)
        var length = 0
        let empty: UInt8 = 0
        let ok = withUnsafePointer(to: empty) { emptyPointer in
            output.withUnsafeMutableBufferPointer { out in
                EVP_MAC_update(run, message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer, message.count) == 1
                    && EVP_MAC_final(run, out.baseAddress, &length, out.count) == 1
            }
        }
        guard ok, length == outputSize else { return nil }
        return output
    }
}
