package import Glibc

/// A point in monotonic time that bounds every step of one hand-over
/// (connect, write, acknowledgement) together, or a connection's wait.
package struct Deadline: Comparable, Sendable {
    package let nanoseconds: UInt64

    package init(milliseconds: Int) {
        nanoseconds = monotonicNanoseconds() + UInt64(max(0, milliseconds)) * 1_000_000
    }

    package init(after seconds: Double) {
        nanoseconds = monotonicNanoseconds() + UInt64(max(0, min(seconds, 1e9)) * 1e9)
    }

    package static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// What is left, as a socket timeout; nil once the deadline has passed.
    package var remaining: timeval? {
        guard let left = remainingNanoseconds else { return nil }
        var remaining = timeval()
        remaining.tv_sec = Int(left / 1_000_000_000)
        remaining.tv_usec = Int(left % 1_000_000_000 / 1000)
        return remaining
    }

    /// What is left in whole milliseconds, at least 1; nil once the deadline has passed.
    package var remainingMilliseconds: Int? {
        remainingNanoseconds.map { max(1, Int($0 / 1_000_000)) }
    }

    private var remainingNanoseconds: UInt64? {
        let now = monotonicNanoseconds()
        return now < nanoseconds ? nanoseconds - now : nil
    }
}

/// The process's one monotonic clock, in nanoseconds: deadlines, breaker
/// back-offs, lock waits, restart rates and request durations all read it.
package func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

extension Sys {
    /// The wall clock (CLOCK_REALTIME): seconds and nanoseconds since the epoch.
    package static func wallClock() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec, ts.tv_nsec)
    }
}
