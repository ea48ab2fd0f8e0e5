import Foundation
import Glibc
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// A spool in a fresh temporary directory, with envelopes written by the
/// library's own spool writer, as `hookguard serve` writes them.
private struct TestSpool {
    let dir: String
    let spool: DrainSpool

    init() throws {
        dir = try makeTemporaryDirectory()
        spool = DrainSpool(root: dir + "/spool")
        try spool.prepare()
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    @discardableResult
    func deliver(
        _ body: [UInt8] = Array("{\"n\":1}".utf8), event: String? = "ticket.created",
        milliseconds: UInt64 = Timestamp.now().milliseconds
    ) throws -> EntryName {
        // DeliveryID.next never goes back in time: an older arrival is spelled out.
        let hex = String(milliseconds, radix: 16)
        let stamp = String(repeating: "0", count: 12 - hex.count) + hex
        let id =
            milliseconds < Timestamp.now().milliseconds - 1000
            ? DeliveryID(
                parsing:
                    "\(stamp.prefix(8))-\(stamp.suffix(4))-7000-8000-\(String(UInt64.random(in: 1..<(1 << 40)), radix: 16).padding(toLength: 12, withPad: "0", startingAt: 0))"
            )!
            : DeliveryID.next(milliseconds: milliseconds)
        let envelope = Envelope(
            id: id, receivedAt: .now(), scheme: "tito", uri: "/hooks/tito", event: event,
            headers: [("content-type", "application/json")], body: body)
        try Spool(root: spool.root).store(envelope.encoded(), id: id)
        return EntryName(id: id)
    }

    func names(_ place: Place) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: spool.directory(place)))
    }

    var staged: Set<String> {
        get throws { Set(try FileManager.default.contentsOfDirectory(atPath: spool.tmp)) }
    }

    func claim(_ entry: EntryName) throws -> Claim {
        guard case .claimed(let claim) = try spool.acquire(entry) else {
            Issue.record("could not claim \(entry)")
            throw CancellationError()
        }
        return claim
    }
}

extension Array where Element == UInt8 {
    fileprivate func write(to path: String) throws {
        try Data(self).write(to: URL(fileURLWithPath: path))
    }
}

private func failure(_ attempts: Int, next: Date? = nil) -> AttemptRecord {
    AttemptRecord(
        attempts: attempts, lastAttemptAt: Date(timeIntervalSince1970: 1_795_000_000.25),
        nextAttemptAt: next, outcome: "exit status 3", exitStatus: 3, stderrTail: "boom\n")
}

@Suite struct BackoffTests {
    @Test func doublesFromTheBase() {
        let backoff = Backoff(base: .milliseconds(500))
        #expect(backoff.delay(afterFailure: 1) == .milliseconds(500))
        #expect(backoff.delay(afterFailure: 2) == .seconds(1))
        #expect(backoff.delay(afterFailure: 3) == .seconds(2))
        #expect(backoff.delay(afterFailure: 7) == .seconds(32))
    }

    @Test func neverAboveTheCap() {
        let backoff = Backoff(base: .seconds(10))
        #expect(backoff.delay(afterFailure: 9) == .seconds(2560))
        #expect(backoff.delay(afterFailure: 10) == .seconds(3600))
        #expect(backoff.delay(afterFailure: 1000) == .seconds(3600))
        #expect(Backoff(base: .zero).delay(afterFailure: 1000) == .zero)
    }

    @Test func durationsAsTheCommandLineTakesThem() {
        #expect(Duration(parsing: "250ms") == .milliseconds(250))
        #expect(Duration(parsing: "1.5s") == .milliseconds(1500))
        #expect(Duration(parsing: "10m") == .seconds(600))
        #expect(Duration(parsing: "1h") == .seconds(3600))
        #expect(Duration(parsing: "7") == .seconds(7))
        for bad in ["", "s", "-1s", "1x", "1e3", "ten", "1 s", ".", "nan"] {
            #expect(Duration(parsing: bad) == nil, "\(bad)")
        }
        #expect(Duration.milliseconds(250).shortDescription == "250ms")
        #expect(Duration.seconds(30).shortDescription == "30s")
        #expect(Duration.milliseconds(1500).shortDescription == "1.5s")
    }
}

