import Glibc

/// A value only reached while holding a pthread mutex.
///
/// Why not Synchronization's `Mutex`: on Linux its contended lock spins up to
/// a thousand times before it sleeps on a priority-inheritance futex. On two
/// cores shared by nginx, wrk and 16 workers the holder is often descheduled,
/// so the spinning burns the CPU the holder needs: in the socket row of
/// `bench/run`, 11 % of hookguard's CPU samples were in `_MutexHandle._lockSlow`.
/// glibc's default mutex sleeps at once. ThreadSanitizer also sees pthread
/// locks, where the Synchronization ones are raw futex calls it cannot see.
package final class Locked<Value: ~Copyable>: @unchecked Sendable {  // `value` is only reached holding `mutex`
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    package init(_ initialValue: consuming sending Value) {
        value = initialValue
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
