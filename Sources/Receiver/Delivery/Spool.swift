import FastCGI
import Logging
package import Posix

/// A maildir-like spool: an entry is written to `tmp/`, made durable, renamed
/// into `new/` and the rename made durable, so a reader of `new/` sees whole
/// entries only and an entry in `new/` survives a crash. Readers claim entries
/// by renaming them into `cur/`.
///
/// Stores run concurrently and share their device flushes: each worker writes
/// its file and waits for its data to reach the device (`sync_file_range`, no
/// cache flush), then joins a batch (`SpoolCommit`): one `syncfs` of the
/// spool's filesystem makes every file of a batch durable, they are renamed
/// into `new/`, and the next batch's `syncfs` (or, when none is waiting, an
/// `fsync` of `new/`) makes the renames durable.
package final class Spool: Sendable {
    package let root: String
    private let commits: SpoolCommit

    package convenience init(root: String) {
        self.init(root: root, flushes: .disk)
    }

    /// `flushes` makes files and `new/`'s entries durable; tests replace it.
    init(root: String, flushes: SpoolFlushes) {
        self.root = root
        self.commits = SpoolCommit(tmp: root + "/tmp", new: root + "/new", flushes: flushes)
    }

    package var tmp: String { root + "/tmp" }
    package var new: String { root + "/new" }
    package var cur: String { root + "/cur" }

    /// Creates the spool's directories (mode 0750) where missing.
    package func prepare() throws(SystemError) {
        try makeDirectories(root)
        for dir in [tmp, new, cur] { try makeDirectories(dir) }
    }

    /// Writes `contents` as `new/<id>.json`; see `store(id:writing:)`.
    @discardableResult
    package func store(_ contents: [UInt8], id: DeliveryID) throws(SystemError) -> String {
        try store(id: id) { fd, path throws(SystemError) in try writeAll(fd, contents, path: path) }
    }

    /// Stores `new/<id>.json` with what `write` writes to the staged file
    /// (descriptor and path), and returns only once the entry is on disk: its
    /// data flushed before its rename, and the rename flushed. On failure
    /// nothing is left behind in `tmp/`; an entry whose rename was made but
    /// whose flush failed stays in `new/`.
    @discardableResult
    package func store(
        id: DeliveryID, writing write: (Int32, String) throws(SystemError) -> Void
    ) throws(SystemError) -> String {
        let name = id.text + ".json"
        let entry = SpoolCommit.Entry(staged: tmp + "/" + name, final: new + "/" + name)
        try stage(entry.staged, exclusive: true, flush: .writtenOut, write: write)
        try commits.commit(entry)
        return entry.final
    }

    /// Stores waiting for the batch that has not started (tests).
    var entriesForming: Int { commits.entriesForming }
}

/// Spools by path, each prepared once and again after it was removed. The
/// same `Spool` serves every request for a path, so their flushes are shared.
///
/// A spool's `tmp/` is swept of stale leftovers (`Spool.removeStaleStaged`)
/// when this process first stores into it and then at most every
/// `sweepIntervalSeconds`, by the store that finds the sweep due; what is
/// removed goes to `reportSwept`.
package final class SpoolRegistry: Sendable {
    private struct Entry {
        var spool: Spool
        var prepared: Bool
        var lastSweep: Int?
    }

    /// What a sweep of `tmp/` removed: the spool and the file names.
    package typealias SweepReport = @Sendable (_ spool: String, _ removed: [String], _ error: SystemError?) -> Void

    package static let sweepIntervalSeconds = 3600

    private let spools = Locked<[String: Entry]>([:])
    private let flushes: SpoolFlushes
    private let reportSwept: SweepReport

    package convenience init(reportSwept: @escaping SweepReport = { _, _, _ in }) {
        self.init(flushes: .disk, reportSwept: reportSwept)
    }

    init(flushes: SpoolFlushes, reportSwept: @escaping SweepReport = { _, _, _ in }) {
        self.flushes = flushes
        self.reportSwept = reportSwept
    }

    /// Every spool a delivery was stored in since start.
    package var known: [String] { spools.withLock { $0.filter(\.value.prepared).keys.sorted() } }

    @discardableResult
    package func store(_ contents: [UInt8], id: DeliveryID, in root: String) throws(SystemError) -> String {
        try store(id: id, in: root) { fd, path throws(SystemError) in try writeAll(fd, contents, path: path) }
    }

    /// Stores what `write` writes as the spool's entry `id` (see
    /// `Spool.store(id:writing:)`); `write` runs again if the spool had been
    /// removed and is made anew.
    @discardableResult
    package func store(
        id: DeliveryID, in root: String, writing write: (Int32, String) throws(SystemError) -> Void
    ) throws(SystemError) -> String {
        let (spool, prepared) = spools.withLock { spools -> (Spool, Bool) in
            if let entry = spools[root] { return (entry.spool, entry.prepared) }
            let spool = Spool(root: root, flushes: flushes)
            spools[root] = Entry(spool: spool, prepared: false)
            return (spool, false)
        }
        if !prepared {
            try spool.prepare()
            markPrepared(root, true)
        }
        sweepIfDue(spool)
        do {
            return try spool.store(id: id, writing: write)
        } catch  where error.isNotFound {
            // The spool was removed under us: make it again, once.
            markPrepared(root, false)
            try spool.prepare()
            markPrepared(root, true)
            return try spool.store(id: id, writing: write)
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
    package static let staleStagedSeconds = 36 * 3600

    /// Removes the regular files in `tmp/` last modified at least
    /// `staleStagedSeconds` before `now`: envelopes a crash or a spool moved
    /// away mid-store left behind. A file still being written was modified
    /// moments ago, so it is never one of them. Returns the names removed.
    package func removeStaleStaged(now: Timestamp = .now()) throws(SystemError) -> [String] {
        var removed: [String] = []
        for name in try listDirectory(tmp) {
            let path = tmp + "/" + name
            guard let st = try? Sys.lstat(path), st.kind == .regular,
                now.seconds - st.modified.seconds >= Self.staleStagedSeconds
            else { continue }
            if (try? Sys.unlinkIfPresent(path)) == true { removed.append(name) }
        }
        return removed
    }
}

extension Spool {
    /// Entries waiting in `new/`.
    package func depth() -> Int? {
        guard let names = try? listDirectory(new) else { return nil }
        return names.count(where: { !$0.hasPrefix(".") })
    }

    /// Whether a file can be created in `tmp/` now (created and removed again).
    package func probeWritable() throws(SystemError) {
        try prepare()
        let probe = tmp + "/.probe-\(Sys.processID)-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try Sys.open(probe, [.writeOnly, .create, .exclusive], mode: 0o640)
        Sys.closeIgnoringError(fd)
        Sys.removeLeftover(probe)
    }
}

extension Logger {
    /// The one log line for a sweep of `tmp/` (serve and drain alike): what
    /// was removed, at most 20 names, or why the sweep failed.
    package func sweptStaleStaged(spool: String, removed: [String], error: SystemError?) {
        if let error {
            self.error("cannot sweep the spool's tmp/", metadata: ["spool": "\(spool)", "detail": "\(error)"])
            return
        }
        warning(
            "removed stale files from the spool's tmp/",
            metadata: [
                "spool": "\(spool)", "files": "\(removed.count)",
                "names": "\(removed.prefix(20).joined(separator: ","))",
                "older_than_hours": "\(Spool.staleStagedSeconds / 3600)",
            ])
    }
}
