import Glibc

/// A mutex and its condition variable (pthreads). Foundation's NSCondition
/// would do, but importing Foundation maps 6 MiB more into every hookguard
/// (FoundationEssentials has no condition variable).
package final class Condition: @unchecked Sendable {  // the pthread objects are made for sharing between threads
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    package func lock() { pthread_mutex_lock(mutex) }
    package func unlock() { pthread_mutex_unlock(mutex) }
    /// Unlocks, sleeps until `broadcast`, locks again (wakes may be spurious: loop).
    package func wait() { pthread_cond_wait(condition, mutex) }
    package func broadcast() { pthread_cond_broadcast(condition) }
}
