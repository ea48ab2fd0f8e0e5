import Glibc
import Posix

/// A request body read straight from a descriptor with read(2): a CGI
/// program's standard input, where the web server writes the body.
package struct FileDescriptorBody: RequestBodySource {
    package let fd: Int32
    /// Longest wait for each read, in milliseconds (-1: no limit); the body then ends as failed.
    package let timeoutMilliseconds: Int32

    /// `timeout`: seconds each read may wait for the web server (nil: as
    /// long as it takes, for a file or a person typing).
    package init(fd: Int32, timeout seconds: Double? = nil) {
        self.fd = fd
        timeoutMilliseconds = seconds.map { Int32(min(max($0 * 1000, 1), Double(Int32.max))) } ?? -1
    }

    /// Reads until `buffer` is full or the body ends; a read that fails
    /// (other than being interrupted) or finds nothing to read for the
    /// timeout ends it as failed.
    package mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk {
        guard let base = buffer.baseAddress else { return BodyChunk(count: 0) }
        guard fd >= 0 else { return BodyChunk(count: 0, failed: true) }  // poll(2) would skip it and wait
        var total = 0
        while total < buffer.count {
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let waited = poll(&ready, 1, timeoutMilliseconds)
            if waited == 0 { return BodyChunk(count: total, failed: true) }
            if waited < 0 {
                if errno == EINTR { continue }
                return BodyChunk(count: total, failed: true)
            }
            let got = Glibc.read(fd, base + total, buffer.count - total)
            if got > 0 {
                total += got
            } else if got == 0 {
                break
            } else if errno != EINTR && errno != EAGAIN {
                return BodyChunk(count: total, failed: true)
            }
        }
        return BodyChunk(count: total)
    }
}
