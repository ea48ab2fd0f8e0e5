import Glibc

/// The other processes, not hookguard itself, that have the file open on
/// `fd` open too, from `/proc/<pid>/fd` (processes this user may not look
/// into are not seen; other drains waiting for the file are left out).
/// Drain asks after a command has ended, to find what it left running with
/// the delivery's descriptor: a `setsid` child that inherited fd 3 holds the
/// delivery's lock for as long as it lives.
package func processesHolding(_ fd: Int32) -> [Int32] {
    var own = stat()
    var hookguard = stat()
    guard fstat(fd, &own) == 0, stat("/proc/self/exe", &hookguard) == 0,
        let names = try? listDirectory("/proc")
    else { return [] }
    func isHookguard(_ pid: String) -> Bool {
        var exe = stat()
        return stat("/proc/\(pid)/exe", &exe) == 0 && exe.st_ino == hookguard.st_ino && exe.st_dev == hookguard.st_dev
    }
    let me = getpid()
    var holders: [Int32] = []
    for name in names {
        guard let pid = Int32(name), pid != me, let fds = try? listDirectory("/proc/\(name)/fd"), !isHookguard(name)
        else { continue }
        for entry in fds {
            var other = stat()
            if stat("/proc/\(name)/fd/\(entry)", &other) == 0, other.st_ino == own.st_ino, other.st_dev == own.st_dev {
                holders.append(pid)
                break
            }
        }
    }
    return holders
}
