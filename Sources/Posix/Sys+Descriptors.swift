import Glibc

/// Descriptors: reads, byte writes, waits and shutdowns, for modules that do
/// not import Glibc (writes from an offset, closes and sends are in Sys+Files
/// and Sys+Sockets). Each retries EINTR and throws a `SystemError` naming the
/// call; on a non-blocking descriptor "try again" is `SystemError.wouldBlock`.
extension Sys {
    package static let standardInput = STDIN_FILENO
    package static let standardOutput = STDOUT_FILENO
    package static let standardError = STDERR_FILENO

    /// Reads at most `buffer.count` bytes into the start of `buffer`; 0 at the end of the file.
    package static func read(_ fd: Int32, into buffer: inout [UInt8], path: String? = nil) throws(SystemError) -> Int {
        try syscall("read", path: path) { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
    }

    /// Writes one byte: a token or a wake-up on a pipe (whole or not at all).
    package static func write(_ fd: Int32, byte: UInt8) throws(SystemError) {
        var byte = byte
        try syscall("write") { Glibc.write(fd, &byte, 1) }
    }

    /// Reads one byte; nil at the end of the file.
    package static func readByte(_ fd: Int32) throws(SystemError) -> UInt8? {
        var byte: UInt8 = 0
        return try syscall("read") { Glibc.read(fd, &byte, 1) } == 1 ? byte : nil
    }

    /// Reads and drops what `fd` holds now (non-blocking): a pipe that only says "look".
    package static func drain(_ fd: Int32) {
        var bytes = [UInt8](repeating: 0, count: 256)
        while ((try? read(fd, into: &bytes)) ?? 0) > 0 {}
    }

    /// Opens `path` for appending, creating it with `mode`; close-on-exec.
    package static func openForAppending(_ path: String, mode: UInt32) throws(SystemError) -> Int32 {
        try syscall("open", path: path) { Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode) }
    }

    /// Makes reads and writes on `fd` wait (`true`) or fail with EAGAIN (`false`).
    package static func setBlocking(_ fd: Int32, _ blocking: Bool) throws(SystemError) {
        let flags = try syscall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try syscall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, blocking ? flags & ~O_NONBLOCK : flags | O_NONBLOCK) }
    }

    /// Waits until one of `watched` is ready or `milliseconds` pass (-1:
    /// no limit); marks the ready ones and returns how many there are.
    @discardableResult
    package static func poll(_ watched: inout [Watched], milliseconds: Int32) throws(SystemError) -> Int {
        var fds = watched.map { pollfd(fd: $0.fd, events: Int16($0.forWriting ? POLLOUT : POLLIN), revents: 0) }
        let ready = try syscall("poll") { Glibc.poll(&fds, nfds_t(fds.count), milliseconds) }
        for index in watched.indices { watched[index].isReady = fds[index].revents != 0 }
        return Int(ready)
    }

    /// Whether `fd` became readable (or hung up) within `milliseconds` (-1: no limit).
    package static func waitReadable(_ fd: Int32, milliseconds: Int32) throws(SystemError) -> Bool {
        var watched = [Watched(reading: fd)]
        return try poll(&watched, milliseconds: milliseconds) > 0
    }

    /// Shuts a socket down both ways: a thread blocked accepting or reading on it returns.
    package static func shutdown(_ fd: Int32) throws(SystemError) {
        try syscall("shutdown") { Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }
}

/// One descriptor `Sys.poll` watches, for reading or for writing.
package struct Watched: Sendable {
    package let fd: Int32
    package let forWriting: Bool
    /// Set by `poll`: readable, writable, hung up or failed.
    package var isReady = false

    package init(reading fd: Int32) {
        self.fd = fd
        forWriting = false
    }

    package init(writing fd: Int32) {
        self.fd = fd
        forWriting = true
    }
}

extension SystemError {
    /// A non-blocking call found nothing to do (EAGAIN).
    package var wouldBlock: Bool { errno == EAGAIN || errno == EWOULDBLOCK }
}
