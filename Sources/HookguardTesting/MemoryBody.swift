package import FastCGI

/// A request body held in memory, as a web server streams it; optionally a
/// client that goes away after some bytes.
package struct MemoryBody: RequestBodySource {
    package var bytes: [UInt8]
    package var offset = 0
    /// The client goes away after this many bytes.
    package var failAfter: Int?

    /// As FastCGI's stdin: the body's end is known, so a body longer than
    /// CONTENT_LENGTH is refused rather than cut to it.
    package var marksItsEnd: Bool { true }

    package init(_ bytes: [UInt8], failAfter: Int? = nil) {
        self.bytes = bytes
        self.failAfter = failAfter
    }

    package mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk {
        let end = min(bytes.count, failAfter ?? bytes.count)
        let n = max(0, min(buffer.count, end - offset))
        if n > 0 {
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: n)
            }
        }
        offset += n
        return BodyChunk(count: n, failed: failAfter != nil && n < buffer.count)
    }
}
