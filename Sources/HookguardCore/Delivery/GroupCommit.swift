import CLinux
import Glibc

/// Group commit: a caller's member is committed by the first run of `work`
/// that starts after the caller joined, so the callers waiting together share
/// one run (for the spool: one filesystem flush and one directory flush), and
/// the next batch forms while the current one is on its way to the disk.
///
/// Each call joins the batch that has not started yet; the first caller to
/// find no run under way leads it (runs `work` over the batch's members, then
/// wakes the others). `work` decides each member's result, so a failed flush
/// fails the members it covered, and only them.
final class GroupCommit<Member: Sendable>: @unchecked Sendable {  // all mutable state is guarded by `condition`
    /// One result per member, in the members' order.
    typealias Work = @Sendable ([Member]) -> [Result<Void, SystemError>]

    private let work: Work
    private let condition = Condition()
    private var running = false
    private var next: Batch?

    private final class Batch {
        var members: [Member] = []
        var results: [Result<Void, SystemError>]?
    }

    init(work: @escaping Work) {
        self.work = work
    }

    /// Returns once a run of `work` that started after this call began has
    /// completed, with this member's result from it.
    func commit(_ member: Member) throws(SystemError) {
        condition.lock()
        let batch: Batch
        if let pending = next {
            batch = pending
        } else {
            batch = Batch()
            next = batch
        }
        let index = batch.members.count
        batch.members.append(member)
        while batch.results == nil {
            if !running && next === batch {
                next = nil
                running = true
                condition.unlock()
                let results = work(batch.members)
                precondition(results.count == batch.members.count, "GroupCommit: one result per member")
                condition.lock()
                batch.results = results
                running = false
                condition.broadcast()
            } else {
                condition.wait()
            }
        }
        let result = batch.results![index]
        condition.unlock()
        try result.get()
    }

    /// How many callers are waiting for the batch that has not started (tests).
    var waitingForNextRun: Int {
        condition.lock()
        defer { condition.unlock() }
        return next?.members.count ?? 0
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
    let fd = try syscall("open", path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try syscall("fsync", path: path) { fsync(fd) }
}

func syncFilesystem(_ path: String) throws(SystemError) {
    let fd = try syscall("open", path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try syscall("syncfs", path: path) { hookguard_syncfs(fd) }
}

/// A mutex and its condition variable (pthreads). Foundation's NSCondition
/// would do, but importing Foundation maps 6 MiB more into every hookguard
/// (FoundationEssentials has no condition variable).
final class Condition: @unchecked Sendable {  // the pthread objects are made for sharing between threads
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Unlocks, sleeps until `broadcast`, locks again (wakes may be spurious: loop).
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
}
