import Glibc

/// Processes: fork, signals to one process or its group, reaping, exit, and
/// the accounts a process runs as.
extension Sys {
    /// The child's side gets 0, the parent's the child's pid.
    package static func fork() throws(SystemError) -> Int32 {
        try syscall("fork") { Glibc.fork() }
    }

    /// Sends `signal` to process `pid`. A pid of 0 or less would reach a
    /// whole group or every process the caller may signal: refused (EINVAL).
    package static func kill(_ pid: Int32, _ signal: Int32) throws(SystemError) {
        guard pid > 0 else { throw SystemError("kill(\(pid))", errno: EINVAL) }
        try syscall("kill") { Glibc.kill(pid, signal) }
    }

    /// Sends `signal` to the process group `leader` leads (as `kill(-leader)`),
    /// so what it started goes too; refused for a leader of 0 or less, as `kill`.
    package static func killGroup(_ leader: Int32, _ signal: Int32) throws(SystemError) {
        guard leader > 0 else { throw SystemError("kill(-\(leader))", errno: EINVAL) }
        try syscall("kill") { Glibc.kill(-leader, signal) }
    }

    /// How child `pid` ended, once it has; nil while it runs (or when it is
    /// no child of this process). `blocking`: waits for it to end.
    package static func reap(_ pid: Int32, blocking: Bool) -> ExitStatus? {
        var status: Int32 = 0
        let reaped = try? syscall("waitpid") { waitpid(pid, &status, blocking ? 0 : WNOHANG) }
        return reaped == pid ? ExitStatus(waitStatus: status) : nil
    }

    /// Reaps one child that has ended, without waiting; nil when none has.
    package static func reapAnyChild() -> (pid: Int32, status: ExitStatus)? {
        var status: Int32 = 0
        guard let pid = try? syscall("waitpid", { waitpid(-1, &status, WNOHANG) }), pid > 0 else { return nil }
        return (pid, ExitStatus(waitStatus: status))
    }

    /// Ends the process at once, without `exit()`'s handlers: for a forked
    /// child, or when abandoned threads may still be running.
    package static func exitNow(_ status: Int32) -> Never {
        _exit(status)
    }

    package static var processID: Int32 { getpid() }
    package static var parentProcessID: Int32 { getppid() }

    /// Sleeps `seconds`, whatever signals interrupt it.
    package static func sleep(seconds: Double) {
        var left = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&left, &remaining) != 0 && errno == EINTR { left = remaining }
    }

    // MARK: accounts

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

    /// Takes on account `name`'s groups, group and user id for good (needs root).
    package static func become(_ name: String, uid: UInt32, gid: UInt32) throws(SystemError) {
        try syscall("initgroups", path: name) { initgroups(name, gid) }
        try syscall("setgid", path: name) { setgid(gid) }
        try syscall("setuid", path: name) { setuid(uid) }
    }

    /// Whether the process could make itself root again (it does, if so).
    package static var canBecomeRoot: Bool { setuid(0) == 0 }
}

/// How a process ended, from `waitpid`'s status: the one decoder of it.
package enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    package init(waitStatus status: Int32) {
        let signal = status & 0x7f
        self = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    package var succeeded: Bool { self == .exited(0) }

    /// As a shell would pass it on: the exit status, or 1 for a process killed by a signal.
    package var exitCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled: 1
        }
    }

    package var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
        }
    }
}
