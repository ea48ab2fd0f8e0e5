import Foundation
import Glibc
import Synchronization
import Testing
@testable import HookguardCore

/// Group commit of the spool's directory flushes: many stores share one
/// `fsync` of `new/`, none returns before a flush that began after its rename
/// has finished, and a failed flush fails exactly the stores that waited on it.
@Suite struct GroupSyncTests {
    /// Runs `body(i)` on `count` threads at once and waits for them all.
    func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        let start = DispatchSemaphore(value: 0)
        for i in 0..<count {
            group.enter()
            Thread {
                start.wait()
                body(i)
                group.leave()
            }.start()
        }
        for _ in 0..<count { start.signal() }
        group.wait()
    }

    struct Flush: Sendable {
        var present: Set<String>  // the entries in the flushed directory when the flush began
        var startedAt: Int  // the event clock when it began
        var finishedAt: Int  // the event clock when it returned
    }

    final class FlushLog: Sendable {
        let flushes = Mutex<[Flush]>([])
    }

    @Test func concurrentStoresShareFlushesAndReturnOnlyAfterThem() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = Atomic<Int>(0)
        let fileFlushes = FlushLog()
        let directoryFlushes = FlushLog()
        /// Records what the directory held when `flush` began, and when it began and ended.
        func recorded(_ log: FlushLog, _ flush: @escaping SpoolFlushes.Flush) -> SpoolFlushes.Flush {
            { path throws(SystemError) in
                let present = Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
                let started = clock.add(1, ordering: .sequentiallyConsistent).newValue
                try flush(path)
                usleep(2000)  // a slow disk, so that stores pile up behind a flush
                let finished = clock.add(1, ordering: .sequentiallyConsistent).newValue
                log.flushes.withLock { $0.append(Flush(present: present, startedAt: started, finishedAt: finished)) }
            }
        }
        let registry = SpoolRegistry(
            flushes: SpoolFlushes(
                filesystem: recorded(fileFlushes, syncFilesystem),
                directory: recorded(directoryFlushes, fsyncDirectory)))
        let threads = 32, perThread = 8
        let returned = Mutex<[(name: String, at: Int, path: String, contents: [UInt8])]>([])
        let failures = Atomic<Int>(0)
        onThreads(threads) { t in
            for n in 0..<perThread {
                let contents = Array("{\"thread\":\(t),\"n\":\(n)}".utf8)
                let id = DeliveryID.next(milliseconds: Timestamp.now().milliseconds)
                do {
                    let path = try registry.store(contents, id: id, in: dir + "/spool")
                    let at = clock.add(1, ordering: .sequentiallyConsistent).newValue
                    returned.withLock { $0.append((id.text + ".json", at, path, contents)) }
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let stores = returned.withLock { $0 }
        let files = fileFlushes.flushes.withLock { $0 }
        let directories = directoryFlushes.flushes.withLock { $0 }
        #expect(stores.count == threads * perThread)
        for store in stores {
            // On disk, whole; its file flushed while it was still in tmp/, and
            // new/ flushed after its rename, both before the store returned.
            #expect(FileManager.default.contents(atPath: store.path).map { [UInt8]($0) } == store.contents)
            #expect(files.contains { $0.present.contains(store.name) && $0.finishedAt < store.at },
                    "\(store.name) returned without a filesystem flush while it was staged")
            #expect(directories.contains { $0.present.contains(store.name) && $0.finishedAt < store.at },
                    "\(store.name) returned without a flush of new/ after its rename")
        }
        // Nothing reaches new/ before a filesystem flush that covered it as staged has ended.
        for flush in directories {
            for name in flush.present {
                #expect(files.contains { $0.present.contains(name) && $0.finishedAt < flush.startedAt },
                        "\(name) was in new/ before its file was flushed")
            }
        }
        #expect(files.count < stores.count / 2, "\(files.count) filesystem flushes for \(stores.count) stores")
        #expect(directories.count < stores.count / 2, "\(directories.count) directory flushes for \(stores.count) stores")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new").count == stores.count)
    }

    @Test func aFailedFlushFailsEveryWaiterOfItsBatchAndNoOther() throws {
        let waiters = 12
        let calls = Atomic<Int>(0)
        let holder = Mutex<GroupCommit<Int>?>(nil)
        let firstFlushRunning = DispatchSemaphore(value: 0)
        let sync = GroupCommit<Int>(work: { members in
            let failure = SystemError("fsync", path: "/nonexistent/new", errno: EIO)
            switch calls.add(1, ordering: .sequentiallyConsistent).newValue {
            case 1:  // the first batch: holds the disk until every waiter has joined the next batch
                firstFlushRunning.signal()
                while holder.withLock({ $0!.waitingForNextRun }) < waiters { usleep(100) }
            case 2:  // the second batch: the disk reports an error
                return members.map { _ in .failure(failure) }
            default:
                break
            }
            return members.map { _ in .success(()) }
        })
        holder.withLock { $0 = sync }

        let first = Mutex<Result<Void, SystemError>?>(nil)
        let leader = Thread { first.withLock { $0 = Result { () throws(SystemError) in try sync.commit(0) } } }
        leader.start()
        firstFlushRunning.wait()

        let results = Mutex<[Result<Void, SystemError>]>([])
        onThreads(waiters) { _ in
            let result = Result { () throws(SystemError) in try sync.commit(0) }
            results.withLock { $0.append(result) }
        }
        while first.withLock({ $0 }) == nil { usleep(100) }

        #expect((try? first.withLock({ $0 })!.get()) != nil, "the first batch's flush succeeded")
        let outcomes = results.withLock { $0 }
        #expect(outcomes.count == waiters)
        for outcome in outcomes {
            guard case .failure(let error) = outcome else {
                Issue.record("a waiter of the failed batch was told its delivery is on disk")
                continue
            }
            #expect(error.errno == EIO && error.call == "fsync")
        }
        // The error belonged to that batch only: the next one flushes afresh.
        #expect(throws: Never.self) { try sync.commit(0) }
        #expect(calls.load(ordering: .sequentiallyConsistent) == 3)
        // The flush closure reads `holder`, which holds `sync`: break the cycle.
        holder.withLock { $0 = nil }
    }

    /// A genuine GitHub delivery to a handler whose spool flushes as given.
    func deliver(flushes: SpoolFlushes, spool: String) -> (Response, CapturedLog) {
        let log = CapturedLog()
        let handler = WebhookHandler(logger: log.logger(), spools: SpoolRegistry(flushes: flushes))
        let secret = "group-sync-secret"
        let body = Array("{\"ref\":\"main\"}".utf8)
        let values = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/github", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SCHEME": "github", "HOOKGUARD_SECRET": secret, "HOOKGUARD_SPOOL": spool,
            "HTTP_X_HUB_SIGNATURE_256": Scheme.presets["github"]!.signature(of: body, secret: Secret(secret)),
        ]
        var source = MemoryBody(body)
        return (handler.handle(params(values), body: &source), log)
    }

    static let failing: SpoolFlushes.Flush = { path throws(SystemError) in
        throw SystemError("fsync", path: path, errno: EIO)
    }

    @Test func aFailedDirectoryFlushIsA503() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (response, log) = deliver(
            flushes: SpoolFlushes(filesystem: syncFilesystem, directory: Self.failing), spool: dir + "/spool")
        #expect(response.status == 503)
        #expect(response.headers.contains { $0.name == "Retry-After" })
        #expect(log.text.contains("reason=spool-unwritable"))
        #expect(log.text.contains("Input/output error"))
    }

    @Test func aFailedFilesystemFlushIsA503AndLeavesNothing() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (response, log) = deliver(
            flushes: SpoolFlushes(filesystem: Self.failing, directory: fsyncDirectory), spool: dir + "/spool")
        #expect(response.status == 503)
        #expect(log.text.contains("reason=spool-unwritable"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new").isEmpty)
    }
}
