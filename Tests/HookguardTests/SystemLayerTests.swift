import Glibc
import Testing

@testable import Posix

/// The system layer's own promises: named threads, the pid guard on kill,
/// the one signal wait and the one wait-status decoder.
@Suite struct SystemLayerTests {
    /// The names of this process's threads, as `top -H` and gdb read them.
    private func threadNames() -> [String] {
        ((try? listDirectory("/proc/self/task")) ?? []).compactMap { task in
            (try? readWholeFile("/proc/self/task/\(task)/comm")).map {
                String(decoding: $0, as: UTF8.self).trimmingSuffix("\n")
            }
        }
    }

    @Test func workerThreadsCarryTheirNamesCutTo15Bytes() throws {
        let hold = try makePipe(nonBlocking: .write)
        defer { for fd in [hold.read, hold.write] { close(fd) } }
        let threads = ["hg-test-named", "hg-a-very-long-thread-name"].map { name in
            WorkerThread(named: name) { _ = try? Sys.readByte(hold.read) }
        }
        var seen: [String] = []
        for _ in 0..<200 {  // at most 2 s for both to start
            seen = threadNames()
            if seen.contains("hg-test-named") && seen.contains("hg-a-very-long-") { break }
            usleep(10_000)
        }
        for _ in threads { try Sys.write(hold.write, byte: 1) }
        for thread in threads { thread.join() }
        #expect(seen.contains("hg-test-named"), "\(seen)")
        #expect(seen.contains("hg-a-very-long-"), "\(seen)")
        #expect(!threadNames().contains("hg-test-named"))
    }

    @Test func killRefusesAGroupOrEveryProcess() {
        func refusal(_ send: () throws(SystemError) -> Void) -> String? {
            do throws(SystemError) {
                try send()
                return nil
            } catch {
                return error.errno == EINVAL ? error.call : "errno \(error.errno)"
            }
        }
        for pid: Int32 in [0, -1, -getpid()] {
            #expect(refusal { () throws(SystemError) in try Sys.kill(pid, 0) } == "kill(\(pid))")
        }
        #expect(refusal { () throws(SystemError) in try Sys.killGroup(0, 0) } == "kill(-0)")
        // Signal 0 only asks whether the process exists.
        #expect(refusal { () throws(SystemError) in try Sys.kill(getpid(), 0) } == nil)
    }

    @Test func waitForSignalTakesAPendingOneAndTimesOut() {
        var results: (taken: Int32?, none: Int32?, waited: Double) = (nil, nil, 0)
        // On a thread of its own: the mask is the thread's, and SIGUSR2 goes to it alone.
        let thread = WorkerThread(named: "hg-test-signal") {
            try? Sys.blockSignals([SIGUSR2])
            pthread_kill(pthread_self(), SIGUSR2)
            results.taken = Sys.waitForSignal([SIGUSR2], seconds: 1)
            let started = monotonicNanoseconds()
            results.none = Sys.waitForSignal([SIGUSR2], seconds: 0.05)
            results.waited = Double(monotonicNanoseconds() - started) / 1e9
        }
        thread.join()
        #expect(results.taken == SIGUSR2)
        #expect(results.none == nil)
        #expect(results.waited >= 0.04)
    }

    @Test func oneDecoderForWaitStatuses() {
        #expect(ExitStatus(waitStatus: 3 << 8).exitCode == 3)
        #expect(ExitStatus(waitStatus: 9).exitCode == 1)  // killed: a failure, as a shell says
        #expect(ExitStatus(waitStatus: 6).description == "killed by signal 6 (Aborted)")
    }

    @Test func deadlinesOrderAndRunOut() {
        let soon = Deadline(after: 0)
        let later = Deadline(after: 60)
        #expect(soon < later)
        #expect(soon.remainingMilliseconds == nil)
        #expect((later.remainingMilliseconds ?? 0) > 59_000)
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
