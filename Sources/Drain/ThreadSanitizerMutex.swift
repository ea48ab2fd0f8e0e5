#if HOOKGUARD_THREAD_SANITIZER
package import Posix

/// The lock ThreadSanitizer can see, for the ThreadSanitizer run only: see
/// Posix's ThreadSanitizerMutex.swift.
typealias Mutex = Posix.Mutex
#endif
