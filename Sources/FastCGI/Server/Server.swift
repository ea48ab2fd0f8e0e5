import CFastCGI
import Glibc
package import Posix
import Synchronization

/// A pool of worker threads, each answering one FastCGI request at a time
/// with its own `FCGX_Request`, until SIGTERM, SIGINT or SIGUSR1.
///
/// Connections wait in the `WaitingRoom` (one thread accepting and polling)
/// until they have something to read; only then does a worker take one and
/// hand it to libfcgi, whose own accept is never used: it waits 2 s on every
/// new Unix-socket connection that has sent nothing (`is_af_unix_keeper`),
/// and after `FCGX_ShutdownPending()` it spins on a connection it already
/// closed. libfcgi reads and writes with blocking calls, so every connection
/// has receive and send timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO`): a read or
/// write that waits longer fails, libfcgi gives up the request, and the
/// connection is closed. The listening socket itself is never shut down: an
/// inherited one is shared with whoever passed it (systemd keeps listening
/// on it for the next start).
package final class FastCGIServer: Sendable {
    package typealias Handler = @Sendable (inout FastCGIExchange) -> Void

    /// How long hookguard waits on a connection, and on itself when stopping.
    package struct Timeouts: Sendable, Equatable {
        /// Longest wait for a new connection's first record, for each read of
        /// a request's parameters or body, and for each write of its answer.
        package var read: Double
        /// Longest wait for the next request on a connection the web server keeps open.
        package var idle: Double
        /// After SIGTERM, how long requests in flight may take before the server stops anyway.
        package var grace: Double

        package static let defaults = Timeouts(read: 10, idle: 20, grace: 10)

        package init(read: Double, idle: Double, grace: Double) {
            self.read = read
            self.idle = idle
            self.grace = grace
        }
    }

    /// What the server tells the log.
    package enum Event: Sendable {
        /// accept(2) failed (other than "another worker took it"); `count`
        /// failures since the last report, at most one report a second.
        case acceptFailed(SystemError, count: Int)
        /// The grace period ran out with `inFlight` requests unfinished.
        case graceExpired(inFlight: Int)
    }

    /// How `run` ended.
    package enum Stop: Sendable, Equatable {
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

    package init(
        listener: Listener, workers: Int, timeouts: Timeouts = .defaults,
        report: @escaping @Sendable (Event) -> Void = { _ in }
    ) {
        self.listener = listener
        self.workers = workers
        self.timeouts = timeouts
        self.report = report
    }

    /// Serves until SIGTERM, SIGINT or SIGUSR1, then stops accepting, closes
    /// the connections waiting for a request, lets the requests in flight
    /// finish for `timeouts.grace` seconds and returns; the caller closes the
    /// listener (and, after `.abandoned`, must end the process: abandoned
    /// workers are still running). `onHangup` runs on SIGHUP.
    package func run(onHangup: @escaping @Sendable () -> Void = {}, handler: @escaping Handler) throws(SystemError)
        -> Stop
    {
        // Blocked here, so every thread inherits the mask and only the signal thread sees them.
        let signals = try SignalPipe([SIGTERM, SIGINT, SIGUSR1, SIGHUP])
        // A web server that hangs up mid-response must not kill the process.
        Sys.ignoreSignal(SIGPIPE)
        try syscall("FCGX_Init") { FCGX_Init() }

        let fd = listener.fd
        // The waiting room accepts until there is nothing left, never blocking
        // in accept(). (An inherited socket's flag is shared, and systemd resets it at each start.)
        let flags = try syscall("fcntl(F_GETFL)", path: listener.description) { fcntl(fd, F_GETFL) }
        try syscall("fcntl(F_SETFL)", path: listener.description) { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        // wake: written once at stop and never read, so it stays readable and
        // every thread sees it. done: each thread writes a byte as it ends.
        let wake = try Pipe()
        let done = try Pipe()
        let room = try WaitingRoom(
            listener: listener, wakeFd: wake.read, timeouts: timeouts, capacity: Self.waitingCapacity()
        ) { [acceptFailures, report] error in
            if let count = acceptFailures.record() { report(.acceptFailed(error, count: count)) }
        }
        // Left open when threads are abandoned: they may still use them until the process ends.
        var abandoned = false
        defer {
            if !abandoned {
                wake.close()
                done.close()
                room.ready.close()
                room.returned.close()
            }
        }
        // Which threads have ended, so that after the grace period those are joined and the rest detached.
        let idleWaits = try (1...workers).map { _ throws(SystemError) in
            try IdleWait(wakeFd: wake.read, ready: room.ready.read)
        }
        let ended = Locked<Set<Int>>([])
        func finished(_ index: Int) {
            ended.withLock { _ = $0.insert(index) }
            var byte: UInt8 = 1
            _ = write(done.write, &byte, 1)
        }
        let threads =
            [
                WorkerThread(named: "hg-waiting-room") {
                    room.run()
                    finished(0)
                }
            ]
            + (1...workers).map { index in
                WorkerThread(named: "hg-worker-\(index)") { [self] in
                    self.work(room: room, idle: idleWaits[index - 1], handler: handler)
                    finished(index)
                }
            }

        waiting: while true {
            for received in signals.next() {
                guard received == SIGHUP else { break waiting }
                onHangup()
            }
        }
        stopping.store(true, ordering: .sequentiallyConsistent)
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)

        let endedInTime = waitForThreads(done: done.read, count: threads.count, within: timeouts.grace)
        guard endedInTime == threads.count else {
            // The waiting room ends at once: every thread still running is a busy worker.
            let inFlight = threads.count - endedInTime
            report(.graceExpired(inFlight: inFlight))
            abandoned = true
            let joinable = ended.withLock { $0 }
            for (index, thread) in threads.enumerated() {
                if joinable.contains(index) { thread.join() } else { thread.detach() }
            }
            return .abandoned(inFlight: inFlight)
        }
        for thread in threads { thread.join() }
        // Readable, never taken: unanswered, so the web server sees them close.
        while let connection = room.ready.receive() { connection.close() }
        while let connection = room.returned.receive() { connection.close() }
        return .finished
    }

    /// As many connections as may wait for a request at once: half the
    /// descriptors the process may open, at most 4096.
    private static func waitingCapacity() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        return Int(min(max(limit.rlim_cur / 2, 16), 4096))
    }

    /// How many threads wrote to `done` before `seconds` passed.
    private func waitForThreads(done: Int32, count: Int, within seconds: Double) -> Int {
        let deadline = Deadline(after: seconds)
        var ended = 0
        while ended < count, let remaining = deadline.remainingMilliseconds {
            var ready = pollfd(fd: done, events: Int16(POLLIN), revents: 0)
            guard poll(&ready, 1, Int32(clamping: remaining)) > 0 else { continue }  // EINTR or time is up: look again
            var bytes = [UInt8](repeating: 0, count: count - ended)
            let got = read(done, &bytes, bytes.count)
            if got > 0 { ended += got }
        }
        return ended
    }

    /// One worker: takes a readable connection from the waiting room,
    /// answers its request, gives a kept connection back; until stopped.
    private func work(room: WaitingRoom, idle: IdleWait, handler: Handler) {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer {
            request.deallocate()
            idle.close()
        }
        // No listening socket for libfcgi: should it look for a connection
        // itself (after one failed), accept(-1) fails at once.
        FCGX_InitRequest(request, -1, 0)
        while true {
            guard case .ready = idle.wait() else { break }
            guard let connection = room.ready.receive() else { continue }  // another worker took it
            switch serve(connection, with: request, handler: handler) {
            case .keep:
                if stopping.load(ordering: .sequentiallyConsistent) || !room.returned.send(connection) {
                    connection.close()
                }
            case .closeLingering: connection.close(lingering: min(timeouts.read, 1))
            case .closeNow: connection.close()
            case .closedByLibrary: break
            }
        }
        FCGX_Free(request, 0)
    }

    /// Reads one request from `connection` and answers it.
    private func serve(_ connection: Connection, with request: UnsafeMutablePointer<FCGX_Request>, handler: Handler)
        -> AfterRequest
    {
        request.pointee.ipcFd = connection.fd
        defer { request.pointee.ipcFd = -1 }
        // FCGX_Accept_r first finishes the previous request: it must not
        // close the connection just handed to it. A connection that fails
        // before its request is whole is closed there at once, unlingered.
        request.pointee.keepConnection = 1
        request.pointee.detached = 1
        let accepted = FCGX_Accept_r(request)
        request.pointee.detached = 0
        // The web server hung up, sent nonsense, or stalled past the read timeout.
        guard accepted >= 0 else { return .closedByLibrary }
        var exchange = FastCGIExchange(request)
        handler(&exchange)
        return finish(request)
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
        /// libfcgi closed it before the request was whole.
        case closedByLibrary
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
}
