import CFastCGI
import Glibc
public import HookguardCore
import Synchronization

/// A pool of worker threads, each serving one FastCGI connection at a time
/// with its own `FCGX_Request`, until SIGTERM, SIGINT or SIGUSR1.
///
/// The workers accept connections themselves (poll(2) on the listening
/// socket and a wake-up pipe, then a non-blocking accept) and hand each one
/// to libfcgi, whose own accept is never used: it waits 2 s on every new
/// Unix-socket connection that has sent nothing (`is_af_unix_keeper`), and
/// after `FCGX_ShutdownPending()` it spins on a connection it already closed.
/// libfcgi reads and writes with blocking calls, so every connection gets
/// receive and send timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO`): a read or write
/// that waits longer fails, libfcgi gives up the request, and the worker
/// closes the connection. The listening socket itself is never shut down: an
/// inherited one is shared with whoever passed it (systemd keeps listening on
/// it for the next start).
public final class FastCGIServer: Sendable {
    public typealias Handler = @Sendable (inout FastCGIExchange) -> Void

    /// How long a connection may keep a worker waiting.
    public struct Timeouts: Sendable, Equatable {
        /// Longest wait for each read of a request's parameters or body, and for each write of its answer.
        public var read: Double
        /// Longest wait for the next request on a connection the web server keeps open.
        public var idle: Double
        /// After SIGTERM, how long requests in flight may take before the server stops anyway.
        public var grace: Double

        public static let defaults = Timeouts(read: 10, idle: 20, grace: 10)

        public init(read: Double, idle: Double, grace: Double) {
            self.read = read
            self.idle = idle
            self.grace = grace
        }
    }

    /// What the server tells the log.
    public enum Event: Sendable {
        /// accept(2) failed (other than "another worker took it"); `count`
        /// failures since the last report, at most one report a second.
        case acceptFailed(SystemError, count: Int)
        /// The grace period ran out with `inFlight` requests unfinished.
        case graceExpired(inFlight: Int)
    }

    /// How `run` ended.
    public enum Stop: Sendable, Equatable {
        /// Every request in flight finished.
        case finished
        /// The grace period ran out; the workers still busy are abandoned
        /// (their web server sees the connection close when the process exits).
        case abandoned(inFlight: Int)
    }

    private let listener: Listener
    private let workers: Int
    private let timeouts: Timeouts
    private let report: @Sendable (Event) -> Void
    private let stopping = Atomic<Bool>(false)
    private let acceptFailures = RateLimitedCount(interval: 1)

    public init(
        listener: Listener, workers: Int, timeouts: Timeouts = .defaults,
        report: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.listener = listener
        self.workers = workers
        self.timeouts = timeouts
        self.report = report
    }

    /// Serves until SIGTERM, SIGINT or SIGUSR1, then stops accepting, lets
    /// the requests in flight finish for `timeouts.grace` seconds and
    /// returns; the caller closes the listener (and, after `.abandoned`,
    /// must end the process: abandoned workers are still running).
    /// `onHangup` runs on SIGHUP.
    public func run(onHangup: @escaping @Sendable () -> Void = {}, handler: @escaping Handler) throws(SystemError) -> Stop {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGUSR1, SIGHUP] { sigaddset(&signals, signal) }
        // Blocked here, so every worker inherits the mask and only sigwait sees them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A web server that hangs up mid-response must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        try syscall("FCGX_Init") { FCGX_Init() }

        let fd = listener.fd
        // Every idle worker wakes for a new connection and one wins it; the
        // others must find accept() empty rather than block in it. (An
        // inherited socket's flag is shared, and systemd resets it at each start.)
        let flags = try syscall("fcntl(F_GETFL)", path: listener.description) { fcntl(fd, F_GETFL) }
        try syscall("fcntl(F_SETFL)", path: listener.description) { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        // wake: written once at stop and never read, so it stays readable and
        // every waiting worker sees it. done: each worker writes a byte as it ends.
        let wake = try Pipe()
        let done = try Pipe()
        defer {
            wake.close()
            done.close()
        }
        let threads = (0..<workers).map { _ in
            WorkerThread { [self] in
                self.serveConnections(fd: fd, wakeFd: wake.read, handler: handler)
                var byte: UInt8 = 1
                _ = write(done.write, &byte, 1)
            }
        }

        while true {
            var received: Int32 = 0
            sigwait(&signals, &received)
            if received == SIGHUP {
                onHangup()
                continue
            }
            break
        }
        stopping.store(true, ordering: .sequentiallyConsistent)
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)

