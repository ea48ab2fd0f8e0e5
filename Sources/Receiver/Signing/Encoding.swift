import FastCGI
import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS
import Posix

/// How a scheme writes the MAC in its header.
package enum SignatureEncoding: String, Sendable, CaseIterable {
    case hex
    case base64
    /// For senders whose documents do not say: hex when the value is exactly
    /// the digest's length in hex digits, else base64.
    case hexOrBase64 = "hex-or-base64"
    /// No MAC: the header carries the shared secret itself (GitLab's
    /// X-Gitlab-Token), compared in constant time.
    case token
}

enum SignatureDecoding {
    static func decode(_ text: Substring, as encoding: SignatureEncoding, byteCount: Int) -> [UInt8]? {
        switch encoding {
        case .hex:
            return hex(text)
        case .base64:
            return base64(text)
        case .hexOrBase64:
            if text.utf8.count == byteCount * 2, let bytes = hex(text) { return bytes }
            return base64(text)
        case .token:
            return text.isEmpty ? nil : Array(text.utf8)
        }
    }

    /// When `text` is a MAC of the right length in the other encoding, a
    /// sentence saying so: the commonest mistake when copying a scheme.
    static func misencodingHint(_ text: Substring, expected: SignatureEncoding, byteCount: Int) -> String? {
        switch expected {
        case .base64 where text.utf8.count == byteCount * 2 && hex(text) != nil:
            "it looks like hex, and this scheme sends base64"
        case .hex where hex(text) == nil && base64(text)?.count == byteCount:
            "it looks like base64, and this scheme sends hex"
        default:
            nil
        }
    }

    /// Hex digits in either case, two per byte.
    static func hex(_ text: Substring) -> [UInt8]? {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var high: UInt8? = nil
        for char in utf8 {
            guard let nibble = hexValue(char) else { return nil }
            if let h = high {
                bytes.append(h << 4 | nibble)
                high = nil
            } else {
                high = nibble
            }
        }
        return bytes
    }

    static func base64(_ text: Substring) -> [UInt8]? {
        guard !text.isEmpty, let data = Data(base64Encoded: String(text)) else { return nil }
        return [UInt8](data)
    }

    /// Base64 with the `=` padding a copy may have lost put back.
    static func padded(_ text: Substring) -> Substring {
        let missing = (4 - text.utf8.count % 4) % 4
        guard missing < 3 else { return text }  // one character over: no padding makes it base64
        return text + String(repeating: "=", count: missing)
    }

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex, as the senders write it.
    package var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
