import FastCGI
import Posix

/// How a sender writes the timestamp it signs.
package enum TimestampFormat: String, Sendable, CaseIterable {
    /// Decimal Unix seconds (Stripe, Slack, Standard Webhooks).
    case unixSeconds = "seconds"
    /// Decimal Unix milliseconds (WorkOS).
    case unixMilliseconds = "milliseconds"
    /// RFC 3339 / ISO 8601 in UTC or with an offset, with up to nanoseconds
    /// (Twitch `2023-01-01T00:00:00.123456789Z`, Zendesk `2021-03-25T05:09:27Z`).
    case rfc3339

    /// The Unix seconds a timestamp stands for (fractions dropped), or nil
    /// when it is not written this way.
    package func seconds(_ text: Substring) -> Int? {
        switch self {
        case .unixSeconds: Self.decimal(text, maxDigits: 12)
        case .unixMilliseconds: Self.decimal(text, maxDigits: 15).map { $0 / 1000 }
        case .rfc3339: Self.rfc3339Seconds(text)
        }
    }

    /// The timestamp a sender would write at `seconds`.
    package func text(_ seconds: Int) -> String {
        switch self {
        case .unixSeconds: String(seconds)
        case .unixMilliseconds: String(seconds * 1000)
        case .rfc3339: Timestamp(seconds: seconds).rfc3339Seconds
        }
    }

    /// What a malformed timestamp was expected to be.
    var expectation: String {
        switch self {
        case .unixSeconds: "a Unix time in seconds"
        case .unixMilliseconds: "a Unix time in milliseconds"
        case .rfc3339: "an RFC 3339 time such as 2026-01-02T03:04:05Z"
        }
    }

    private static func decimal(_ text: Substring, maxDigits: Int) -> Int? {
        guard !text.isEmpty, text.utf8.count <= maxDigits, text.utf8.allSatisfy({ (0x30...0x39).contains($0) })
        else { return nil }
        return Int(text)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, converted by libc's `timegm` (`Sys.unixSeconds`).
    private static func rfc3339Seconds(_ text: Substring) -> Int? {
        let bytes = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int32? {
            guard range.upperBound <= bytes.count else { return nil }
            var value: Int32 = 0
            for byte in bytes[range] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int32(byte - 0x30)
            }
            return value
        }
        func byte(_ index: Int, _ allowed: String) -> Bool {
            index < bytes.count && allowed.utf8.contains(bytes[index])
        }
        guard bytes.count >= 20, let year = number(0..<4), byte(4, "-"), let month = number(5..<7), byte(7, "-"),
            let day = number(8..<10), byte(10, "Tt "), let hour = number(11..<13), byte(13, ":"),
            let minute = number(14..<16), byte(16, ":"), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var index = 19
        if byte(index, ".") {
            index += 1
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            guard (1...9).contains(index - start) else { return nil }
        }
        var offset = 0
        if byte(index, "Zz") {
            index += 1
        } else if byte(index, "+-"), let hours = number(index + 1..<index + 3), byte(index + 3, ":"),
            let minutes = number(index + 4..<index + 6), hours < 24, minutes < 60
        {
            offset = (bytes[index] == UInt8(ascii: "-") ? -1 : 1) * Int(hours * 3600 + minutes * 60)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        let time = CalendarTime(
            year: Int(year), month: Int(month), day: Int(day), hour: Int(hour), minute: Int(minute), second: Int(second)
        )
        return Sys.unixSeconds(utc: time) - offset
    }
}

extension Timestamp {
    /// RFC 3339 in UTC to the second, e.g. `2026-11-22T16:40:00Z`.
    var rfc3339Seconds: String { String(rfc3339.prefix(19)) + "Z" }
}
