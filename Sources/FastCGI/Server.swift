import CFastCGI
import Glibc
import Synchronization

/// A pool of worker threads, each accepting FastCGI requests on the listener
/// with its own `FCGX_Request`, until SIGTERM or SIGINT.
public final class FastCGIServer: Sendable {
    public typealias Handler = @Sendable (inout FastCGIExchange) -> Void

    private let listener: Listener
    private let workers: Int
    private let stopping = Atomic<Bool>(false)

    public init(listener: Listener, workers: Int) {
        self.listener = listener
        self.workers = workers
    }

    /// Serves until SIGTERM or SIGINT, then lets every request in flight
    /// finish and returns; the caller closes the listener. `onHangup` runs on SIGHUP.
    public func run(onHangup: @escaping @Sendable () -> Void = {}, handler: @escaping Handler) {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&signals, signal) }
        // Blocked here, so every worker inherits the mask and only sigwait sees them.
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        // A web server that hangs up mid-response must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        FCGX_Init()

        let fd = listener.fd
        let threads = (0..<workers).map { _ in
            WorkerThread { [self] in self.acceptLoop(fd: fd, handler: handler) }
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
        // Wakes every worker blocked in accept(); those with a request finish it first.
        shutdown(fd, Int32(SHUT_RDWR))
        for thread in threads { thread.join() }
    }

    private func acceptLoop(fd: Int32, handler: Handler) {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        FCGX_InitRequest(request, fd, 0)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            guard FCGX_Accept_r(request) >= 0 else {
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

/// A joinable POSIX thread running a Swift closure. Unchecked Sendable: its
/// only state is the pthread_t, written once in init and read by join.
public final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    public init(_ run: @escaping () -> Void) {
        let body = Unmanaged.passRetained(Body(run)).toOpaque()
        let status = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, body)
        precondition(status == 0, "pthread_create failed: \(status)")
    }

    public func join() {
        pthread_join(thread, nil)
    }
}
