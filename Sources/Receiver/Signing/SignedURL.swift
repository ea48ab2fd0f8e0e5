import FastCGI
import FoundationEssentials
import Posix

/// What URL-bound schemes sign besides the body: the package URL the sender
/// was given (HOOKGUARD_URL: behind a proxy it cannot be rebuilt reliably),
/// and Twilio's form parameters.
enum SignedURL {
    /// The URL as configured and, for senders whose SDKs try both (Twilio),
    /// the same URL with the scheme's default port added or removed.
    static func candidates(_ url: String, portVariants: Bool) -> [String] {
        guard portVariants else { return [url] }
        let (scheme, defaultPort) = url.hasPrefix("https://") ? ("https://", "443") : ("http://", "80")
        guard url.hasPrefix(scheme) else { return [url] }
        let rest = url.dropFirst(scheme.count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        if authority.hasSuffix(":" + defaultPort) {
            return [url, scheme + authority.dropLast(defaultPort.count + 1) + tail]
        }
        if authority.contains(":") { return [url] }  // another port: signed as it is
        return [url, scheme + authority + ":" + defaultPort + tail]
    }

    /// Twilio: every form parameter's name then value, sorted by name (then
    /// value), names and values URL-decoded; nothing when the URL carries
    /// `bodySHA256` (a JSON body, whose hash is checked instead).
    static func sortedForm(_ body: [UInt8], url: String) -> [UInt8] {
        if bodyHash(in: url) != nil { return [] }
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        for field in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = field.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            pairs.append((formDecoded(parts[0]), parts.count > 1 ? formDecoded(parts[1]) : []))
        }
        var seen = Set<[UInt8]>()
        let unique = pairs.filter { seen.insert($0.name + [0] + $0.value).inserted }
        let sorted = unique.sorted { a, b in
            a.name == b.name ? a.value.lexicographicallyPrecedes(b.value) : a.name.lexicographicallyPrecedes(b.name)
        }
        return sorted.flatMap { $0.name + $0.value }
    }

    /// Whether a body matches the `bodySHA256` its URL carries; true when it carries none.
    static func bodyMatchesHash(_ body: [UInt8], url: String) throws(CryptoFailure) -> Bool {
        guard let expected = bodyHash(in: url) else { return true }
        guard let bytes = SignatureDecoding.hex(Substring(expected)) else { return false }
        return MessageAuthentication.constantTimeEquals(try MessageAuthentication.sha256(body), bytes)
    }

    private static func bodyHash(in url: String) -> String? {
        guard let query = url.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for field in query.split(separator: "&") where field.hasPrefix("bodySHA256=") {
            return String(field.dropFirst("bodySHA256=".count))
        }
        return nil
    }

    /// `+` as space and `%XX` as its byte, as form encoding writes them.
    static func formDecoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
                let high = SignatureDecoding.hex(Substring(decoding: bytes[(index + 1)...(index + 2)], as: UTF8.self))
            {
                out += high
                index += 3
                continue
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }
}
