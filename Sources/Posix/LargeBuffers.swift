import CLinux

/// Bodies and envelopes of large deliveries get mappings of their own,
/// unmapped as soon as they are freed, so the process gives the memory back
/// after a burst of large deliveries. Left to itself glibc raises its mapping
/// threshold (up to 32 MiB) after the first such free and keeps later blocks
/// on its heap, where a burst of 5 MiB bodies stays resident for good.
package enum LargeBuffers {
    /// Blocks from `bytes` up are mapped on their own; call once at start.
    package static func unmapWhenFreed(from bytes: Int32 = 256 * 1024) {
        // mallopt answers 0 only for an unknown option or a value out of range.
        _ = hookguard_set_mmap_threshold(bytes)
    }
}
