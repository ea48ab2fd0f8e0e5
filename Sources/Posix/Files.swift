import Glibc

/// Puts `contents` at `final` whole: written to `staged` (mode 0640), flushed,
/// closed and renamed over `final`, so a reader sees the old file or the new
/// one, never a part. On failure `staged` is removed. Flushing `final`'s
/// directory is the caller's: the spool shares it between deliveries.
/// `exclusive`: `staged` must not exist yet (its name is unique).
package func replaceWhole(_ final: String, with contents: [UInt8], stagedAt staged: String, exclusive: Bool = false)
    throws(SystemError)
{
    try stage(staged, exclusive: exclusive, flush: .durable) { fd, path throws(SystemError) in
        try writeAll(fd, contents, path: path)
    }
    do {
        try Sys.rename(staged, final)
    } catch {
        Sys.removeLeftover(staged)
        throw error
    }
}

/// Closes `fd` exactly once. Linux releases the descriptor even when close
/// fails (EINTR included), so retrying or closing it again could close a
/// descriptor another thread has just been given. EINTR is no failure here:
/// callers close after the data is flushed.
package func closeOnce(_ fd: Int32, path: String? = nil) throws(SystemError) {
    guard close(fd) != 0 else { return }
    let code = errno
    if code != EINTR { throw SystemError("close", path: path, errno: code) }
}

/// The name of a directory entry from `readdir`, read in place: the entry
/// is only as long as its name, so copying `entry.pointee` (or its `d_name`
/// tuple) can read past the end of the directory buffer.
private func entryName(_ entry: UnsafeMutablePointer<dirent>) -> String {
    let offset = MemoryLayout<dirent>.offset(of: \.d_name)!
    return String(cString: (UnsafeRawPointer(entry) + offset).assumingMemoryBound(to: CChar.self))
}

/// How `stage` makes a staged file's data safe before it is closed.
package enum StagedFlush {
    /// `fsync`: data and metadata durable, one device flush of its own.
    case durable
    /// `sync_file_range`: the data written to the device and any write error
    /// reported, no cache flush; a later flush of the filesystem makes it durable.
    case writtenOut
}

/// Creates `path` (mode 0640; `exclusive`: it must not exist yet), lets
/// `write` fill it, flushes it as `flush` says and closes it. On failure the
/// file is removed and its descriptor closed exactly once.
package func stage(
    _ path: String, exclusive: Bool, flush: StagedFlush, write: (Int32, String) throws(SystemError) -> Void
) throws(SystemError) {
    let fd = try Sys.open(path, [.writeOnly, .create, exclusive ? .exclusive : .truncate], mode: 0o640)
    do throws(SystemError) {
        do throws(SystemError) {
            try write(fd, path)
            switch flush {
            case .durable: try Sys.fsync(fd, path: path)
            case .writtenOut: try Sys.writeOutFileData(fd, path: path)
            }
        } catch {
            Sys.closeIgnoringError(fd)
            throw error
        }
        try closeOnce(fd, path: path)
    } catch {
        Sys.removeLeftover(path)
        throw error
    }
}

package func makeDirectories(_ path: String, mode: UInt32 = 0o750) throws(SystemError) {
    do throws(SystemError) {
        guard try Sys.stat(path).kind == .directory else { throw SystemError("mkdir", path: path, errno: ENOTDIR) }
        return
    } catch  where error.isNotFound {
        // Only a missing directory is made; one we may not look into is reported as such.
    }
    if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
        try makeDirectories(String(path[..<slash]), mode: mode)
    }
    do throws(SystemError) {
        try Sys.mkdir(path, mode: mode)
    } catch  where error.alreadyExists {}
}

package func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
    var offset = 0
    while offset < bytes.count {
        offset += try Sys.write(fd, bytes, from: offset, path: path)
    }
}

/// The names in a directory, without `.` and `..`.
package func listDirectory(_ path: String) throws(SystemError) -> [String] {
    guard let dir = opendir(path) else { throw SystemError("opendir", path: path, errno: errno) }
    defer { closedir(dir) }
    var names: [String] = []
    while true {
        errno = 0
        guard let entry = readdir(dir) else {
            if errno != 0 { throw SystemError("readdir", path: path, errno: errno) }
            return names
        }
        let name = entryName(entry)
        if name != "." && name != ".." { names.append(name) }
    }
}

package func absolutePath(_ path: String) -> String {
    var trimmed = path
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
    if trimmed.hasPrefix("/") { return trimmed }
    guard let cwd = getcwd(nil, 0) else { return trimmed }
    defer { free(cwd) }
    let base = String(cString: cwd)
    return trimmed == "." ? base : base + "/" + trimmed
}

package func readWholeFile(_ path: String) throws(SystemError) -> [UInt8] {
    let fd = try Sys.open(path, .readOnly)
    defer { Sys.closeIgnoringError(fd) }
    return try readAll(fd, path: path)
}

/// Everything from the start of an open file, read with `pread` so the
/// descriptor's offset (shared with a command that inherits it) stays put.
package func readAll(_ fd: Int32, path: String) throws(SystemError) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: max(Int(try Sys.fstat(fd, path: path).size), 0) + 1)
    var count = 0
    while true {
        if count == bytes.count { bytes.append(contentsOf: repeatElement(0, count: bytes.count)) }
        let n = try Sys.pread(fd, into: &bytes, from: count, path: path)
        if n == 0 { break }
        count += n
    }
    bytes.removeSubrange(count...)
    return bytes
}