        let ended = waitForWorkers(done: done.read, count: workers, within: timeouts.grace)
        guard ended == workers else {
            let inFlight = workers - ended
            report(.graceExpired(inFlight: inFlight))
            return .abandoned(inFlight: inFlight)
        }
        for thread in threads { thread.join() }
        return .finished
    }

    /// How many workers wrote to `done` before `seconds` passed.
    private func waitForWorkers(done: Int32, count: Int, within seconds: Double) -> Int {
        let deadline = Deadline(after: seconds)
        var ended = 0
        while ended < count, let remaining = deadline.remainingMilliseconds {
            var ready = pollfd(fd: done, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, remaining) > 0 else { continue }  // EINTR or time is up: look again
            var bytes = [UInt8](repeating: 0, count: count - ended)
            let got = read(done, &bytes, bytes.count)
            if got > 0 { ended += got }
        }
        return ended
    }

    /// One worker: takes a connection, serves its requests one after the
    /// other while the web server keeps it open, closes it, takes the next.
    private func serveConnections(fd: Int32, wakeFd: Int32, handler: Handler) {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        // No listening socket for libfcgi: should it look for a connection
        // itself (after one failed), accept(-1) fails at once.
        FCGX_InitRequest(request, -1, 0)
        var connection: Connection?
        while !stopping.load(ordering: .sequentiallyConsistent) {
            if let kept = connection {
                // A kept connection (FCGI_KEEP_CONN) brings this worker's next request, or nothing for too long.
                guard wait(for: kept.fd, wakeFd: wakeFd, milliseconds: milliseconds(timeouts.idle)) else {
                    kept.close()
                    connection = nil
                    request.pointee.ipcFd = -1
                    continue
                }
            } else {
                guard wait(for: fd, wakeFd: wakeFd, milliseconds: -1) else { continue }
                guard let accepted = accept(fd) else { continue }
                connection = accepted
                request.pointee.ipcFd = accepted.fd
            }
            if stopping.load(ordering: .sequentiallyConsistent) { break }

            // FCGX_Accept_r first finishes the previous request: it must not
            // close the connection just handed to it. A connection that fails
            // before its request is whole is closed there at once, unlingered.
            request.pointee.keepConnection = 1
            request.pointee.detached = 1
            let accepted = FCGX_Accept_r(request)
            request.pointee.detached = 0
            guard accepted >= 0 else {
                // libfcgi closed it: the web server hung up, sent nonsense, or stalled past the read timeout.
                connection = nil
                request.pointee.ipcFd = -1
                continue
            }
            var exchange = FastCGIExchange(request)
            handler(&exchange)
            let next = finish(request)
            if next != .keep {
                connection?.close(lingering: next == .closeLingering ? min(timeouts.read, 1) : 0)
                connection = nil
                request.pointee.ipcFd = -1
            }
        }
        connection?.close()
        request.pointee.ipcFd = -1
        FCGX_Free(request, 0)
    }

    /// What becomes of a connection once its request is answered.
    enum AfterRequest {
        /// The web server asked to keep it and nothing failed on it.
        case keep
        /// Closed, reading for a moment what the web server still sends (a
        /// body the answer did not need), so that the kernel does not reset
        /// the connection and lose the answer.
        case closeLingering
        /// Closed at once: a read or write on it failed or timed out.
        case closeNow
    }

    /// Ends the request as `FCGX_Finish_r` does (its end records are
    /// written, its streams freed) without letting libfcgi close the
    /// connection: its close lingers up to 2 s per read, with no overall limit.
    private func finish(_ request: UnsafeMutablePointer<FCGX_Request>) -> AfterRequest {
        let errWritten = FCGX_FClose(request.pointee.err) == 0
        let outWritten = FCGX_FClose(request.pointee.out) == 0
        let inClean = FCGX_GetError(request.pointee.in) == 0
        let kept = request.pointee.keepConnection != 0
        FCGX_Free(request, 0)
        guard errWritten && outWritten && inClean else { return .closeNow }
        return kept ? .keep : .closeLingering
    }

    /// True when `fd` has something to read (a connection or a request),
    /// false on stop, on timeout, or when poll was interrupted.
    private func wait(for fd: Int32, wakeFd: Int32, milliseconds: Int32) -> Bool {
        var ready = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                     pollfd(fd: wakeFd, events: Int16(POLLIN), revents: 0)]
        guard poll(&ready, 2, milliseconds) > 0 else { return false }
        return ready[1].revents == 0
    }

    /// A new connection with its timeouts set, or nil when another worker
    /// took it or accept failed (logged, rate-limited, after a short pause
    /// so that running out of descriptors does not spin).
    private func accept(_ fd: Int32) -> Connection? {
        do throws(SystemError) {
            let client = try syscall("accept4", path: listener.description) { hookguard_accept_cloexec(fd) }
            let connection = Connection(fd: client)
            do {
                try connection.setTimeouts(read: timeouts.read)
            } catch {
                connection.close()
                throw error
            }
            return connection
        } catch {
            switch error.errno {
            case EAGAIN, EWOULDBLOCK, ECONNABORTED: return nil  // another worker took it; a client gave up
            default:
                if let count = acceptFailures.record() { report(.acceptFailed(error, count: count)) }
                usleep(10_000)
                return nil
            }
        }
    }

    private func milliseconds(_ seconds: Double) -> Int32 {
        Int32(min(max(seconds * 1000, 1), Double(Int32.max)))
    }
}

