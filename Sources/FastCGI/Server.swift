import CFastCGI
import Glibc
import HookguardCore
import Synchronization

/// A pool of worker threads, each accepting FastCGI requests on the listener
/// with its own `FCGX_Request`, until SIGTERM, SIGINT or SIGUSR1.
///
/// Idle workers wait in poll(2) on the listening socket and on a wake-up
/// pipe, and accept without blocking. Stopping writes to the pipe, so no
/// worker is left in accept() and the listening socket itself is never shut
/// down: an inherited one is shared with whoever passed it (systemd keeps
/// listening on it for the next start).
public final class FastCGIServer: Sendable {
    public typealias Handler = @Sendable (inout FastCGIExchange) -> Void

    private let listener: Listener
    private let workers: Int
    private let stopping = Atomic<Bool>(false)

    public init(listener: Listener, workers: Int) {
        self.listener = listener
        self.workers = workers
    }

    /// Serves until SIGTERM, SIGINT or SIGUSR1 (libfcgi's graceful stop),
    /// then lets every request in flight finish and returns; the caller closes
    /// the listener. `onHangup` runs on SIGHUP.
    public func run(onHangup: @escaping @Sendable () -> Void = {}, handler: @escaping Handler) {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGUSR1, SIGHUP] { sigaddset(&signals, signal) }
        // Blocked here, so every worker inherits the mask and only sigwait sees them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A web server that hangs up mid-response must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        FCGX_Init()

        let fd = listener.fd
        // Every idle worker wakes for a new connection and one wins it; the
        // others must find accept() empty rather than block in it. (An
        // inherited socket's flag is shared, and systemd resets it at each start.)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var wake: (read: Int32, write: Int32) = (-1, -1)
        withUnsafeMutableBytes(of: &wake) { raw in
            let fds = raw.baseAddress!.assumingMemoryBound(to: Int32.self)
            precondition(pipe(fds) == 0, "pipe failed: \(errno)")
        }
        for end in [wake.read, wake.write] { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let wakeFd = wake.read
        let threads = (0..<workers).map { _ in
            WorkerThread { [self] in self.acceptLoop(fd: fd, wakeFd: wakeFd, handler: handler) }
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
        FCGX_ShutdownPending()
        // Never read, so it stays readable: every idle worker wakes and sees
        // `stopping`; those with a request finish it first.
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        for thread in threads { thread.join() }
        Glibc.close(wake.read)
        Glibc.close(wake.write)
    }

    private func acceptLoop(fd: Int32, wakeFd: Int32, handler: Handler) {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        FCGX_InitRequest(request, fd, 0)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            // A connection the web server keeps open (FCGI_KEEP_CONN) brings
            // this worker's next request; otherwise a new connection does.
            let kept = request.pointee.ipcFd
            var ready = [pollfd(fd: kept >= 0 ? kept : fd, events: Int16(POLLIN), revents: 0),
                         pollfd(fd: wakeFd, events: Int16(POLLIN), revents: 0)]
            guard poll(&ready, 2, -1) > 0 else { continue }  // EINTR: look again
            if stopping.load(ordering: .sequentiallyConsistent) { break }
            let accepted = FCGX_Accept_r(request)
            if accepted == -EAGAIN || accepted == -EWOULDBLOCK { continue }  // another worker took it
            guard accepted >= 0 else {
                if stopping.load(ordering: .sequentiallyConsistent) { break }
                // Out of descriptors or memory: back off instead of spinning.
                usleep(10_000)
                continue
            }
            var exchange = FastCGIExchange(request)
            handler(&exchange)
            FCGX_Finish_r(request)
        }
        FCGX_Free(request, 1)
    }
}
