import Glibc

/// A request body read straight from a descriptor with read(2): a CGI
/// program's standard input, where the web server writes the body.
public struct FileDescriptorBody: RequestBodySource {
    public let fd: Int32

    public init(fd: Int32) {
        self.fd = fd
    }

    /// Reads until `buffer` is full or the body ends; a read that fails
    /// (other than being interrupted) ends it as failed.
    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk {
        guard let base = buffer.baseAddress else { return BodyChunk(count: 0) }
        var total = 0
        while total < buffer.count {
            let got = Glibc.read(fd, base + total, buffer.count - total)
            if got > 0 {
                total += got
            } else if got == 0 {
                break
            } else if errno != EINTR {
                return BodyChunk(count: total, failed: true)
            }
        }
        return BodyChunk(count: total)
    }
}
