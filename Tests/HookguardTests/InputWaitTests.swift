import Glibc
import Testing

@testable import Posix

/// `InputWait` wakes one of the threads sleeping on a shared descriptor when
/// asked to, and all of them otherwise: the server's idle workers rely on
/// the first (one wake-up per connection handed over) and on the second
/// (stopping wakes them all).
@Suite struct InputWaitTests {
    /// How many of `waiters` threads, each sleeping in its own `InputWait` on
    /// one shared pipe, wake within 300 ms of one byte written to it. The
    /// rest are then woken through a second pipe, watched without `wakingOne`.
    private func wokenByOneByte(waiters: Int, wakingOne: Bool) throws -> Int {
        let shared = try makePipe(nonBlocking: .write)
        let stop = try makePipe(nonBlocking: .write)
        defer { for fd in [shared.read, shared.write, stop.read, stop.write] { close(fd) } }
        let waiting = Locked(0)
        let woken = Locked(0)
        let threads = (0..<waiters).map { _ in
            WorkerThread(named: "hg-test-wait") {
                guard let wait = try? InputWait() else { return }
                defer { wait.close() }
                guard (try? wait.watch(shared.read, wakingOne: wakingOne)) != nil,
                    (try? wait.watch(stop.read)) != nil
                else { return }
                waiting.withLock { $0 += 1 }
                guard let ready = try? wait.wait() else { return }
                if ready == [shared.read] { woken.withLock { $0 += 1 } }
            }
        }
        let deadline = Deadline(after: 5)
        while waiting.withLock({ $0 }) < waiters, deadline.remainingMilliseconds != nil { Sys.sleep(seconds: 0.01) }
        #expect(waiting.withLock { $0 } == waiters)
        Sys.sleep(seconds: 0.1)  // each is asleep in epoll_wait by now
        var byte: UInt8 = 1
        #expect(write(shared.write, &byte, 1) == 1)
        Sys.sleep(seconds: 0.3)
        let count = woken.withLock { $0 }
        #expect(write(stop.write, &byte, 1) == 1)
        for thread in threads { thread.join() }
        return count
    }

    @Test func inputWakesOneWaiterWhenAskedAndEveryWaiterOtherwise() throws {
        #expect(try wokenByOneByte(waiters: 8, wakingOne: true) == 1)
        #expect(try wokenByOneByte(waiters: 8, wakingOne: false) == 8)
    }
}
