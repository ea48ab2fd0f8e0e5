import Dispatch
import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct DuplicateRecordsTests {
    let dir: String
    let records = DuplicateRecords(lockWaitMilliseconds: 2000)
    let now = Timestamp.now()

    init() throws {
        dir = try makeTemporaryDirectory()
    }

    func claim(_ senderID: String, window: Int = 60, at now: Timestamp? = nil, in records: DuplicateRecords? = nil)
        throws -> DuplicateClaim
    {
        try (records ?? self.records).claim(
            senderID: senderID, scheme: "github", spool: dir, window: window, now: now ?? self.now)
    }

    func recordFiles() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: DuplicateRecords.directory(ofSpool: dir))) ?? []
    }

    @Test func secondCopyGetsTheFirstId() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let id = DeliveryID.next(milliseconds: now.milliseconds)
        guard case .first(let record) = try claim("delivery-1") else {
            Issue.record("first copy not first")
            return
        }
        try record.commit(id)
        record.release()
        guard case .duplicate(let first) = try claim("delivery-1") else {
            Issue.record("retry not a duplicate")
            return
        }
        #expect(first == id)
        guard case .first = try claim("delivery-2") else {
            Issue.record("another id was a duplicate")
            return
        }
    }

    @Test func aRecordNeverCommittedClaimsNothing() throws {
        // The first copy's store failed, or its process died before the store
        // finished: the record is empty and the next copy delivers.
        defer { try? FileManager.default.removeItem(atPath: dir) }
        if case .first(let record) = try claim("delivery-1") { record.release() } else { Issue.record("not first") }
        guard case .first(let record) = try claim("delivery-1") else {
            Issue.record("an empty record claimed")
            return
        }
        try record.commit(DeliveryID.next(milliseconds: now.milliseconds))
    }

    @Test func aRecordOlderThanTheWindowHasExpired() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .first(let record) = try claim("delivery-1", window: 60) else {
            Issue.record("not first")
            return
        }
        try record.commit(DeliveryID.next(milliseconds: now.milliseconds))
        record.release()
        guard case .duplicate = try claim("delivery-1", window: 60, at: Timestamp(seconds: now.seconds + 59)) else {
            Issue.record("expired too early")
            return
        }
        guard case .first(let again) = try claim("delivery-1", window: 60, at: Timestamp(seconds: now.seconds + 61))
        else {
            Issue.record("never expired")
            return
        }
        let second = DeliveryID.next(milliseconds: now.milliseconds)
        try again.commit(second)
        again.release()
        // The reused record is dated by its commit (the file's mtime, real time).
        guard case .duplicate(let latest) = try claim("delivery-1", window: 60) else {
            Issue.record("reused record not kept")
            return
        }
        #expect(latest == second)
    }

    @Test func senderTextNeverBecomesAPath() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hostile = "../../../etc/passwd\u{0}/x y"
        guard case .first(let record) = try claim(hostile) else {
            Issue.record("not first")
            return
        }
        try record.commit(DeliveryID.next(milliseconds: now.milliseconds))
        #expect(try recordFiles() == [DuplicateRecords.recordName(senderID: hostile, scheme: "github")])
        #expect(recordFiles().allSatisfy { $0.utf8.count == 64 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test func copiesArrivingTogetherAreDeliveredOnce() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stored = Locked<[DeliveryID]>([])
        let answers = Locked<[DeliveryID]>([])
        let copies = 16
        DispatchQueue.concurrentPerform(iterations: copies) { _ in
            // Each copy its own DuplicateRecords, as separate processes would be.
            let mine = DuplicateRecords(lockWaitMilliseconds: 5000)
            do {
                switch try claim("same-delivery", in: mine) {
                case .duplicate(let first):
                    answers.withLock { $0.append(first) }
                case .first(let record):
                    let id = DeliveryID.next(milliseconds: now.milliseconds)
                    usleep(20_000)  // a store takes a while; the other copies wait
                    stored.withLock { $0.append(id) }
                    try record.commit(id)
                    answers.withLock { $0.append(id) }
                }
            } catch {
                Issue.record("claim failed: \(error)")
            }
        }
        let storedIDs = stored.withLock { $0 }
        #expect(storedIDs.count == 1)
        #expect(answers.withLock { $0 }.count == copies)
        #expect(Set(answers.withLock { $0 }) == Set(storedIDs))
    }

    @Test func aCopyWaitsNoLongerThanItsLimit() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard case .first(let held) = try claim("slow") else {
            Issue.record("not first")
            return
        }
        let impatient = DuplicateRecords(lockWaitMilliseconds: 50)
        #expect(throws: DuplicateRecordError.self) { _ = try claim("slow", in: impatient) }
        try held.commit(DeliveryID.next(milliseconds: now.milliseconds))
        held.release()
        guard case .duplicate = try claim("slow", in: impatient) else {
            Issue.record("not a duplicate")
            return
        }
    }

    @Test func expiredRecordsAreSwept() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["old-1", "old-2", "fresh"] {
            guard case .first(let record) = try claim(name) else {
                Issue.record("not first")
                return
            }
            try record.commit(DeliveryID.next(milliseconds: now.milliseconds))
        }
        let base = DuplicateRecords.directory(ofSpool: dir) + "/"
        for name in ["old-1", "old-2"] {
            let path = try base + DuplicateRecords.recordName(senderID: name, scheme: "github")
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSince1970: TimeInterval(now.seconds - 7200))], ofItemAtPath: path)
        }
        #expect(recordFiles().count == 3)
        // A fresh DuplicateRecords sweeps on its first claim; this one's never swept before.
        guard case .first = try claim("new", window: 3600, in: DuplicateRecords()) else {
            Issue.record("not first")
            return
        }
        #expect(
            try Set(recordFiles())
                == Set(["fresh", "new"].map { try DuplicateRecords.recordName(senderID: $0, scheme: "github") }))
    }
}
