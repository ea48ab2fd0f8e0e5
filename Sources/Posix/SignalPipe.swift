package import Glibc

/// Turns signals into bytes on a pipe, so one `poll` waits for signals,
/// directory changes and commands alike. The signals are blocked in the
/// calling thread (and so in every thread started after it) and taken by a
/// thread of its own with `sigwait`: nothing runs in a signal handler.
package final class SignalPipe {
    package let fd: Int32

    /// Call before any other thread is started, so none of them can take the signals.
    package init(_ signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        let blocked = pthread_sigmask(SIG_BLOCK, &set, nil)
        // Unblocked, a SIGTERM would end drain at once instead of starting its grace.
        guard blocked == 0 else { throw SystemError("pthread_sigmask", errno: blocked) }
        let ends = try makePipe(nonBlocking: .read)
        // A full pipe already says "look": a write that would block is dropped.
        do {
            try setNonBlocking(ends.write)
        } catch {
            close(ends.read)
            close(ends.write)
            throw error
        }
        fd = ends.read
        let writeEnd = ends.write
        let waited = set
        // Runs for the life of the process; never joined.
        _ = WorkerThread {
            var set = waited
            while true {
                var received: Int32 = 0
                guard sigwait(&set, &received) == 0 else { continue }
                var byte = UInt8(truncatingIfNeeded: received)
                _ = write(writeEnd, &byte, 1)
            }
        }
    }

    /// The signals received since the last call.
    package func received() -> [Int32] {
        var signals: [Int32] = []
        var bytes = [UInt8](repeating: 0, count: 64)
        while true {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            guard count > 0 else { return signals }
            signals += bytes[..<count].map { Int32($0) }
        }
    }
}
