import FastCGI
import Posix

/// Group commit of spool entries, pipelined so that a batch costs one device
/// flush under load.
///
/// An entry is durable once its file was flushed while it was still staged in
/// `tmp/` (then renamed into `new/`) and a flush that began after its rename
/// has ended. Callers join the batch that is forming; the first to find no
/// flush under way leads it: one `syncfs` makes the batch's files durable
/// and, with them, the renames of the batch before it; then it renames its
/// own batch. If another batch has formed meanwhile, that batch's `syncfs`
/// will cover these renames too, so the leader hands them over and leaves;
/// otherwise it flushes `new/` itself. Each `syncfs` thus serves two batches.
///
/// A failed flush fails exactly the entries it was to cover: the files of the
/// batch it flushed (their staged files are removed) and the renames of the
/// batch before it (those entries stay in `new/`, unacknowledged).
final class SpoolCommit: @unchecked Sendable {  // all mutable state is guarded by `condition`
    struct Entry: Sendable {
        var staged: String
        var final: String
    }

    private final class Batch {
        var entries: [Entry] = []
        /// Each entry's rename, once made; `results` once the batch is decided.
        var renames: [Result<Void, SystemError>] = []
        var results: [Result<Void, SystemError>]?
    }

    private let tmp: String
    private let new: String
    private let flushes: SpoolFlushes
    private let condition = Condition()
    private var leading = false
    /// Staged entries waiting for a filesystem flush.
    private var forming: Batch?
    /// Entries renamed into `new/`, waiting for the next filesystem flush.
    private var renamed: Batch?

    init(tmp: String, new: String, flushes: SpoolFlushes) {
        self.tmp = tmp
        self.new = new
        self.flushes = flushes
    }

    /// Returns once `entry` is durable in `new/`; throws the error of the
    /// flush or rename that failed it.
    func commit(_ entry: Entry) throws(SystemError) {
        condition.lock()
        let batch = forming ?? Batch()
        forming = batch
        let index = batch.entries.count
        batch.entries.append(entry)
        while batch.results == nil {
            if !leading && forming === batch {
                forming = nil
                leading = true
                let previous = renamed
                renamed = nil
                condition.unlock()
                lead(batch, completing: previous)
                condition.lock()
                leading = false
                condition.broadcast()
            } else {
                condition.wait()
            }
        }
        let result = batch.results![index]
        condition.unlock()
        try result.get()
    }

    /// Runs without the lock; decides `previous` and either decides `batch`
    /// or hands its renames to the next leader.
    private func lead(_ batch: Batch, completing previous: Batch?) {
        let flushed = Result { () throws(SystemError) in try flushes.filesystem(tmp) }
        if case .failure = flushed {
            for entry in batch.entries { Sys.removeLeftover(entry.staged) }
        } else {
            batch.renames = batch.entries.map { entry in
                Result { () throws(SystemError) in
                    do throws(SystemError) {
                        try Sys.rename(entry.staged, entry.final)
                    } catch {
                        Sys.removeLeftover(entry.staged)
                        throw error
                    }
                }
            }
        }
        condition.lock()
        if let previous { previous.results = Self.covered(previous.renames, by: flushed) }
        let anyRenamed = batch.renames.contains { (try? $0.get()) != nil }
        if case .failure(let error) = flushed {
            batch.results = batch.entries.map { _ in .failure(error) }
        } else if !anyRenamed {
            batch.results = batch.renames
        } else if forming != nil {
            renamed = batch  // the forming batch's leader flushes these renames with its files
        } else {
            condition.unlock()
            let synced = Result { () throws(SystemError) in try flushes.directory(new) }
            condition.lock()
            batch.results = Self.covered(batch.renames, by: synced)
        }
        condition.unlock()
    }

    /// The renames that were made, decided by the flush meant to cover them.
    private static func covered(
        _ renames: [Result<Void, SystemError>], by flush: Result<Void, SystemError>
    ) -> [Result<Void, SystemError>] {
        guard case .failure(let error) = flush else { return renames }
        return renames.map { (try? $0.get()) != nil ? .failure(error) : $0 }
    }

    /// Whether callers are waiting for the batch that has not started (tests).
    var entriesForming: Int {
        condition.lock()
        defer { condition.unlock() }
        return forming?.entries.count ?? 0
    }
}

/// The device flushes a spool's commits are made of; tests replace them.
struct SpoolFlushes: Sendable {
    typealias Flush = @Sendable (String) throws(SystemError) -> Void

    /// Makes every file written on the filesystem holding the path durable
    /// (data and metadata): `syncfs(2)`, one device flush for the whole batch.
    var filesystem: Flush
    /// Makes the directory's entries durable: `fsync(2)` of the directory.
    var directory: Flush

    static let disk = SpoolFlushes(filesystem: syncFilesystem, directory: fsyncDirectory)
}

func fsyncDirectory(_ path: String) throws(SystemError) {
    try withDirectory(path) { fd throws(SystemError) in try Sys.fsync(fd, path: path) }
}

func syncFilesystem(_ path: String) throws(SystemError) {
    try withDirectory(path) { fd throws(SystemError) in try Sys.syncfs(fd, path: path) }
}

private func withDirectory(_ path: String, _ body: (Int32) throws(SystemError) -> Void) throws(SystemError) {
    let fd = try Sys.open(path, [.readOnly, .directory])
    defer { Sys.closeIgnoringError(fd) }
    try body(fd)
}
