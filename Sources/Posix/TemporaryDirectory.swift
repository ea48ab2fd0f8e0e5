import Glibc

/// A fresh directory (mode 0700) under $TMPDIR, or /tmp, named
/// `prefix.XXXXXX` by `mkdtemp`.
package func makeTemporaryDirectory(prefix: String) throws(SystemError) -> String {
    let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw SystemError("mkdtemp", path: base, errno: errno) }
    return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
