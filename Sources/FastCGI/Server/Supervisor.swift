import CFastCGI
import Glibc
package import Posix

/// Keeps the server process alive. libfcgi parses records inside
/// `FCGX_Accept_r`, before hookguard sees them, and aborts the process when a
/// record asks it to allocate what it cannot (fcgiapp.c's `Malloc` asserts):
/// so the workers run in a child process, forked again whenever it dies, while
/// this parent holds the listening socket. Connections wait in the socket's
/// backlog during a restart; only the requests in flight in the dead child are
/// lost, unanswered, and their senders retry.
package enum Supervisor {
    /// What the supervisor tells the log.
    package enum Event {
        case started(pid: Int32)
        case died(pid: Int32, status: String)
        /// fork() failed; the next attempt is in `retryIn` seconds.
        case forkFailed(SystemError, retryIn: Int)
        case stopping
        /// The child outlived its grace period (plus a second) and was killed.
        case killed(pid: Int32)
    }

    /// Runs `child` in a forked process until SIGTERM or SIGINT, which it
    /// passes on, giving the child `grace` seconds (and one more) to exit
    /// before killing it. SIGHUP runs `onHangup` here and is passed on.
    /// `child` must return the child's exit status; it runs with every signal
    /// the supervisor handles still blocked, as `FastCGIServer.run` expects.
    /// Returns the child's last exit status (1 if it had to be killed).
    package static func run(
        grace: Double, report: (Event) -> Void, onHangup: () -> Void, child: () -> Int32
    ) -> Int32 {
        // Taken here, on the one thread: a signal thread would make every fork
        // a multi-threaded one, after which the child may not start threads
        // of its own (ThreadSanitizer refuses it).
        let signals = [SIGTERM, SIGINT, SIGHUP, SIGCHLD]
        try? Sys.blockSignals(signals)

        var recentDeaths: [Double] = []
        var forkFailures = 0
        var pid = start(child, report: report, failures: &forkFailures)
        while true {
            // Without a child, wait only until the next fork attempt.
            let received = Sys.waitForSignal(signals, seconds: pid == nil ? Double(retryDelay(forkFailures)) : nil)
            switch received {
            case nil:
                if pid == nil { pid = start(child, report: report, failures: &forkFailures) }
            case SIGHUP:
                onHangup()
                if let pid { try? Sys.kill(pid, SIGHUP) }
            case SIGCHLD:
                guard let running = pid, let status = Sys.reap(running, blocking: false) else { continue }
                report(.died(pid: running, status: status.description))
                // A child that dies at once, again and again, is not helped by haste.
                let now = Double(monotonicNanoseconds()) / 1e9
                recentDeaths = recentDeaths.filter { now - $0 < 10 } + [now]
                if recentDeaths.count > 5 { Sys.sleep(seconds: 1) }
                pid = start(child, report: report, failures: &forkFailures)
            default:
                report(.stopping)
                guard let running = pid else { return 1 }
                return stop(running, signals: signals, grace: grace, report: report)
            }
        }
    }

    /// Passes SIGTERM on and waits for the child for `grace` seconds and one more; then kills it.
    private static func stop(_ pid: Int32, signals: [Int32], grace: Double, report: (Event) -> Void) -> Int32 {
        try? Sys.kill(pid, SIGTERM)
        let deadline = Deadline(after: grace + 1)
        while true {
            if let status = Sys.reap(pid, blocking: false) { return status.exitCode }
            guard let remaining = deadline.remainingMilliseconds else { break }
            _ = Sys.waitForSignal(signals, seconds: Double(remaining) / 1000)
        }
        report(.killed(pid: pid))
        try? Sys.kill(pid, SIGKILL)
        return Sys.reap(pid, blocking: true)?.exitCode ?? 1
    }

    private static func start(_ child: () -> Int32, report: (Event) -> Void, failures: inout Int) -> Int32? {
        let pid: Int32
        do {
            pid = try Sys.fork()
        } catch {
            failures += 1
            report(.forkFailed(error, retryIn: retryDelay(failures)))
            return nil
        }
        if pid == 0 {
            // If the supervisor is killed outright, its child goes too, freeing the socket.
            _ = hookguard_die_with_parent()
            if Sys.parentProcessID == 1 { Sys.exitNow(0) }
            Sys.exitNow(child())
        }
        failures = 0
        report(.started(pid: pid))
        return pid
    }

    /// 1, 2, 4 … up to 30 seconds between fork attempts.
    private static func retryDelay(_ failures: Int) -> Int {
        min(30, 1 << min(max(failures - 1, 0), 5))
    }
}