@Suite struct EntryTests {
    @Test func namesAndArrival() throws {
        let id = "01a20426-3ace-7000-be8f-3d7232b50bcc"
        let entry = try #require(EntryName(envelopeFile: id + ".json"))
        #expect(entry.recordFile == id + ".attempts")
        #expect(EntryName(recordFile: entry.recordFile) == entry)
        #expect(entry.arrivalMilliseconds == 0x01a2_0426_3ace)
        #expect(EntryName(envelopeFile: "manual.json")?.arrivalMilliseconds == nil)
        for ignored in [".hidden.json", ".json", "x.attempts", "x.json.tmp"] {
            #expect(EntryName(envelopeFile: ignored) == nil, "\(ignored)")
        }
    }

    @Test func queueIsOldestFirstAndHoldsEachOnce() {
        var queue = EntryQueue()
        for stem in ["c", "a", "d", "b", "a", "c"] { queue.insert(EntryName(envelopeFile: stem + ".json")!) }
        #expect(queue.count == 4)
        var order: [String] = []
        while let entry = queue.popFirst() { order.append(entry.stem) }
        #expect(order == ["a", "b", "c", "d"])
        queue.insert(EntryName(envelopeFile: "a.json")!)
        #expect(queue.popFirst()?.stem == "a")
    }

    @Test func tailKeepsTheEnd() {
        var tail = TailBuffer(limit: 8)
        tail.append(Array("0123".utf8))
        tail.append(Array("456789abcdef".utf8))
        #expect(tail.text == "89abcdef")
        tail.append(Array("xy".utf8))
        #expect(tail.text == "abcdefxy")
    }

    @Test func exitStatusFromWaitStatus() {
        #expect(ExitStatus(waitStatus: 0) == .exited(0))
        #expect(ExitStatus(waitStatus: 3 << 8) == .exited(3))
        #expect(ExitStatus(waitStatus: 9) == .signaled(9))
        #expect(ExitStatus(waitStatus: 0).succeeded)
        #expect(!ExitStatus(waitStatus: 15).succeeded)
        #expect(ExitStatus.exited(3).description == "exit status 3")
    }
}

@Suite struct StoredEnvelopeTests {
    @Test func bodiesComeBackByteExact() throws {
        let bodies: [[UInt8]] = [
            [], Array("{\"a\":1}".utf8), Array(0..<0x20) + Array("\"\\/ é € 𝄞 \u{2028}\u{feff}".utf8),
            [0xff, 0xfe, 0x00, 0x41], Array("ok".utf8) + [0xed, 0xa0, 0x80], (0..<70_000).map { UInt8($0 % 251) },
        ]
        for body in bodies {
            let id = DeliveryID.next(milliseconds: 1)
            let written = Envelope(
                id: id, receivedAt: .now(), scheme: "github", uri: "/hooks/github", event: "push",
                headers: [], body: body
            ).encoded()
            let read = try StoredEnvelope(decoding: written)
            #expect(read.body == body)
            #expect(read.id == id.text)
            #expect(read.scheme == "github")
            #expect(read.event == "push")
            #expect(read.deliveryID == nil)
        }
    }

    @Test func deliveryIDWhenPresent() throws {
        let json = #"{"id":"x","scheme":"github","delivery_id":"72d3162e-cc78-11e3","body":""}"#
        #expect(try StoredEnvelope(decoding: Array(json.utf8)).deliveryID == "72d3162e-cc78-11e3")
    }

