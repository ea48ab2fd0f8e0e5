import Glibc

/// A failed system call, named with the call and the path it worked on,
/// so the log line says what went wrong where.
package struct SystemError: Error, Sendable, CustomStringConvertible {
    package let call: String
    package let path: String?
    package let errno: Int32

    package init(_ call: String, path: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    /// The C library's words for `errno`, e.g. "No such file or directory".
    package var reason: String { String(cString: strerror(errno)) }

    package var description: String {
        if let path { return "\(call)(\(path)): \(reason)" }
        return "\(call): \(reason)"
    }
}

/// Runs a system call, retrying it on EINTR, and throws a `SystemError`
/// naming the call when it fails.
@discardableResult
package func syscall<T: BinaryInteger>(
    _ call: String, path: String? = nil, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(call, path: path, errno: code)
    }
}
