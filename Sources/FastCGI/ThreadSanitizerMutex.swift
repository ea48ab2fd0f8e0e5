#if HOOKGUARD_THREAD_SANITIZER
import HookguardCore

/// The lock ThreadSanitizer can see, for the ThreadSanitizer run only: see
/// HookguardCore's ThreadSanitizerMutex.swift.
typealias Mutex = HookguardCore.Mutex
#endif