    @Test func whatIsNotAnEnvelopeSaysWhy() {
        let cases: [(String, String)] = [
            ("not json", "not a JSON object"),
            (#"{"scheme":"x","body":""}"#, "no id"),
            (#"{"id":"x","scheme":"x"}"#, "neither body nor body_base64"),
            (#"{"id":"x","scheme":"x","body_base64":"***"}"#, "not base64"),
            (#"{"id":"x","scheme":"x","body":7}"#, "body is not a string"),
        ]
        for (json, why) in cases {
            do {
                _ = try StoredEnvelope(decoding: Array(json.utf8))
                Issue.record("\(json) was read as an envelope")
            } catch {
                #expect(error.description.contains(why), "\(json): \(error)")
            }
        }
    }
}

@Suite struct ClaimTests {
    @Test func claimMovesIntoCurAndLocksOthersOut() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        let claim = try t.claim(entry)
        #expect(!claim.reclaimed && claim.record == nil && claim.failedAttempts == 0)
        #expect(try t.names(.new).isEmpty)
        #expect(try t.names(.cur) == [entry.envelopeFile])
        #expect(claim.envelopePath == t.spool.root + "/cur/" + entry.envelopeFile)

        // A second open file description is a second claimer: the lock keeps it out.
        guard case .busy(let fd) = try t.spool.acquire(entry) else {
            Issue.record("a held delivery was claimed twice")
            return
        }
        claim.release()
        // The same descriptor, tried again, now gets it: an entry whose lock is free has no owner.
        guard case .claimed(let reclaim) = try t.spool.acquire(entry, reusing: fd) else {
            Issue.record("a released delivery could not be reclaimed")
            return
        }
        #expect(reclaim.reclaimed)
        #expect(try StoredEnvelope(decoding: reclaim.readEnvelope()).body == Array("{\"n\":1}".utf8))
        try reclaim.complete()
        #expect(try t.names(.cur).isEmpty)
        guard case .gone = try t.spool.acquire(entry) else {
            Issue.record("a completed delivery was found again")
            return
        }
    }

    @Test func heldButRemovedIsGone() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        let claim = try t.claim(entry)
        guard case .busy(let fd) = try t.spool.acquire(entry) else {
            Issue.record("not busy")
            return
        }
        // The holder removed it but has not let go yet: nothing to wait for.
        unlink(claim.envelopePath)
        guard case .gone = try t.spool.acquire(entry, reusing: fd) else {
            Issue.record("a removed delivery was still waited for")
            return
        }
        claim.release()
    }

    @Test func failedAttemptsAreCountedAcrossClaims() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        let next = Date(timeIntervalSinceNow: 60)
        try t.claim(entry).recordFailure(failure(1, next: next))
        #expect(try t.names(.cur) == [entry.envelopeFile, entry.recordFile])
        #expect(try t.staged.isEmpty)

        let again = try t.claim(entry)
        #expect(again.reclaimed)
        #expect(again.failedAttempts == 1)
        #expect(again.record?.outcome == "exit status 3")
        #expect(again.record?.stderrTail == "boom\n")
        let due = try #require(again.record?.nextAttemptAt)
        #expect(abs(due.timeIntervalSince(next)) < 0.002)
        try again.recordFailure(failure(2))
        #expect(try t.claim(entry).failedAttempts == 2)
    }

    @Test func givingUpMovesEnvelopeAndRecordToFailedUnchanged() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver([0xff, 0x00])
        let original = try Data(contentsOf: URL(fileURLWithPath: t.spool.envelopePath(entry, in: .new)))
        try t.claim(entry).giveUp(failure(8))
        #expect(try t.names(.cur).isEmpty)
        #expect(try t.names(.failed) == [entry.envelopeFile, entry.recordFile])
        #expect(try Data(contentsOf: URL(fileURLWithPath: t.spool.envelopePath(entry, in: .failed))) == original)
        #expect(t.spool.readRecord(entry, in: .failed) == failure(8))
        guard case .gone = try t.spool.acquire(entry) else {
            Issue.record("a failed delivery was claimed")
            return
        }

        #expect(try t.spool.retryFailed() == [entry])
        #expect(try t.names(.failed).isEmpty)
        #expect(try t.names(.new) == [entry.envelopeFile])
        let fresh = try t.claim(entry)
        #expect(fresh.record == nil && !fresh.reclaimed)
    }

