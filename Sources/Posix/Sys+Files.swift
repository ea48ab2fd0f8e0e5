import CLinux
import Glibc

/// What a file is, from its mode's type bits.
package enum FileKind: Sendable, Equatable {
    case regular, directory, symbolicLink, socket, other
}

/// The fields of `stat(2)` callers look at.
package struct FileStatus: Sendable, Equatable {
    package var kind: FileKind
    /// The permission bits (`0o7777` of `st_mode`).
    package var permissions: UInt32
    package var size: Int64
    package var device: UInt64
    package var inode: UInt64
    package var owner: UInt32
    package var group: UInt32
    package var modified: Timestamp
    package var changed: Timestamp

    package init(
        kind: FileKind = .regular, permissions: UInt32 = 0, size: Int64 = 0, device: UInt64 = 0, inode: UInt64 = 0,
        owner: UInt32 = 0, group: UInt32 = 0, modified: Timestamp = Timestamp(seconds: 0),
        changed: Timestamp = Timestamp(seconds: 0)
    ) {
        self.kind = kind
        self.permissions = permissions
        self.size = size
        self.device = device
        self.inode = inode
        self.owner = owner
        self.group = group
        self.modified = modified
        self.changed = changed
    }

    init(_ st: stat) {
        let kind: FileKind =
            switch st.st_mode & S_IFMT {
            case S_IFREG: .regular
            case S_IFDIR: .directory
            case S_IFLNK: .symbolicLink
            case S_IFSOCK: .socket
            default: .other
            }
        self.init(
            kind: kind, permissions: UInt32(st.st_mode & 0o7777), size: Int64(st.st_size), device: UInt64(st.st_dev),
            inode: UInt64(st.st_ino), owner: st.st_uid, group: st.st_gid,
            modified: Timestamp(seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec),
            changed: Timestamp(seconds: st.st_ctim.tv_sec, nanoseconds: st.st_ctim.tv_nsec))
    }

    /// The same file (device and inode) as `other`.
    package func isSameFile(as other: FileStatus) -> Bool {
        device == other.device && inode == other.inode
    }
}

/// How `Sys.open` opens a file; every descriptor is close-on-exec.
package struct OpenFlags: OptionSet, Sendable {
    package let rawValue: Int32
    package init(rawValue: Int32) { self.rawValue = rawValue }

    package static let readOnly = OpenFlags([])
    package static let writeOnly = OpenFlags(rawValue: O_WRONLY)
    package static let readWrite = OpenFlags(rawValue: O_RDWR)
    package static let create = OpenFlags(rawValue: O_CREAT)
    /// With `create`: fail with `alreadyExists` when the file is there.
    package static let exclusive = OpenFlags(rawValue: O_EXCL)
    package static let truncate = OpenFlags(rawValue: O_TRUNC)
    package static let directory = OpenFlags(rawValue: O_DIRECTORY)
    /// Fail when the last component is a symbolic link.
    package static let noFollow = OpenFlags(rawValue: O_NOFOLLOW)
}

extension SystemError {
    /// ENOENT: no such file or directory.
    package var isNotFound: Bool { errno == ENOENT }
    /// EEXIST: the file is there already.
    package var alreadyExists: Bool { errno == EEXIST }
    /// EPERM: the caller may not do this (to this file or process).
    package var isNotPermitted: Bool { errno == EPERM }
}

extension Sys {
    package static func open(_ path: String, _ flags: OpenFlags, mode: UInt32 = 0) throws(SystemError) -> Int32 {
        try syscall("open", path: path) { Glibc.open(path, flags.rawValue | O_CLOEXEC, mode_t(mode)) }
    }

