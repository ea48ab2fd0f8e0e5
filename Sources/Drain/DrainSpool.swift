import FastCGI
package import Posix
package import Receiver

/// The spool as `hookguard drain` sees it: the writer's `tmp/ new/ cur/`, plus
/// `failed/`, where a delivery whose every attempt failed waits for an operator.
///
/// A delivery's envelope is always in exactly one of `new/`, `cur/` and
/// `failed/` until its command succeeds; drain only ever moves it with
/// `rename`, so no crash can lose it. What drain remembers between attempts
/// lives in `<id>.attempts` beside the envelope (see `AttemptRecord`).
package struct DrainSpool: Sendable {
    package let root: String

    /// `root` is made absolute, so the paths handed to commands are too.
    package init(root: String) {
        self.root = absolutePath(root)
    }

    package var tmp: String { root + "/tmp" }
    package var new: String { root + "/new" }
    package var cur: String { root + "/cur" }
    package var failed: String { root + "/failed" }

    package func directory(_ place: Place) -> String {
        switch place {
        case .new: new
        case .cur: cur
        case .failed: failed
        }
    }

    package func envelopePath(_ entry: EntryName, in place: Place) -> String {
        directory(place) + "/" + entry.envelopeFile
    }

    package func recordPath(_ entry: EntryName, in place: Place) -> String {
        directory(place) + "/" + entry.recordFile
    }

    /// Creates `tmp/ new/ cur/ failed/` (mode 0750) where missing, so a drain
    /// can start before the first delivery arrives.
    package func prepare() throws(SystemError) {
        try Spool(root: root).prepare()
        try makeDirectories(failed)
    }

    /// The envelopes in one directory, oldest first (ids sort by arrival).
    package func entries(in place: Place) throws(SystemError) -> [EntryName] {
        try listDirectory(directory(place)).compactMap(EntryName.init(envelopeFile:)).sorted()
    }
}

/// Where an envelope sits: waiting, claimed (or waiting for a retry), or given up on.
package enum Place: String, Sendable, CaseIterable {
    case new, cur, failed
}

/// A spool entry, named by its envelope file `<id>.json`; its attempt record
/// is `<id>.attempts` beside it. Any `*.json` that is not hidden counts, as in
/// the README's readers, though hookguard itself only writes `<id>.json`.
package struct EntryName: Hashable, Comparable, Sendable, CustomStringConvertible {
    package let stem: String

    package var envelopeFile: String { stem + ".json" }
    package var recordFile: String { stem + ".attempts" }
    package var description: String { stem }

    package init?(envelopeFile name: String) {
        guard let stem = Self.stem(of: name, suffix: ".json") else { return nil }
        self.stem = stem
    }

    package init?(recordFile name: String) {
        guard let stem = Self.stem(of: name, suffix: ".attempts") else { return nil }
        self.stem = stem
    }

    package init(id: DeliveryID) {
        stem = id.text
    }

    private static func stem(of name: String, suffix: String) -> String? {
        guard name.hasSuffix(suffix), !name.hasPrefix("."), !name.contains("/") else { return nil }
        let stem = String(name.dropLast(suffix.count))
        return stem.isEmpty ? nil : stem
    }

    package static func < (a: EntryName, b: EntryName) -> Bool { a.stem < b.stem }

    /// When the delivery arrived, read from its UUIDv7 id (nil for other names).
    package var arrivalMilliseconds: UInt64? {
        guard DeliveryID(parsing: stem) != nil else { return nil }
        let hex = stem.filter { $0 != "-" }.prefix(12)
        return UInt64(hex, radix: 16)
    }
}

/// Whether something exists at `path` (not following a final symlink).
func exists(_ path: String) -> Bool {
    (try? Sys.lstat(path)) != nil
}
