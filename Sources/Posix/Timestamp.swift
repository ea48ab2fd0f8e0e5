/// A moment in UTC with nanoseconds: the wall clock's now, a file's times,
/// the envelope's `received_at`.
package struct Timestamp: Sendable, Comparable {
    package var seconds: Int
    package var nanoseconds: Int

    package init(seconds: Int, nanoseconds: Int = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    package static func now() -> Timestamp {
        let now = Sys.wallClock()
        return Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds)
    }

    package var milliseconds: UInt64 { UInt64(seconds) * 1000 + UInt64(nanoseconds / 1_000_000) }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T16:40:00.123Z`.
    package var rfc3339: String {
        let parts = Sys.utcCalendarTime(seconds)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.year, 4))-\(pad(parts.month, 2))-\(pad(parts.day, 2))"
            + "T\(pad(parts.hour, 2)):\(pad(parts.minute, 2)):\(pad(parts.second, 2))"
            + ".\(pad(nanoseconds / 1_000_000, 3))Z"
    }

    package static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}
