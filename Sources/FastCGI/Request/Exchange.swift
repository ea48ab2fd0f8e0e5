import CFastCGI
import Glibc
import Posix

/// One FastCGI request: its parameters copied into Swift values (libfcgi
/// frees its own at the next accept), its body stream, and the response.
package struct FastCGIExchange {
    package let params: RequestParams
    package var body: FastCGIBody
    private let request: UnsafeMutablePointer<FCGX_Request>

    init(_ request: UnsafeMutablePointer<FCGX_Request>) {
        self.request = request
        self.params = Self.copyParams(request.pointee.envp)
        self.body = FastCGIBody(stream: request.pointee.in)
    }

    private static func copyParams(_ envp: FCGX_ParamArray?) -> RequestParams {
        var params = RequestParams()
        guard let envp else { return params }
        var count = 0
        var bytes = 0
        while let entry = envp[count] {
            bytes += strlen(entry)
            count += 1
        }
        params.reserve(records: count, bytes: bytes)
        for index in 0..<count {
            let entry = envp[index]!
            params.appendRecord(
                UnsafeBufferPointer(
                    start: UnsafeRawPointer(entry).assumingMemoryBound(to: UInt8.self), count: strlen(entry)))
        }
        return params
    }

    /// Writes the whole response; false when the web server has gone away.
    @discardableResult
    package func respond(_ response: Response) -> Bool {
        let out = request.pointee.out
        var head = Array(response.cgiHead.utf8)
        head.append(contentsOf: response.body)
        let written = head.withUnsafeBytes { bytes in
            FCGX_PutStr(bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count), out)
        }
        return written == Int32(head.count) && FCGX_FFlush(out) == 0
    }
}

/// The FastCGI stdin stream of one request.
package struct FastCGIBody: RequestBodySource {
    let stream: UnsafeMutablePointer<FCGX_Stream>?

    /// The web server ends stdin with an empty record.
    package var marksItsEnd: Bool { true }

    package mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk {
        guard let stream, let base = buffer.baseAddress else { return BodyChunk(count: 0) }
        var total = 0
        while total < buffer.count {
            let want = Int32(min(buffer.count - total, Int(Int32.max)))
            let got = FCGX_GetStr((base + total).assumingMemoryBound(to: CChar.self), want, stream)
            if got <= 0 { break }
            total += Int(got)
        }
        return BodyChunk(count: total, failed: FCGX_GetError(stream) != 0)
    }
}
