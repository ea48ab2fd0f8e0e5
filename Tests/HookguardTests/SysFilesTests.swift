import Foundation
import Glibc
import HookguardTesting
import Testing

@testable import Posix

/// The file and socket calls of the `Sys` façade: what they return, and that
/// a failure names the call and the path.
@Suite struct SysFilesTests {
    @Test func statReportsKindSizePermissionsAndIdentity() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/file"
        try replaceWhole(path, with: Array("hello".utf8), stagedAt: dir + "/staged")
        let file = try Sys.stat(path)
        #expect(file.kind == .regular)
        #expect(file.size == 5)
        #expect(file.permissions == 0o640 & ~currentUmask())
        #expect(file.owner == Sys.effectiveUserID)
        #expect(abs(file.modified.seconds - Timestamp.now().seconds) < 60)
        #expect(try Sys.stat(dir).kind == .directory)

        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: path)
        #expect(try Sys.lstat(dir + "/link").kind == .symbolicLink)
        #expect(try Sys.stat(dir + "/link").isSameFile(as: file))
        let fd = try Sys.open(path, .readOnly)
        defer { Sys.closeIgnoringError(fd) }
        #expect(try Sys.fstat(fd, path: path).isSameFile(as: file))
    }

    @Test func failuresNameTheCallAndThePath() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let missing = dir + "/missing"
        let error = try #require(throws: SystemError.self) { try Sys.stat(missing) }
        #expect(error.isNotFound)
        #expect(error.description == "stat(\(missing)): No such file or directory")

        let opened = try #require(throws: SystemError.self) { try Sys.open(missing, [.readOnly, .noFollow]) }
        #expect(opened.call == "open" && opened.path == missing && opened.isNotFound)

        let fd = try Sys.open(dir + "/once", [.writeOnly, .create, .exclusive], mode: 0o600)
        Sys.closeIgnoringError(fd)
        let again = try #require(throws: SystemError.self) {
            try Sys.open(dir + "/once", [.writeOnly, .create, .exclusive], mode: 0o600)
        }
        #expect(again.alreadyExists)
    }

    @Test func unlinkAndRenameTellWhetherAnythingWasThere() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try Sys.unlinkIfPresent(dir + "/none") == false)
        #expect(try Sys.renameIfPresent(dir + "/none", dir + "/other") == false)
        try replaceWhole(dir + "/a", with: [1], stagedAt: dir + "/staged")
        #expect(try Sys.renameIfPresent(dir + "/a", dir + "/b"))
        #expect(try readWholeFile(dir + "/b") == [1])
        #expect(try Sys.unlinkIfPresent(dir + "/b"))
        #expect(try listDirectory(dir).isEmpty)
        // A failure other than "not there" is still thrown: a directory is no file to unlink.
        try Sys.mkdir(dir + "/sub", mode: 0o700)
        #expect(throws: SystemError.self) { try Sys.unlinkIfPresent(dir + "/sub") }
    }

    @Test func pwriteAllAndPreadWorkAtOffsets() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/record"
        let fd = try Sys.open(path, [.readWrite, .create], mode: 0o600)
        defer { Sys.closeIgnoringError(fd) }
        try Sys.pwriteAll(fd, Array("0123456789".utf8), at: 0, path: path)
        try Sys.ftruncate(fd, size: 4, path: path)
        try Sys.pwriteAll(fd, Array("ab".utf8), at: 6, path: path)
        #expect(try readAll(fd, path: path) == Array("0123".utf8) + [0, 0] + Array("ab".utf8))
        var buffer = [UInt8](repeating: 0xff, count: 4)
        #expect(try Sys.pread(fd, into: &buffer, from: 2, path: path) == 2)
        #expect(buffer == [0xff, 0xff] + Array("23".utf8))
    }

    @Test func theLockIsExclusiveBetweenOpenFiles() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/lock"
        let first = try Sys.open(path, [.readWrite, .create], mode: 0o600)
        let second = try Sys.open(path, .readWrite)
        defer { Sys.closeIgnoringError(second) }
        #expect(try Sys.tryLockExclusive(first, path: path))
        #expect(try Sys.tryLockExclusive(second, path: path) == false)
        Sys.closeIgnoringError(first)
        #expect(try Sys.tryLockExclusive(second, path: path))
    }

    @Test func connectingToNoReaderNamesTheSocket() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/reader.sock"
        let error = try #require(throws: SystemError.self) {
            try Sys.connectUnix(path, deadline: Deadline(milliseconds: 1000))
        }
        #expect(error.call == "connect" && error.path == path && error.isNotFound && !error.isSocketTimeout)
        let tooLong = dir + "/" + String(repeating: "s", count: Sys.maxUnixSocketPathBytes)
        #expect(throws: SystemError.self) { try Sys.connectUnix(tooLong, deadline: Deadline(milliseconds: 1000)) }
    }

    @Test func calendarTimeRoundTripsThroughLibc() {
        // 2026-11-22T16:40:00Z: 20779 days after 1970-01-01 (Python: (date(2026, 11, 22) - date(1970, 1, 1)).days), plus 16:40.
        let seconds = 20779 * 86400 + 16 * 3600 + 40 * 60
        let time = Sys.utcCalendarTime(seconds)
        #expect(time == CalendarTime(year: 2026, month: 11, day: 22, hour: 16, minute: 40, second: 0))
        #expect(Sys.unixSeconds(utc: time) == seconds)
        #expect(Timestamp(seconds: seconds, nanoseconds: 123_000_000).rfc3339 == "2026-11-22T16:40:00.123Z")
    }
}

private func currentUmask() -> UInt32 {
    let mask = umask(0o022)
    umask(mask)
    return UInt32(mask)
}
