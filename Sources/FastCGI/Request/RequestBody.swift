import Posix

/// Where a request's body comes from: the FastCGI stdin stream, or the CGI
/// program's standard input.
package protocol RequestBodySource {
    /// Fills `buffer` as far as the body allows; fewer bytes than asked means
    /// the body ended, or reading failed (the client went away).
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk

    /// Whether the stream says where the body ends (FastCGI's empty stdin
    /// record), so a body longer than Content-Length can be told. A CGI
    /// program must not read past CONTENT_LENGTH (RFC 3875): its stdin may
    /// stay open.
    var marksItsEnd: Bool { get }
}

extension RequestBodySource {
    package var marksItsEnd: Bool { false }
}

/// What one read of a body gave.
package struct BodyChunk: Sendable, Equatable {
    package var count: Int
    /// The stream broke before its end: the bytes read are all there will be.
    package var failed: Bool

    package init(count: Int, failed: Bool = false) {
        self.count = count
        self.failed = failed
    }
}

/// Why a body could not be taken.
package enum BodyError: Error, Sendable, Equatable {
    case tooLarge(limit: Int)
    case incomplete(expected: Int?, received: Int)
    case overlong(expected: Int)
}

package enum RequestBody {
    /// Reads the whole body, refusing one over `limit` before reading it when
    /// `contentLength` says so, and as soon as it passes the limit otherwise.
    package static func read(
        from source: inout some RequestBodySource, contentLength: Int?, limit: Int
    ) throws(BodyError) -> [UInt8] {
        if let contentLength {
            guard contentLength <= limit else { throw .tooLarge(limit: limit) }
            var body = [UInt8](repeating: 0, count: contentLength)
            let chunk = body.withUnsafeMutableBytes { buffer in
                contentLength == 0 ? BodyChunk(count: 0) : source.read(into: buffer)
            }
            guard !chunk.failed, chunk.count == contentLength else {
                throw .incomplete(expected: contentLength, received: chunk.count)
            }
            if source.marksItsEnd {
                // More than Content-Length said: the length and the body disagree, so neither is trusted.
                var probe: UInt8 = 0
                let extra = withUnsafeMutableBytes(of: &probe) { source.read(into: $0) }
                guard extra.count == 0 else { throw .overlong(expected: contentLength) }
            }
            return body
        }
        // No length given (a CGI server that streams): read to the end, bounded.
        var body = [UInt8]()
        let chunk = 64 * 1024
        while true {
            let start = body.count
            body.append(contentsOf: repeatElement(0, count: chunk))
            let read = body.withUnsafeMutableBytes { buffer in
                source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...]))
            }
            body.removeLast(chunk - read.count)
            guard !read.failed else { throw .incomplete(expected: nil, received: body.count) }
            guard body.count <= limit else { throw .tooLarge(limit: limit) }
            if read.count < chunk { return body }
        }
    }
}
