package import Glibc

/// A joinable POSIX thread running a Swift closure. Unchecked Sendable: its
/// only state is the pthread_t, written once in init and read by join.
package final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    package init(_ run: @escaping () -> Void) {
        let body = Unmanaged.passRetained(Body(run)).toOpaque()
        let status = pthread_create(&thread, nil, { argument in
            let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
            body.run()
            return nil
        }, body)
        precondition(status == 0, "pthread_create failed: \(status)")
    }

    package func join() {
        pthread_join(thread, nil)
    }

    /// Lets it run on unjoined, to end with the process: a thread given up
    /// on (still busy when the process must exit) is never reported as leaked.
    package func detach() {
        pthread_detach(thread)
    }
}
