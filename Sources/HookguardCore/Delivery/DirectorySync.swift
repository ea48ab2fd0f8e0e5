import Glibc

/// Group commit for the renames into one directory: a caller's rename is made
/// durable by the first `fsync` of the directory that starts after it, so the
/// callers waiting together share one `fsync`, and the next batch forms while
/// the current one is on its way to the disk.
///
/// Each call joins the batch that has not started yet; the first caller to
/// find no flush running leads it (flushes it, then wakes the others). A
/// failed flush fails every caller of that batch, and only that batch.
final class DirectorySync: @unchecked Sendable {  // all mutable state is guarded by `condition`
    typealias Flush = @Sendable (String) throws(SystemError) -> Void

    private let path: String
    private let flush: Flush
    private let condition = Condition()
    private var flushing = false
    private var next: Batch?

    private final class Batch {
        var waiting = 0
        var result: Result<Void, SystemError>?
    }

    init(path: String, flush: @escaping Flush = fsyncDirectory) {
        self.path = path
        self.flush = flush
    }

    /// Returns once a flush of the directory that started after this call
    /// began has completed; throws that flush's error.
    func sync() throws(SystemError) {
        condition.lock()
        let batch: Batch
        if let pending = next {
            batch = pending
        } else {
            batch = Batch()
            next = batch
        }
        batch.waiting += 1
        while batch.result == nil {
            if !flushing && next === batch {
                next = nil
                flushing = true
                condition.unlock()
                let result = Result { () throws(SystemError) in try flush(path) }
                condition.lock()
                batch.result = result
                flushing = false
                condition.broadcast()
            } else {
                condition.wait()
            }
        }
        let result = batch.result!
        condition.unlock()
        try result.get()
    }

    /// How many callers are waiting for the batch that has not started (tests).
    var waitingForNextFlush: Int {
        condition.lock()
        defer { condition.unlock() }
        return next?.waiting ?? 0
    }
}

func fsyncDirectory(_ path: String) throws(SystemError) {
    let fd = try syscall("open", path: path) { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    defer { close(fd) }
    try syscall("fsync", path: path) { fsync(fd) }
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
