internal import CLibCrypto
import FastCGI
import Posix

/// The hash functions a scheme may name.
package enum DigestAlgorithm: String, Sendable, CaseIterable {
    case sha1, sha256, sha384, sha512

    package var byteCount: Int {
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

/// libcrypto could not compute a MAC or digest (memory, a provider that
/// would not load): the request cannot be checked. Never a match; the
/// handler answers 503 so the sender retries.
package struct CryptoFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The libcrypto call that failed, e.g. "HMAC".
    package let call: String
    /// libcrypto's own words from its error queue, when it left any.
    package let reason: String?

    /// Takes (and clears) this thread's libcrypto error queue for `call`.
    static func drainingErrorQueue(_ call: String) -> CryptoFailure {
        var reason: String? = nil
        let code = ERR_get_error()
        if code != 0 {
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        ERR_clear_error()
        return CryptoFailure(call: call, reason: reason)
    }

    package var description: String {
        "libcrypto \(call)() failed" + (reason.map { ": \($0)" } ?? "")
    }
}

#if DEBUG
/// Debug builds only: makes every libcrypto call on this task report failure,
/// so tests reach the paths a real libcrypto failure takes. Release builds
/// have no such check on the hot path.
enum LibcryptoFaultInjection {
    @TaskLocal static var failing = false
}
#endif

/// Whether a libcrypto call succeeded: `ok`, unless a test injects a failure.
@inline(__always)
private func libcryptoSucceeded(_ ok: Bool) -> Bool {
    #if DEBUG
    if LibcryptoFaultInjection.failing { return false }
    #endif
    return ok
}

/// HMAC and constant-time comparison from libcrypto; the only user of CLibCrypto.
/// Every libcrypto failure is thrown as `CryptoFailure`, never an empty result.
package enum MessageAuthentication {
    /// HMAC of `message` under `key`, computed in place over the caller's bytes.
    package static func code(
        _ algorithm: DigestAlgorithm, key: [UInt8], message: UnsafeRawBufferPointer
    ) throws(CryptoFailure) -> [UInt8] {
        if let keyed = KeyedMAC.cached(algorithm, key: key), let code = keyed.code(message) {
            return code
        }
        return try oneShot(algorithm, key: key, message: message)
    }

    /// libcrypto's one-shot `HMAC()`: it looks the algorithms up and sets the
    /// key on every call, about 2 µs more than a keyed context for a 1.5 KB body.
    static func oneShot(
        _ algorithm: DigestAlgorithm, key: [UInt8], message: UnsafeRawBufferPointer
    ) throws(CryptoFailure) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        // libcrypto wants a non-null data pointer even for an empty message.
        let empty: UInt8 = 0
        let made = withUnsafePointer(to: empty) { emptyPointer in
            let data = message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer
            return key.withUnsafeBytes { keyBytes in
                output.withUnsafeMutableBufferPointer { out in
                    HMAC(
                        algorithm.evp, keyBytes.baseAddress ?? UnsafeRawPointer(emptyPointer),
                        Int32(keyBytes.count), data, message.count, out.baseAddress, &length) != nil
                }
            }
        }
        guard libcryptoSucceeded(made), Int(length) == algorithm.byteCount else {
            throw CryptoFailure.drainingErrorQueue("HMAC")
        }
        output.removeSubrange(Int(length)...)
        return output
    }

    package static func code(
        _ algorithm: DigestAlgorithm, key: [UInt8], message: [UInt8]
    ) throws(CryptoFailure) -> [UInt8] {
        let result = message.withUnsafeBytes { bytes in
            Result { () throws(CryptoFailure) in try code(algorithm, key: key, message: bytes) }
        }
        return try result.get()
    }

    /// SHA-256 of `bytes` (a plain digest, no key), e.g. to name a file after
    /// text a sender chose.
    package static func sha256(_ bytes: [UInt8]) throws(CryptoFailure) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let empty: UInt8 = 0
        let made = withUnsafePointer(to: empty) { emptyPointer in
            bytes.withUnsafeBytes { data in
                output.withUnsafeMutableBufferPointer { out in
                    EVP_Digest(
                        data.baseAddress ?? UnsafeRawPointer(emptyPointer), data.count, out.baseAddress, &length,
                        EVP_sha256(), nil) == 1
                }
            }
        }
        guard libcryptoSucceeded(made), length == 32 else { throw CryptoFailure.drainingErrorQueue("EVP_Digest") }
        output.removeSubrange(Int(length)...)
        return output
    }

    /// Whether a shared token sent in a header equals a secret, in time that
    /// depends on neither where they differ nor the secret's length: both are
    /// first reduced to an HMAC under a key drawn once per process.
    package static func tokenEquals(_ received: [UInt8], _ secret: [UInt8]) throws(CryptoFailure) -> Bool {
        constantTimeEquals(
            try code(.sha256, key: tokenComparisonKey, message: received),
            try code(.sha256, key: tokenComparisonKey, message: secret))
    }

    private static let tokenComparisonKey: [UInt8] = {
        var random = SystemRandomNumberGenerator()
        return (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
    }()

    /// Equal lengths and equal bytes, compared in time that does not depend
    /// on where the first difference is. An empty array equals nothing, not
    /// even another: no MAC is empty, so an empty one is a failure upstream.
    package static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count, !a.isEmpty else { return false }
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
    private static let cache = Locked<[CacheKey: KeyedMAC]>([:])
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
            hookguard_hmac_context(
                algorithm.libcryptoName, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        guard let made, libcryptoSucceeded(true) else {
            if let made { EVP_MAC_CTX_free(made) }
            ERR_clear_error()  // the caller falls back to HMAC(), which reports its own failure
            return nil
        }
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
                EVP_MAC_update(
                    run, message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer, message.count) == 1
                    && EVP_MAC_final(run, out.baseAddress, &length, out.count) == 1
            }
        }
        guard libcryptoSucceeded(ok), length == outputSize else {
            ERR_clear_error()
            return nil
        }
        return output
    }
}
