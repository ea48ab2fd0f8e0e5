import Foundation
import Glibc
import HookguardTesting
import Synchronization
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// Group commit of the spool's flushes: many stores share each `syncfs` and
/// each flush of `new/`; none returns before its file was flushed while staged
/// and a flush that began after its rename has ended; a failed flush fails
/// exactly the stores it was to cover.
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
        var filesystem: Bool  // syncfs (else an fsync of new/)
        var staged: Set<String>  // what tmp/ held when the flush began
        var renamed: Set<String>  // what new/ held when the flush began
        var startedAt: Int  // the event clock when it began
        var finishedAt: Int  // the event clock when it returned
    }

    final class FlushLog: Sendable {
        let flushes = Locked<[Flush]>([])
        let clock = Atomic<Int>(0)

        func tick() -> Int { clock.add(1, ordering: .sequentiallyConsistent).newValue }

        /// `flush`, recording what the spool held when it began, and when it began and ended.
        func recording(filesystem: Bool, _ flush: @escaping SpoolFlushes.Flush) -> SpoolFlushes.Flush {
            { path throws(SystemError) in
                let root = String(path[..<path.lastIndex(of: "/")!])
                func names(_ dir: String) -> Set<String> {
                    Set((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + dir)) ?? [])
                }
                let staged = names("tmp")
                let renamed = names("new")
                let started = self.tick()
                try flush(path)
                usleep(2000)  // a slow disk, so that stores pile up behind a flush
                let finished = self.tick()
                self.flushes.withLock {
                    $0.append(
                        Flush(
                            filesystem: filesystem, staged: staged, renamed: renamed,
                            startedAt: started, finishedAt: finished))
                }
            }
        }

        var flushesOnDisk: SpoolFlushes {
            SpoolFlushes(
                filesystem: recording(filesystem: true, syncFilesystem),
                directory: recording(filesystem: false, fsyncDirectory))
        }
    }

    @Test func concurrentStoresShareFlushesAndReturnOnlyAfterThem() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = FlushLog()
        let registry = SpoolRegistry(flushes: log.flushesOnDisk)
        let threads = 32
        let perThread = 8
        let returned = Locked<[(name: String, at: Int, path: String, contents: [UInt8])]>([])
        let failures = Atomic<Int>(0)
        onThreads(threads) { t in
            for n in 0..<perThread {
                let contents = Array("{\"thread\":\(t),\"n\":\(n)}".utf8)
                let id = DeliveryID.next(milliseconds: Timestamp.now().milliseconds)
                do {
                    let path = try registry.store(contents, id: id, in: dir + "/spool")
                    let at = log.tick()
                    returned.withLock { $0.append((id.text + ".json", at, path, contents)) }
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let stores = returned.withLock { $0 }
        let flushes = log.flushes.withLock { $0 }
        #expect(stores.count == threads * perThread)
        for store in stores {
            // On disk, whole; its file flushed while it was still staged in tmp/,
            // and a flush begun after its rename ended, both before the store returned.
            #expect(FileManager.default.contents(atPath: store.path).map { [UInt8]($0) } == store.contents)
            #expect(
                flushes.contains { $0.filesystem && $0.staged.contains(store.name) && $0.finishedAt < store.at },
                "\(store.name) returned without a filesystem flush while it was staged")
            #expect(
                flushes.contains { $0.renamed.contains(store.name) && $0.finishedAt < store.at },
                "\(store.name) returned without a flush after its rename into new/")
        }
        // Nothing reaches new/ before a filesystem flush that covered it as staged has ended.
        for flush in flushes {
            for name in flush.renamed {
                #expect(
                    flushes.contains { $0.filesystem && $0.staged.contains(name) && $0.finishedAt < flush.startedAt },
                    "\(name) was in new/ before its file was flushed")
            }
        }
        #expect(flushes.count < stores.count / 4, "\(flushes.count) flushes for \(stores.count) stores")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new").count == stores.count)
    }

    @Test func aFailedFlushFailsExactlyTheStoresItWasToCover() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let waiters = 12
        let calls = Atomic<Int>(0)
        let holder = Locked<Spool?>(nil)
        let secondFlushRunning = DispatchSemaphore(value: 0)
        let failure = SystemError("syncfs", path: dir + "/spool/tmp", errno: EIO)
        let spool = Spool(
            root: dir + "/spool",
            flushes: SpoolFlushes(
                filesystem: { path throws(SystemError) in
                    switch calls.add(1, ordering: .sequentiallyConsistent).newValue {
                    case 2:  // batch B: holds the disk until every waiter has joined the next batch
                        secondFlushRunning.signal()
                        while holder.withLock({ $0!.entriesForming }) < waiters { usleep(100) }
                    case 3:  // the waiters' batch: the disk reports an error
                        throw failure
                    default:
                        break
                    }
                    try syncFilesystem(path)
                },
                directory: fsyncDirectory))
        holder.withLock { $0 = spool }
        try spool.prepare()
        @Sendable func store(_ name: String) -> Result<String, SystemError> {
            Result { () throws(SystemError) in
                try spool.store(Array(name.utf8), id: DeliveryID.next(milliseconds: Timestamp.now().milliseconds))
            }
        }

        // A, alone: its own syncfs and fsync of new/; decided before any failure.
        let a = store("A")
        #expect((try? a.get()) != nil)

        // B leads; while its syncfs runs the waiters form the next batch, whose
        // syncfs is to cover B's rename too, and fails.
        let b = Locked<Result<String, SystemError>?>(nil)
        let leader = Thread { b.withLock { $0 = store("B") } }
        leader.start()
        secondFlushRunning.wait()
        let results = Locked<[Result<String, SystemError>]>([])
        onThreads(waiters) { n in
            let result = store("W\(n)")
            results.withLock { $0.append(result) }
        }
        while b.withLock({ $0 }) == nil { usleep(100) }

        for outcome in results.withLock({ $0 }) + [b.withLock { $0! }] {
            guard case .failure(let error) = outcome else {
                Issue.record("a store the failed flush was to cover was told it is on disk")
                continue
            }
            #expect(error.errno == EIO && error.call == "syncfs")
        }
        #expect(results.withLock { $0.count } == waiters)
        // The failed waiters' staged files are gone; B's entry, renamed but never flushed, stays in new/.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tmp").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new").count == 2)

        // The error belonged to those stores only: C flushes afresh.
        #expect((try? store("C").get()) != nil)
        #expect(calls.load(ordering: .sequentiallyConsistent) == 4)
        // The flush closure reads `holder`, which holds `spool`: break the cycle.
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
