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
        var started: Set<String>  // the entries in new/ when the flush began
        var finishedAt: Int  // the event clock when it returned
    }

    @Test func concurrentStoresShareFlushesAndReturnOnlyAfterOne() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = Atomic<Int>(0)
        let flushes = Mutex<[Flush]>([])
        let registry = SpoolRegistry(flushDirectory: { path throws(SystemError) in
            let present = Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            try fsyncDirectory(path)
            usleep(2000)  // a slow disk, so that stores pile up behind a flush
            let finished = clock.add(1, ordering: .sequentiallyConsistent).newValue
            flushes.withLock { $0.append(Flush(started: present, finishedAt: finished)) }
        })
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
        let done = flushes.withLock { $0 }
        #expect(stores.count == threads * perThread)
        for store in stores {
            // On disk, whole, and in new/ when a flush began that ended before the store returned.
            #expect(FileManager.default.contents(atPath: store.path).map { [UInt8]($0) } == store.contents)
            #expect(done.contains { $0.started.contains(store.name) && $0.finishedAt < store.at },
                    "\(store.name) returned without a flush of new/ after its rename")
        }
        #expect(done.count < stores.count / 2, "\(done.count) flushes for \(stores.count) stores: no grouping")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new").count == stores.count)
    }

    @Test func aFailedFlushFailsEveryWaiterOfItsBatchAndNoOther() throws {
        let waiters = 12
        let calls = Atomic<Int>(0)
        let holder = Mutex<DirectorySync?>(nil)
        let firstFlushRunning = DispatchSemaphore(value: 0)
        let sync = DirectorySync(path: "/nonexistent/new", flush: { _ throws(SystemError) in
            switch calls.add(1, ordering: .sequentiallyConsistent).newValue {
            case 1:  // the first batch: holds the disk until every waiter has joined the next batch
                firstFlushRunning.signal()
                while holder.withLock({ $0!.waitingForNextFlush }) < waiters { usleep(100) }
            case 2:  // the second batch: the disk reports an error
                throw SystemError("fsync", path: "/nonexistent/new", errno: EIO)
            default:
                break
            }
        })
        holder.withLock { $0 = sync }

        let first = Mutex<Result<Void, SystemError>?>(nil)
        let leader = Thread { first.withLock { $0 = Result { () throws(SystemError) in try sync.sync() } } }
        leader.start()
        firstFlushRunning.wait()

        let results = Mutex<[Result<Void, SystemError>]>([])
        onThreads(waiters) { _ in
            let result = Result { () throws(SystemError) in try sync.sync() }
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
        #expect(throws: Never.self) { try sync.sync() }
        #expect(calls.load(ordering: .sequentiallyConsistent) == 3)
        // The flush closure reads `holder`, which holds `sync`: break the cycle.
        holder.withLock { $0 = nil }
    }

    @Test func aFailedDirectoryFlushIsA503() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = CapturedLog()
        let handler = WebhookHandler(
            logger: log.logger(),
            spools: SpoolRegistry(flushDirectory: { path throws(SystemError) in
                throw SystemError("fsync", path: path, errno: EIO)
            }))
        let secret = "group-sync-secret"
        let body = Array("{\"ref\":\"main\"}".utf8)
        let values = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/github", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SCHEME": "github", "HOOKGUARD_SECRET": secret, "HOOKGUARD_SPOOL": dir + "/spool",
            "HTTP_X_HUB_SIGNATURE_256": Scheme.presets["github"]!.signature(of: body, secret: Secret(secret)),
        ]
        var source = MemoryBody(body)
        let response = handler.handle(params(values), body: &source)
        #expect(response.status == 503)
        #expect(response.headers.contains { $0.name == "Retry-After" })
        #expect(log.text.contains("reason=spool-unwritable"))
        #expect(log.text.contains("Input/output error"))
    }
}
