import FastCGI
import Posix

/// A delivery's id: a UUIDv7 (RFC 9562), unique across processes and hosts
/// (74 random bits) and sorting by arrival time (48-bit milliseconds, then a
/// 12-bit counter that keeps ids from one process strictly increasing).
package struct DeliveryID: Sendable, Hashable, Comparable, CustomStringConvertible {
    package let text: String

    package var description: String { text }

    package static func < (a: DeliveryID, b: DeliveryID) -> Bool { a.text < b.text }

    private static let clock = Locked<(milliseconds: UInt64, sequence: UInt16)>((0, 0))

    /// A new id; `milliseconds` is the Unix time it is stamped with.
    package static func next(milliseconds now: UInt64) -> DeliveryID {
        let (milliseconds, sequence) = clock.withLock { state -> (UInt64, UInt16) in
            if now > state.milliseconds {
                state = (now, UInt16.random(in: 0..<0x400))
            } else if state.sequence < 0xfff {
                state.sequence += 1
            } else {
                state = (state.milliseconds + 1, 0)
            }
            return state
        }
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(i))) }
        bytes[6] = 0x70 | UInt8(sequence >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: sequence)
        var random = SystemRandomNumberGenerator()
        let tail = random.next() as UInt64
        for i in 8..<16 { bytes[i] = UInt8(truncatingIfNeeded: tail >> (8 * UInt64(i - 8))) }
        bytes[8] = 0x80 | (bytes[8] & 0x3f)
        let hex = bytes.hexString
        let utf8 = Array(hex.utf8)
        var text = [UInt8]()
        text.reserveCapacity(36)
        for (i, c) in utf8.enumerated() {
            if i == 8 || i == 12 || i == 16 || i == 20 { text.append(UInt8(ascii: "-")) }
            text.append(c)
        }
        return DeliveryID(text: String(decoding: text, as: UTF8.self))
    }

    init(text: String) {
        self.text = text
    }

    /// Parses the canonical lower-case text form, and nothing else, so an id
    /// can be trusted as a file name.
    package init?(parsing text: String) {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        for (i, c) in utf8.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard c == UInt8(ascii: "-") else { return nil }
            } else {
                guard
                    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
                        || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(c)
                else { return nil }
            }
        }
        self.text = text
    }
}
