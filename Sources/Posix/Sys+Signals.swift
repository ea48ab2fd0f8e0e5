import CLinux
import Glibc

/// The signals hookguard handles, by name, for modules that do not import Glibc.
package enum Signal {
    package static let terminate = SIGTERM
    package static let interrupt = SIGINT
    package static let hangup = SIGHUP
    package static let child = SIGCHLD
    package static let kill = SIGKILL
    package static let user1 = SIGUSR1
    package static let brokenPipe = SIGPIPE
}

/// Signals: blocking, ignoring and waiting for them. Nothing runs in a
/// signal handler: a blocked signal is taken with `sigwait`, by
/// `SignalWaiter`'s thread or (in a process that must stay single-threaded)
/// by `waitForSignal` itself.
extension Sys {
    /// Blocks `signals` in the calling thread and in every thread it starts after.
    package static func blockSignals(_ signals: [Int32]) throws(SystemError) {
        var set = signalSet(signals)
        // pthread_sigmask returns an error number rather than setting errno.
        let status = pthread_sigmask(SIG_BLOCK, &set, nil)
        guard status == 0 else { throw SystemError("pthread_sigmask", errno: status) }
    }

    /// Ignores `signal` in the whole process (SIGPIPE: a peer that hangs up gives EPIPE instead).
    package static func ignoreSignal(_ signal: Int32) {
        _ = Glibc.signal(signal, SIG_IGN)
    }

    /// The next of `signals` (which must be blocked), or nil when `seconds`
    /// pass first; without `seconds`, waits for as long as it takes.
    package static func waitForSignal(_ signals: [Int32], seconds: Double? = nil) -> Int32? {
        var set = signalSet(signals)
        while true {
            guard let seconds else {
                var received: Int32 = 0
                if sigwait(&set, &received) == 0 { return received }
                continue
            }
            var limit = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
            let received = sigtimedwait(&set, nil, &limit)
            if received > 0 { return received }
            if errno != EINTR { return nil }
        }
    }

    private static func signalSet(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        return set
    }
}

/// The process's one signal loop: blocks signals and takes them on a thread
/// named `hg-signals`, handing each to a closure there. The thread reads
/// them from a signalfd rather than with `sigwait`, so they stay blocked in
/// it too: Swift's crash handler pauses each thread with the first of
/// SIGUSR1, SIGUSR2, SIGPROF it does not block, and a `sigwait` for SIGUSR1
/// would swallow that pause and hold a crashing worker process for 30 s.
/// A process that forks must not start it first (the forked child would
/// start threads of its own after a multi-threaded fork, which
/// ThreadSanitizer refuses): the supervisor calls `Sys.waitForSignal` itself.
package enum SignalWaiter {
    /// Call before any other thread is started, so none of them can take the
    /// signals. The thread runs for the life of the process; never joined.
    package static func start(_ signals: [Int32], handle: @escaping @Sendable (Int32) -> Void) throws(SystemError) {
        try Sys.blockSignals(signals)
        let fd = try syscall("signalfd") { hookguard_signalfd(signals, Int32(signals.count)) }
        _ = WorkerThread(named: "hg-signals") {
            while true {
                if let received = try? syscall("read", path: "signalfd", { hookguard_read_signal(fd) }) {
                    handle(received)
                }
            }
        }
    }
}