    /// Closes `fd` once where nothing was written through it, or the caller
    /// is already failing: what close reports changes nothing then.
    package static func closeIgnoringError(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Reads into `buffer[offset...]` from the file's `offset`, without
    /// moving the descriptor's offset; how much was read, 0 at the end.
    package static func pread(_ fd: Int32, into buffer: inout [UInt8], from offset: Int, path: String)
        throws(SystemError) -> Int
    {
        try syscall("read", path: path) {
            buffer.withUnsafeMutableBytes {
                Glibc.pread(fd, $0.baseAddress! + offset, $0.count - offset, off_t(offset))
            }
        }
    }

    /// Writes some of `bytes[offset...]`; returns how many.
    package static func write(_ fd: Int32, _ bytes: [UInt8], from offset: Int, path: String) throws(SystemError) -> Int
    {
        try syscall("write", path: path) {
            bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
        }
    }

    /// Writes all of `bytes` at `offset`, without moving the descriptor's offset.
    package static func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            done += try syscall("pwrite", path: path) {
                bytes.withUnsafeBytes {
                    Glibc.pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done))
                }
            }
        }
    }

    package static func ftruncate(_ fd: Int32, size: Int, path: String) throws(SystemError) {
        try syscall("ftruncate", path: path) { Glibc.ftruncate(fd, off_t(size)) }
    }

    package static func fsync(_ fd: Int32, path: String) throws(SystemError) {
        try syscall("fsync", path: path) { Glibc.fsync(fd) }
    }

    /// `syncfs(2)`: every file written on the filesystem holding `fd`, made durable.
    package static func syncfs(_ fd: Int32, path: String) throws(SystemError) {
        try syscall("syncfs", path: path) { hookguard_syncfs(fd) }
    }

    /// `sync_file_range(2)`: the file's data written to the device and any
    /// write error reported, without a cache flush.
    package static func writeOutFileData(_ fd: Int32, path: String) throws(SystemError) {
        try syscall("sync_file_range", path: path) { hookguard_write_file_data(fd) }
    }

    package static func stat(_ path: String) throws(SystemError) -> FileStatus {
        var st = Glibc.stat()
        try syscall("stat", path: path) { statOf(path, &st) }
        return FileStatus(st)
    }

    /// The status of `path` itself, not of what a final symbolic link points to.
    package static func lstat(_ path: String) throws(SystemError) -> FileStatus {
        var st = Glibc.stat()
        try syscall("lstat", path: path) { lstatOf(path, &st) }
        return FileStatus(st)
    }

    package static func fstat(_ fd: Int32, path: String) throws(SystemError) -> FileStatus {
        var st = Glibc.stat()
        try syscall("fstat", path: path) { fstatOf(fd, &st) }
        return FileStatus(st)
    }

    package static func rename(_ from: String, _ to: String) throws(SystemError) {
        try syscall("rename", path: from) { Glibc.rename(from, to) }
    }

    /// Renames, and tells whether anything was there to rename.
    @discardableResult
    package static func renameIfPresent(_ from: String, _ to: String) throws(SystemError) -> Bool {
        do {
            try rename(from, to)
            return true
        } catch  where error.isNotFound {
            return false
        }
    }

    /// Unlinks, and tells whether anything was there to remove.
    @discardableResult
    package static func unlinkIfPresent(_ path: String) throws(SystemError) -> Bool {
        do {
            try syscall("unlink", path: path) { Glibc.unlink(path) }
            return true
        } catch  where error.isNotFound {
            return false
        }
    }

    /// Removes what a failed step left behind, when it is there; the step's
    /// own error is the one worth reporting, so this one's is dropped.
    package static func removeLeftover(_ path: String) {
        _ = Glibc.unlink(path)
    }

    package static func mkdir(_ path: String, mode: UInt32) throws(SystemError) {
        try syscall("mkdir", path: path) { Glibc.mkdir(path, mode_t(mode)) }
    }

    /// Takes `flock`'s exclusive lock without waiting; false when another
    /// open file holds it.
    package static func tryLockExclusive(_ fd: Int32, path: String) throws(SystemError) -> Bool {
        while lockWithoutWaiting(fd) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK { return false }
            throw SystemError("flock", path: path, errno: code)
        }
        return true
    }
}

// Glibc's functions under names `Sys`'s own do not shadow (and `stat`, `flock`
// name structs too).
private func statOf(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func lstatOf(_ path: String, _ st: inout stat) -> Int32 { lstat(path, &st) }
private func fstatOf(_ fd: Int32, _ st: inout stat) -> Int32 { fstat(fd, &st) }
private func lockWithoutWaiting(_ fd: Int32) -> Int32 { flock(fd, LOCK_EX | LOCK_NB) }
