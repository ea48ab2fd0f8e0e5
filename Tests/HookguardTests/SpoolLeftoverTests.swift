import Foundation
import Glibc
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// `tmp/` leftovers and the stage-flush-rename helper's failure path.
@Suite struct SpoolLeftoverTests {
    let dir: String

    init() throws {
        dir = try makeTemporaryDirectory()
    }

    /// A file in `tmp/` whose last change was `hours` ago.
    func leftover(_ spool: Spool, _ name: String, hoursAgo hours: Double) throws {
        let path = spool.tmp + "/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data("{}\n".utf8)))
        let then = Date().addingTimeInterval(-hours * 3600)
        try FileManager.default.setAttributes([.modificationDate: then], ofItemAtPath: path)
    }

    func tmpNames(_ spool: Spool) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: spool.tmp)) ?? [])
    }

    @Test func onlyFilesOlderThan36HoursAreRemoved() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = Spool(root: dir + "/spool")
        try spool.prepare()
        try leftover(spool, "old.json", hoursAgo: 37)
        try leftover(spool, ".probe-1-2", hoursAgo: 40)
        try leftover(spool, "recent.json", hoursAgo: 35)
        try leftover(spool, "fresh.json", hoursAgo: 0)
        try FileManager.default.createDirectory(
            atPath: spool.tmp + "/old-directory", withIntermediateDirectories: false)
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(-50 * 3600)], ofItemAtPath: spool.tmp + "/old-directory")

        #expect(Set(try spool.removeStaleStaged()) == ["old.json", ".probe-1-2"])
        #expect(tmpNames(spool) == ["recent.json", "fresh.json", "old-directory"])
    }

    @Test func theRegistrySweepsWhenItFirstUsesASpoolAndReportsIt() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = Spool(root: dir + "/spool")
        try spool.prepare()
        try leftover(spool, "crashed.json", hoursAgo: 48)
        let reports = Locked<[(String, [String])]>([])
        let registry = SpoolRegistry(reportSwept: { root, removed, _ in
            reports.withLock { $0.append((root, removed)) }
        })
        try registry.store([1], id: DeliveryID.next(milliseconds: 1), in: spool.root)
        #expect(tmpNames(spool).isEmpty)
        #expect(reports.withLock { $0.map(\.0) } == [spool.root])
        #expect(reports.withLock { $0.first?.1 } == ["crashed.json"])
        // Not again within the interval, even with a new leftover.
        try leftover(spool, "later.json", hoursAgo: 48)
        try registry.store([2], id: DeliveryID.next(milliseconds: 2), in: spool.root)
        #expect(tmpNames(spool) == ["later.json"])
        #expect(reports.withLock { $0.count } == 1)
    }

    @Test func aFailedReplaceLeavesNoStagedFileAndTheTargetAsItWas() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A non-empty directory cannot be renamed over: the last step fails,
        // after the staged file was written, flushed and closed.
        let final = dir + "/target"
        try FileManager.default.createDirectory(atPath: final + "/inside", withIntermediateDirectories: true)
        let staged = dir + "/staged"
        #expect(throws: SystemError.self) { try replaceWhole(final, with: [1, 2, 3], stagedAt: staged) }
        #expect(!FileManager.default.fileExists(atPath: staged))
        #expect(FileManager.default.fileExists(atPath: final + "/inside"))
    }
}
