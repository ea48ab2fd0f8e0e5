import CFastCGI
import Glibc

/// Keeps the server process alive. libfcgi parses records inside
/// `FCGX_Accept_r`, before hookguard sees them, and aborts the process when a
/// record asks it to allocate what it cannot (fcgiapp.c's `Malloc` asserts):
/// so the workers run in a child process, forked again whenever it dies, while
/// this parent holds the listening socket. Connections wait in the socket's
/// backlog during a restart; only the requests in flight in the dead child are
/// lost, unanswered, and their senders retry.
public enum Supervisor {
    /// What the supervisor tells the log.
    public enum Event {
        case started(pid: Int32)
        case died(pid: Int32, status: String)
        case stopping
    }

    /// Runs `child` in a forked process until SIGTERM or SIGINT, which it
    /// passes on and waits for. SIGHUP runs `onHangup` here and is passed on.
    /// `child` must return the child's exit status; it runs with every signal
    /// the supervisor handles still blocked, as `FastCGIServer.run` expects.
    public static func run(
        report: (Event) -> Void, onHangup: () -> Void, child: () -> Int32
    ) {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var recentDeaths: [UInt64] = []
        var pid = start(child, report: report)
        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            switch received {
            case SIGHUP:
                onHangup()
                kill(pid, SIGHUP)
            case SIGCHLD:
                var status: Int32 = 0
                guard waitpid(pid, &status, WNOHANG) == pid else { continue }
                report(.died(pid: pid, status: describe(status)))
                // A child that dies at once, again and again, is not helped by haste.
                let now = monotonicSeconds()
                recentDeaths = recentDeaths.filter { now - $0 < 10 } + [now]
                if recentDeaths.count > 5 { sleep(1) }
                pid = start(child, report: report)
            default:
                report(.stopping)
                kill(pid, SIGTERM)
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return
            }
        }
    }

    private static func start(_ child: () -> Int32, report: (Event) -> Void) -> Int32 {
        let pid = fork()
        if pid == 0 {
            // If the supervisor is killed outright, its child goes too, freeing the socket.
            _ = hookguard_die_with_parent()
            if getppid() == 1 { _exit(0) }
            _exit(child())
        }
        report(.started(pid: pid))
        return pid
    }

    private static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit status \((status >> 8) & 0xff)" }
        return "signal \(signal) (\(String(cString: strsignal(signal))))"
    }

    private static func monotonicSeconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec)
    }
}
