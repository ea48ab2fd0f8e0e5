package import Posix

/// Writes a response the way a CGI program answers: the `Status:` line and
/// headers of `Response.cgiHead`, then the body, on one descriptor
/// (standard output), whole or not at all as far as the caller can tell.
package enum CGIResponseWriter {
    /// The bytes a CGI program writes for `response`.
    package static func bytes(of response: Response) -> [UInt8] {
        Array(response.cgiHead.utf8) + response.body
    }

    /// Writes every byte, retrying short writes and EINTR; throws when the
    /// web server is gone (EPIPE: SIGPIPE must be ignored) or `fd` is bad.
    package static func write(_ response: Response, to fd: Int32) throws(SystemError) {
        try writeAll(fd, bytes(of: response), path: "standard output")
    }
}
