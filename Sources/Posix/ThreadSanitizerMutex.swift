#if HOOKGUARD_THREAD_SANITIZER
import Foundation

/// Built only for the ThreadSanitizer run of scripts/test
/// (`-Xswiftc -DHOOKGUARD_THREAD_SANITIZER`): it stands in for
/// Synchronization.Mutex, whose contended lock and unlock on Linux happen in
/// the uninstrumented libswiftSynchronization with raw futex calls, so
/// ThreadSanitizer never sees them and reports every access a Mutex guards as
/// a race. This lock has the same interface over a pthread mutex (NSLock),
/// which ThreadSanitizer does see; declared here, it shadows
/// Synchronization.Mutex in this package's modules, so the run checks our
/// locking and nothing else changes.
package final class Mutex<Value: ~Copyable>: @unchecked Sendable {  // every access to `value` holds `lock`
    private let lock = NSLock()
    private var value: Value

    package init(_ initialValue: consuming sending Value) {
        value = initialValue
    }

    package func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
#endif
