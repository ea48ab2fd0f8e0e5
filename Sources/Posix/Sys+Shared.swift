import Glibc

// The calls this branch (sys-files) needs that branch sys-procs adds with the
// same signatures (in Sys+Processes and Deadline.swift).
// When both are merged, keep sys-procs' and delete this file.
extension Sys {
    /// Sends `signal` to process `pid`. A pid of 0 or less would reach a
    /// whole group or every process the caller may signal: refused (EINVAL).
    package static func kill(_ pid: Int32, _ signal: Int32) throws(SystemError) {
        guard pid > 0 else { throw SystemError("kill(\(pid))", errno: EINVAL) }
        try syscall("kill") { Glibc.kill(pid, signal) }
    }

    package static var processID: Int32 { getpid() }

    /// Sleeps `seconds`, whatever signals interrupt it.
    package static func sleep(seconds: Double) {
        var left = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&left, &remaining) != 0 && errno == EINTR { left = remaining }
    }

    /// The user and group ids of the account `name`; nil when there is none.
    package static func account(named name: String) -> (uid: UInt32, gid: UInt32)? {
        guard let entry = getpwnam(name) else { return nil }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    /// The name of the account `uid`; nil when it has none.
    package static func accountName(of uid: UInt32) -> String? {
        getpwuid(uid).map { String(cString: $0.pointee.pw_name) }
    }

    package static var effectiveUserID: UInt32 { geteuid() }

    /// The wall clock (CLOCK_REALTIME): seconds and nanoseconds since the epoch.
    package static func wallClock() -> (seconds: Int, nanoseconds: Int) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (ts.tv_sec, ts.tv_nsec)
    }
}
