import Glibc

/// A failed system call, named with the call and the path it worked on,
/// so the log line says what went wrong where.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let path: String?
    public let errno: Int32

    public init(_ call: String, path: String? = nil, errno: Int32) {
        self.call = call
        self.path = path
        self.errno = errno
    }

    /// The C library's words for `errno`, e.g. "No such file or directory".
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        if let path { return "\(call)(\(path)): \(reason)" }
        return "\(call): \(reason)"
    }
}

/// Runs a system call, retrying it on EINTR, and throws a `SystemError`
/// naming the call when it fails.
@discardableResult
public func syscall<T: BinaryInteger>(
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

/// Puts `contents` at `final` whole: written to `staged` (mode 0640), flushed,
/// closed and renamed over `final`, so a reader sees the old file or the new
/// one, never a part. On failure `staged` is removed. Flushing `final`'s
/// directory is the caller's: the spool shares it between deliveries.
/// `exclusive`: `staged` must not exist yet (its name is unique).
func replaceWhole(_ final: String, with contents: [UInt8], stagedAt staged: String, exclusive: Bool = false) throws(SystemError) {
    try stage(staged, exclusive: exclusive, flush: .durable) { fd, path throws(SystemError) in
        try writeAll(fd, contents, path: path)
    }
    do {
        try syscall("rename", path: final) { rename(staged, final) }
    } catch {
        unlink(staged)
        throw error
    }
}

/// Closes `fd` exactly once. Linux releases the descriptor even when close
/// fails (EINTR included), so retrying or closing it again could close a
/// descriptor another thread has just been given. EINTR is no failure here:
/// callers close after the data is flushed.
func closeOnce(_ fd: Int32, path: String? = nil) throws(SystemError) {
    guard close(fd) != 0 else { return }
    let code = errno
    if code != EINTR { throw SystemError("close", path: path, errno: code) }
}

/// The name of a directory entry from `readdir`, read in place: the entry
/// is only as long as its name, so copying `entry.pointee` (or its `d_name`
/// tuple) can read past the end of the directory buffer.
func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    let offset = MemoryLayout<dirent>.offset(of: \.d_name)!
    return String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}
