import Glibc
import Logging
import Synchronization

/// A maildir-like spool: an entry is written to `tmp/`, flushed, renamed into
/// `new/` and the directory flushed, so a reader of `new/` sees whole entries
/// only and an entry in `new/` survives a crash. Readers claim entries by
/// renaming them into `cur/`.
///
/// Stores run concurrently: each worker writes and flushes its own file (the
/// disk merges flushes in flight together), and the directory flushes are
/// shared by every rename made before each began (`DirectorySync`).
public final class Spool: Sendable {
    public let root: String
    private let newDirectory: DirectorySync

    public convenience init(root: String) {
        self.init(root: root, flushDirectory: fsyncDirectory)
    }

    /// `flushDirectory` makes `new/`'s entries durable; tests replace it.
    init(root: String, flushDirectory: @escaping DirectorySync.Flush) {
        self.root = root
        self.newDirectory = DirectorySync(path: root + "/new", flush: flushDirectory)
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
    /// is on disk: its file flushed, renamed, and `new/` flushed after the
    /// rename. On failure nothing is left behind in `tmp/`; an entry whose
    /// rename was made but whose directory flush failed stays in `new/`.
    @discardableResult
    public func store(_ contents: [UInt8], id: DeliveryID) throws(SystemError) -> String {
        let name = id.text + ".json"
        let staged = tmp + "/" + name
        let final = new + "/" + name
        try replaceWhole(final, with: contents, stagedAt: staged, exclusive: true)
        try newDirectory.sync()
        return final
    }
}

/// Spools by path, each prepared once and again after it was removed. The
/// same `Spool` serves every request for a path, so their directory flushes
/// are shared.
///
/// A spool's `tmp/` is swept of stale leftovers (`Spool.removeStaleStaged`)
/// when this process first stores into it and then at most every
/// `sweepIntervalSeconds`, by the store that finds the sweep due; what is
/// removed goes to `reportSwept`.
public final class SpoolRegistry: Sendable {
    private struct Entry {
        var spool: Spool
        var prepared: Bool
        var lastSweep: Int?
    }

    /// What a sweep of `tmp/` removed: the spool and the file names.
    public typealias SweepReport = @Sendable (_ spool: String, _ removed: [String], _ error: SystemError?) -> Void

    public static let sweepIntervalSeconds = 3600

    private let spools = Mutex<[String: Entry]>([:])
    private let flushDirectory: DirectorySync.Flush
    private let reportSwept: SweepReport

    public convenience init(reportSwept: @escaping SweepReport = { _, _, _ in }) {
        self.init(flushDirectory: fsyncDirectory, reportSwept: reportSwept)
    }

    init(flushDirectory: @escaping DirectorySync.Flush, reportSwept: @escaping SweepReport = { _, _, _ in }) {
        self.flushDirectory = flushDirectory
        self.reportSwept = reportSwept
    }

    /// Every spool a delivery was stored in since start.
    public var known: [String] { spools.withLock { $0.filter(\.value.prepared).keys.sorted() } }

    @discardableResult
    public func store(_ contents: [UInt8], id: DeliveryID, in root: String) throws(SystemError) -> String {
        let (spool, prepared) = spools.withLock { spools -> (Spool, Bool) in
            if let entry = spools[root] { return (entry.spool, entry.prepared) }
            let spool = Spool(root: root, flushDirectory: flushDirectory)
            spools[root] = Entry(spool: spool, prepared: false)
            return (spool, false)
        }
        if !prepared {
            try spool.prepare()
            markPrepared(root, true)
        }
        sweepIfDue(spool)
        do {
            return try spool.store(contents, id: id)
        } catch where error.errno == ENOENT {
            // The spool was removed under us: make it again, once.
            markPrepared(root, false)
            try spool.prepare()
            markPrepared(root, true)
            return try spool.store(contents, id: id)
        }
    }

    private func markPrepared(_ root: String, _ prepared: Bool) {
        spools.withLock { $0[root]?.prepared = prepared }
    }

    private func sweepIfDue(_ spool: Spool, now: Timestamp = .now()) {
        let due = spools.withLock { spools -> Bool in
            if let last = spools[spool.root]?.lastSweep, now.seconds - last < Self.sweepIntervalSeconds,
                now.seconds >= last
            {
                return false
            }
            spools[spool.root]?.lastSweep = now.seconds
            return true
        }
        guard due else { return }
        do {
            let removed = try spool.removeStaleStaged(now: now)
            if !removed.isEmpty { reportSwept(spool.root, removed, nil) }
        } catch {
            reportSwept(spool.root, [], error)
        }
    }
}

extension Spool {
    /// maildir's rule: a file left in `tmp/` for 36 hours is no write in
    /// progress (a store writes, flushes and renames within its request).
    public static let staleStagedSeconds = 36 * 3600

    /// Removes the regular files in `tmp/` last modified at least
    /// `staleStagedSeconds` before `now`: envelopes a crash or a spool moved
    /// away mid-store left behind. A file still being written was modified
    /// moments ago, so it is never one of them. Returns the names removed.
    public func removeStaleStaged(now: Timestamp = .now()) throws(SystemError) -> [String] {
        var removed: [String] = []
        for name in try listDirectory(tmp) {
            let path = tmp + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                now.seconds - st.st_mtim.tv_sec >= Self.staleStagedSeconds
            else { continue }
            if unlink(path) == 0 { removed.append(name) }
        }
        return removed
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

extension Logger {
    /// The one log line for a sweep of `tmp/` (serve and drain alike): what
    /// was removed, at most 20 names, or why the sweep failed.
    func sweptStaleStaged(spool: String, removed: [String], error: SystemError?) {
        if let error {
            self.error("cannot sweep the spool's tmp/", metadata: ["spool": "\(spool)", "detail": "\(error)"])
            return
        }
        warning("removed stale files from the spool's tmp/", metadata: [
            "spool": "\(spool)", "files": "\(removed.count)", "names": "\(removed.prefix(20).joined(separator: ","))",
            "older_than_hours": "\(Spool.staleStagedSeconds / 3600)",
        ])
    }
}
