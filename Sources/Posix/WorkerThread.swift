import CLinux
import Glibc

/// A joinable POSIX thread running a Swift closure, under a name that
/// `top -H`, gdb and sanitizer reports show (`hg-worker-3`, `hg-signals`;
/// at most 15 bytes, longer is cut). Unchecked Sendable: its only state is
/// the pthread_t, written once in init and read by join.
package final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()

    private final class Body {
        let name: String
        let run: () -> Void
        init(_ name: String, _ run: @escaping () -> Void) {
            self.name = name
            self.run = run
        }
    }

    package init(named name: String, _ run: @escaping () -> Void) {
        let body = Unmanaged.passRetained(Body(name, run)).toOpaque()
        let status = pthread_create(
            &thread, nil,
            { argument in
                let body = Unmanaged<Body>.fromOpaque(argument!).takeRetainedValue()
                // Named from inside, before it runs anything: a name is no reason to fail.
                _ = hookguard_name_this_thread(body.name)
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
