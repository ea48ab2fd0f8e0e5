import Glibc

/// The spool as `hookguard drain` sees it: the writer's `tmp/ new/ cur/`, plus
/// `failed/`, where a delivery whose every attempt failed waits for an operator.
///
/// A delivery's envelope is always in exactly one of `new/`, `cur/` and
/// `failed/` until its command succeeds; drain only ever moves it with
/// `rename`, so no crash can lose it. What drain remembers between attempts
/// lives in `<id>.attempts` beside the envelope (see `AttemptRecord`).
public struct DrainSpool: Sendable {
    public let root: String

    /// `root` is made absolute, so the paths handed to commands are too.
    public init(root: String) {
        self.root = absolutePath(root)
    }

    public var tmp: String { root + "/tmp" }
    public var new: String { root + "/new" }
    public var cur: String { root + "/cur" }
    public var failed: String { root + "/failed" }

    public func directory(_ place: Place) -> String {
        switch place {
        case .new: new
        case .cur: cur
        case .failed: failed
        }
    }

    public func envelopePath(_ entry: EntryName, in place: Place) -> String {
        directory(place) + "/" + entry.envelopeFile
    }

    public func recordPath(_ entry: EntryName, in place: Place) -> String {
        directory(place) + "/" + entry.recordFile
    }

    /// Creates `tmp/ new/ cur/ failed/` (mode 0750) where missing, so a drain
    /// can start before the first delivery arrives.
    public func prepare() throws(SystemError) {
        try Spool(root: root).prepare()
        try makeDirectories(failed)
    }

    /// The envelopes in one directory, oldest first (ids sort by arrival).
    public func entries(in place: Place) throws(SystemError) -> [EntryName] {
        try listDirectory(directory(place)).compactMap(EntryName.init(envelopeFile:)).sorted()
    }
}

/// Where an envelope sits: waiting, claimed (or waiting for a retry), or given up on.
public enum Place: String, Sendable, CaseIterable {
    case new, cur, failed
}

/// A spool entry, named by its envelope file `<id>.json`; its attempt record
/// is `<id>.attempts` beside it. Any `*.json` that is not hidden counts, as in
/// the README's readers, though hookguard itself only writes `<id>.json`.
public struct EntryName: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let stem: String

    public var envelopeFile: String { stem + ".json" }
    public var recordFile: String { stem + ".attempts" }
    public var description: String { stem }

    public init?(envelopeFile name: String) {
        guard let stem = Self.stem(of: name, suffix: ".json") else { return nil }
        self.stem = stem
    }

    public init?(recordFile name: String) {
        guard let stem = Self.stem(of: name, suffix: ".attempts") else { return nil }
        self.stem = stem
    }

    public init(id: DeliveryID) {
        stem = id.text
    }

    private static func stem(of name: String, suffix: String) -> String? {
        guard name.hasSuffix(suffix), !name.hasPrefix("."), !name.contains("/") else { return nil }
        let stem = String(name.dropLast(suffix.count))
        return stem.isEmpty ? nil : stem
    }

    public static func < (a: EntryName, b: EntryName) -> Bool { a.stem < b.stem }

    /// When the delivery arrived, read from its UUIDv7 id (nil for other names).
    public var arrivalMilliseconds: UInt64? {
        guard DeliveryID(parsing: stem) != nil else { return nil }
        let hex = stem.filter { $0 != "-" }.prefix(12)
        return UInt64(hex, radix: 16)
    }
}

/// The names in a directory, without `.` and `..`.
func listDirectory(_ path: String) throws(SystemError) -> [String] {
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

func absolutePath(_ path: String) -> String {
    var trimmed = path
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
    if trimmed.hasPrefix("/") { return trimmed }
    guard let cwd = getcwd(nil, 0) else { return trimmed }
    defer { free(cwd) }
    let base = String(cString: cwd)
    return trimmed == "." ? base : base + "/" + trimmed
}

/// Whether something exists at `path` (not following a final symlink).
func exists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// Renames, and tells whether anything was there to rename.
@discardableResult
func renameIfPresent(_ from: String, _ to: String) throws(SystemError) -> Bool {
    if rename(from, to) == 0 { return true }
    if errno == ENOENT { return false }
    throw SystemError("rename", path: from, errno: errno)
}

/// Unlinks, and tells whether anything was there to remove.
@discardableResult
func unlinkIfPresent(_ path: String) throws(SystemError) -> Bool {
    if unlink(path) == 0 { return true }
    if errno == ENOENT { return false }
    throw SystemError("unlink", path: path, errno: errno)
}