/// One accepted connection, owned by the worker serving it.
struct Connection {
    let fd: Int32

    /// Every read and write on it waits at most `read` seconds.
    func setTimeouts(read seconds: Double) throws(SystemError) {
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            try syscall("setsockopt", path: "accepted connection") {
                setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
            }
        }
    }

    /// Closes it. `lingering` seconds > 0: first says it is done sending
    /// and reads what the web server still sends, until it closes its side
    /// or the time is up.
    func close(lingering seconds: Double = 0) {
        if seconds > 0, Glibc.shutdown(fd, Int32(SHUT_WR)) == 0 {
            let deadline = Deadline(after: seconds)
            var trash = [UInt8](repeating: 0, count: 4096)
            while let remaining = deadline.remainingMilliseconds {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, remaining) > 0, recv(fd, &trash, trash.count, Int32(MSG_DONTWAIT)) > 0 else { break }
            }
        }
        _ = Glibc.close(fd)
    }
}

/// A pipe whose two ends are not inherited by programs hookguard starts.
struct Pipe {
    let read: Int32
    let write: Int32

    init() throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        try syscall("pipe2") { hookguard_pipe_cloexec(&fds) }
        read = fds[0]
        write = fds[1]
    }

    func close() {
        _ = Glibc.close(read)
        _ = Glibc.close(write)
    }
}

/// A point on the monotonic clock.
struct Deadline {
    private let end: Double

    init(after seconds: Double) {
        end = Self.now() + seconds
    }

    /// Milliseconds left (at least 1), or nil once it has passed.
    var remainingMilliseconds: Int32? {
        let left = end - Self.now()
        guard left > 0 else { return nil }
        return Int32(min(max(left * 1000, 1), Double(Int32.max)))
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Counts events and says when to report them: at most once per `interval`
/// seconds, with how many happened since the last report.
final class RateLimitedCount: Sendable {
    private let interval: Double
    private let state = Mutex<(lastReport: Double, count: Int)>((-Double.infinity, 0))

    init(interval: Double) {
        self.interval = interval
    }

    /// Records one event; returns the count to report, or nil to stay quiet.
    func record() -> Int? {
        let now = Deadline.now()
        return state.withLock { state in
            state.count += 1
            guard now - state.lastReport >= interval else { return nil }
            defer { state = (now, 0) }
            return state.count
        }
    }
}
