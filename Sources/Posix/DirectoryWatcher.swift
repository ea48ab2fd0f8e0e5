import Glibc

/// Changes in watched directories, from inotify: a descriptor that becomes
/// readable when something happened, and the events read from it.
package final class DirectoryWatcher {
    package let fd: Int32
    private var directories: [Int32: String] = [:]
    private var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    package struct Event {
        package var directory: String
        package var name: String
        var mask: UInt32

        package func has(_ flag: Int32) -> Bool { mask & UInt32(bitPattern: flag) != 0 }
    }

    package enum Batch {
        case events([Event])
        /// The kernel's queue overflowed: events were lost, look again.
        case overflowed
    }

    package init() throws(SystemError) {
        fd = try syscall("inotify_init1") { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
    }

    deinit { close(fd) }

    package func watch(_ directory: String, for mask: Int32) throws(SystemError) {
        let wd = try syscall("inotify_add_watch", path: directory) {
            inotify_add_watch(fd, directory, UInt32(bitPattern: mask) | UInt32(IN_ONLYDIR))
        }
        directories[wd] = directory
    }

    /// Every event queued now; none when nothing is.
    package func read() throws(SystemError) -> Batch {
        var events: [Event] = []
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { return .events(events) }
                throw SystemError("read", path: "inotify", errno: errno)
            }
            var offset = 0
            var overflowed = false
            buffer.withUnsafeBytes { raw in
                // struct inotify_event: int wd; uint32_t mask, cookie, len; char name[len];
                while offset + 16 <= count {
                    let wd = raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let nameBytes = raw[(offset + 16)..<(offset + 16 + length)].prefix { $0 != 0 }
                    offset += 16 + length
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflowed = true }
                    guard let directory = directories[wd] else { continue }
                    events.append(
                        Event(directory: directory, name: String(decoding: nameBytes, as: UTF8.self), mask: mask))
                }
            }
            if overflowed { return .overflowed }
        }
    }
}

extension DirectoryWatcher {
    /// inotify's event flags by name, for `watch` and `Event.has`.
    package enum Change {
        package static let movedIn = IN_MOVED_TO
        package static let movedOut = IN_MOVED_FROM
        package static let deleted = IN_DELETE
        package static let closedAfterWriting = IN_CLOSE_WRITE
        package static let closedUnwritten = IN_CLOSE_NOWRITE
    }
}