    @Test func aDeliveryFromNewStartsAfresh() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        // A record left in cur/ by a crash, from an earlier life of this delivery.
        try failure(7).encoded().write(to: t.spool.recordPath(entry, in: .cur))
        let claim = try t.claim(entry)
        #expect(claim.record == nil)
        #expect(try t.names(.cur) == [entry.envelopeFile])
    }

    @Test func unreadableRecordCountsAsNone() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        try t.claim(entry).release()
        try Array("{\"attempts\":".utf8).write(to: t.spool.recordPath(entry, in: .cur))
        #expect(try t.claim(entry).record == nil)
    }

    @Test func repairFinishesHalfDoneSteps() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let record = failure(8).encoded()
        // Crash between moving the envelope to failed/ and moving its record.
        let movedHalf = try t.deliver()
        try t.claim(movedHalf).giveUp(failure(8))
        try FileManager.default.moveItem(
            atPath: t.spool.recordPath(movedHalf, in: .failed),
            toPath: t.spool.recordPath(movedHalf, in: .cur))
        // Crash between removing a completed envelope and its record.
        let completed = EntryName(envelopeFile: "completed.json")!
        try record.write(to: t.spool.recordPath(completed, in: .cur))
        // Crash between retrying a failed delivery and removing its record.
        let retried = EntryName(envelopeFile: "retried.json")!
        try record.write(to: t.spool.recordPath(retried, in: .failed))
        // A retry waiting in cur/: its record belongs.
        let waiting = try t.deliver()
        try t.claim(waiting).recordFailure(failure(1))
        // Staged records: one a crash left long ago, one being written now.
        try record.write(to: t.spool.tmp + "/old.attempts")
        try FileManager.default.setAttributes(
            [.modificationDate: Date(timeIntervalSinceNow: -3600)],
            ofItemAtPath: t.spool.tmp + "/old.attempts")
        try record.write(to: t.spool.tmp + "/fresh.attempts")

        #expect(try t.spool.repairRecords() == 4)
        #expect(try t.names(.failed) == [movedHalf.envelopeFile, movedHalf.recordFile])
        #expect(try t.names(.cur) == [waiting.envelopeFile, waiting.recordFile])
        #expect(try t.staged == ["fresh.attempts"])
        #expect(try t.spool.repairRecords() == 0)
    }

    @Test func countsWhatAnOperatorLooksAt() throws {
        let t = try TestSpool()
        defer { t.remove() }
        #expect(try SpoolCounts(reading: t.spool) == SpoolCounts())
        let oldest = Timestamp.now().milliseconds - 90_000
        let running = try t.deliver(milliseconds: oldest)
        let waiting = try t.deliver()
        let gaveUp = try t.deliver()
        try t.deliver()
        try t.deliver()
        let claim = try t.claim(running)
        try t.claim(waiting).recordFailure(failure(1, next: Date(timeIntervalSinceNow: 60)))
        try t.claim(gaveUp).giveUp(failure(8))

        let counts = try SpoolCounts(reading: t.spool)
        #expect(counts.new == 2)
        #expect(counts.inProgress == 1)
        #expect(counts.retrying == 1)
        #expect(counts.failed == 1)
        #expect(counts.oldestMilliseconds == oldest)
        let age = try #require(counts.oldestAge())
        #expect(age >= 90 && age < 100)
        claim.release()
        #expect(try SpoolCounts(reading: t.spool).inProgress == 0)
        #expect(throws: SystemError.self) { try SpoolCounts(reading: DrainSpool(root: t.dir + "/nowhere")) }
    }
}

@Suite struct ChildProcessTests {
    @Test func inputErrorsStatusAndTheInheritedLock() throws {
        let t = try TestSpool()
        defer { t.remove() }
        let entry = try t.deliver()
        let claim = try t.claim(entry)
        let sh = try #require(resolveExecutable("sh", path: ProcessInfo.processInfo.environment["PATH"]))
        // Reads its input, shows its environment and what fd 3 is, then fails.
        let script = #"read line; echo "$line/$HOOKGUARD_ID" >&2; readlink /proc/self/fd/3 >&2; exit 5"#
        let child = try ChildProcess.spawn(
            executable: sh, arguments: ["sh", "-c", script],
            environment: ["HOOKGUARD_ID=abc", "PATH=/usr/bin:/bin"], inherit: claim.fd)
        let input = Array("hello\n".utf8)
        #expect(input.withUnsafeBytes { write(child.stdin, $0.baseAddress!, $0.count) } == input.count)
        close(child.stdin)
        var status: Int32 = 0
        #expect(waitpid(child.pid, &status, 0) == child.pid)
        #expect(ExitStatus(waitStatus: status) == .exited(5))
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(child.stderr, $0.baseAddress!, $0.count) }
            guard n > 0 else { break }
            output += buffer[..<n]
        }
        close(child.stderr)
        #expect(String(decoding: output, as: UTF8.self) == "hello/abc\n\(claim.envelopePath)\n")
        claim.release()
    }

    @Test func executablesAreFoundLikeAShellFindsThem() throws {
        #expect(resolveExecutable("sh", path: "/nonexistent:/bin") == "/bin/sh")
        #expect(resolveExecutable("no-such-command-anywhere", path: "/bin:/usr/bin") == nil)
        #expect(resolveExecutable("/bin/sh", path: nil) == "/bin/sh")
        #expect(resolveExecutable("/bin", path: nil) == nil)
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(
            FileManager.default.createFile(
                atPath: dir + "/plain", contents: Data("x".utf8),
                attributes: [.posixPermissions: 0o644]))
        #expect(resolveExecutable(dir + "/plain", path: nil) == nil)
        #expect(resolveExecutable("plain", path: dir) == nil)
    }
}
