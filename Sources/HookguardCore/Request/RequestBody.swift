/// Where a request's body comes from: the FastCGI stdin stream, or the CGI
/// program's standard input.
public protocol RequestBodySource {
    /// Fills `buffer` as far as the body allows; fewer bytes than asked means
    /// the body ended. Returns nil when reading failed (the client went away).
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> Int?
}

/// Why a body could not be taken.
public enum BodyError: Error, Sendable, Equatable {
    case tooLarge(limit: Int)
    case incomplete(expected: Int?, received: Int)
}

public enum RequestBody {
    /// Reads the whole body, refusing one over `limit` before reading it when
    /// `contentLength` says so, and as soon as it passes the limit otherwise.
    public static func read(
        from source: inout some RequestBodySource, contentLength: Int?, limit: Int
    ) throws(BodyError) -> [UInt8] {
        if let contentLength {
            guard contentLength <= limit else { throw .tooLarge(limit: limit) }
            var body = [UInt8](repeating: 0, count: contentLength)
            let received = body.withUnsafeMutableBytes { buffer in
                contentLength == 0 ? 0 : source.read(into: buffer)
            }
            guard let received, received == contentLength else {
                throw .incomplete(expected: contentLength, received: received ?? 0)
            }
            return body
        }
        // No length given (a CGI server that streams): read to the end, bounded.
        var body = [UInt8]()
        let chunk = 64 * 1024
        while true {
            let start = body.count
            body.append(contentsOf: repeatElement(0, count: chunk))
            let received = body.withUnsafeMutableBytes { buffer in
                source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[start...]))
            }
            guard let received else { throw .incomplete(expected: nil, received: start) }
            body.removeLast(chunk - received)
            guard body.count <= limit else { throw .tooLarge(limit: limit) }
            if received < chunk { return body }
        }
    }
}
