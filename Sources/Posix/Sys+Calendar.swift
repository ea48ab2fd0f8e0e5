import Glibc

/// A time of day on a date in UTC, as libc's `struct tm` holds it (month 1–12).
package struct CalendarTime: Sendable, Equatable {
    package var year: Int, month: Int, day: Int
    package var hour: Int, minute: Int, second: Int

    package init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
    }
}

extension Sys {
    /// `gmtime_r`: the UTC calendar time of Unix `seconds`.
    package static func utcCalendarTime(_ seconds: Int) -> CalendarTime {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return CalendarTime(
            year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
            hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec))
    }

    /// `timegm`: the Unix seconds of a UTC calendar time (out-of-range fields carry over).
    package static func unixSeconds(utc time: CalendarTime) -> Int {
        var parts = tm()
        parts.tm_year = Int32(time.year - 1900)
        parts.tm_mon = Int32(time.month - 1)
        parts.tm_mday = Int32(time.day)
        parts.tm_hour = Int32(time.hour)
        parts.tm_min = Int32(time.minute)
        parts.tm_sec = Int32(time.second)
        return Int(timegm(&parts))
    }
}
