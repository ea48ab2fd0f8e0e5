import Glibc

/// Turns signals into bytes on a pipe, so one `poll` waits for signals,
/// directory changes and commands alike; `SignalWaiter`'s thread writes them.
package final class SignalPipe: Sendable {
    package let fd: Int32

    /// Call before any other thread is started, so none of them can take the signals.
    package init(_ signals: [Int32]) throws(SystemError) {
        let ends = try makePipe(nonBlocking: .read)
        // A full pipe already says "look": a write that would block is dropped.
        do {
            try setNonBlocking(ends.write)
        } catch {
            close(ends.read)
            close(ends.write)
            throw error
        }
        fd = ends.read
        let writeEnd = ends.write
        do {
            // Unblocked, a SIGTERM would end the process at once instead of starting its grace.
            try SignalWaiter.start(signals) { received in
                var byte = UInt8(truncatingIfNeeded: received)
                _ = write(writeEnd, &byte, 1)
            }
        } catch {
            close(ends.read)
            close(ends.write)
            throw error
        }
    }

    /// The signals received since the last call.
    package func received() -> [Int32] {
        var signals: [Int32] = []
        var bytes = [UInt8](repeating: 0, count: 64)
        while true {
            let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            guard count > 0 else { return signals }
            signals += bytes[..<count].map { Int32($0) }
        }
    }

    /// Waits until a signal arrives, then returns those received.
    package func next() -> [Int32] {
        while true {
            _ = try? Sys.waitReadable(fd, milliseconds: -1)
            let signals = received()
            if !signals.isEmpty { return signals }
        }
    }
}
