import Glibc
import Synchronization

/// A maildir-like spool: an entry is written to `tmp/`, flushed, renamed into
/// `new/` and the directory flushed, so a reader of `new/` sees whole entries
/// only and an entry in `new/` survives a crash. Readers claim entries by
/// renaming them into `cur/`.
public struct Spool: Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    public var tmp: String { root + "/tmp" }
    public var new: String { root + "/new" }
    public var cur: String { root + "/cur" }

    /// Creates the spool's directories (mode 0750) where missing.
    public func prepare() throws(SystemError) {
        try makeDirectories(root)
        for dir in [tmp, new, cur] { try makeDirectories(dir) }
    }

    /// Writes `contents` as `new/<id>.json` and returns only once the entry
    /// is on disk. On failure nothing is left behind in `tmp/` or `new/`.
    @discardableResult
    public func store(_ contents: [UInt8], id: DeliveryID) throws(SystemError) -> String {
        let name = id.text + ".json"
        let staged = tmp + "/" + name
        let final = new + "/" + name
        let fd = try syscall("open", path: staged) {
            open(staged, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        }
        do {
            try writeAll(fd, contents, path: staged)
            try syscall("fsync", path: staged) { fsync(fd) }
            try syscall("close", path: staged) { close(fd) }
        } catch {
            close(fd)
            unlink(staged)
            throw error
        }
        do {
            try syscall("rename", path: final) { rename(staged, final) }
        } catch {
            unlink(staged)
            throw error
        }
        try syncDirectory(new)
        return final
    }
}

/// Spools by path, each prepared once and again after it was removed.
public final class SpoolRegistry: Sendable {
    private let prepared = Mutex<Set<String>>([])

    public init() {}

    /// Every spool a delivery was stored in since start.
    public var known: [String] { prepared.withLock { $0.sorted() } }

    @discardableResult
    public func store(_ contents: [UInt8], id: DeliveryID, in root: String) throws(SystemError) -> String {
        let spool = Spool(root: root)
        if !prepared.withLock({ $0.contains(root) }) {
            try spool.prepare()
            prepared.withLock { _ = $0.insert(root) }
        }
        do {
            return try spool.store(contents, id: id)
        } catch where error.errno == ENOENT {
            // The spool was removed under us: make it again, once.
            prepared.withLock { _ = $0.remove(root) }
            try spool.prepare()
            prepared.withLock { _ = $0.insert(root) }
            return try spool.store(contents, id: id)
        }
    }
}

extension Spool {
    /// Entries waiting in `new/`.
    public func depth() -> Int? {
        guard let dir = opendir(new) else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if !entryName(entry).hasPrefix(".") { count += 1 }
        }
        return count
    }

    /// Whether a file can be created in `tmp/` now (created and removed again).
    public func probeWritable() throws(SystemError) {
        try prepare()
        let probe = tmp + "/.probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try syscall("open", path: probe) { open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640) }
        close(fd)
        unlink(probe)
    }
}

func makeDirectories(_ path: String, mode: mode_t = 0o750) throws(SystemError) {
    var st = stat()
    if stat(path, &st) == 0 {
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw SystemError("mkdir", path: path, errno: ENOTDIR) }
        return
    }
    // Only a missing directory is made; one we may not look into is reported as such.
    guard errno == ENOENT else { throw SystemError("stat", path: path, errno: errno) }
    if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
        try makeDirectories(String(path[..<slash]), mode: mode)
    }
    if mkdir(path, mode) != 0 && errno != EEXIST {
        throw SystemError("mkdir", path: path, errno: errno)
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        let written = try syscall("write", path: path) {
            bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        }
        offset += written
    }
}

func syncDirectory(_ path: String) throws(SystemError) {
    let fd = try syscall("open", path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try syscall("fsync", path: path) { fsync(fd) }
}
