import FastCGI
import Posix

/// A shared secret. It prints as `<secret>` wherever it is interpolated,
/// so it cannot reach a log line or a response by accident.
package struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    package let bytes: [UInt8]
    /// A sender's package key rather than a shared secret: Standard Webhooks'
    /// `whpk_` lines, which check `v1a` (Ed25519) signatures.
    package let isPublicKey: Bool

    package init(_ text: some StringProtocol) {
        self.bytes = Array(text.utf8)
        self.isPublicKey = false
    }

    package init(bytes: [UInt8], isPublicKey: Bool = false) {
        self.bytes = bytes
        self.isPublicKey = isPublicKey
    }

    package var description: String { "<secret>" }
    package var debugDescription: String { "<secret>" }
    package var customMirror: Mirror { Mirror(self, children: [:]) }

    /// The secrets in a secret file: one per line, surrounding white space
    /// trimmed, blank lines and `#` comments ignored.
    package static func parseFile(_ contents: [UInt8]) -> [Secret] {
        parseFileLines(contents).map(\.secret)
    }

    /// The secrets in a secret file with their line numbers (from 1), so a
    /// line that cannot be a key can be named. Looked at byte by byte: as
    /// characters, `#` and a combining mark after it are one character that
    /// is not `#`, and such a comment would become a secret.
    package static func parseFileLines(_ contents: [UInt8]) -> [(line: Int, secret: Secret)] {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x09 || byte == 0x0d }
        return contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
            .compactMap { number, line in
                guard let start = line.firstIndex(where: { !isSpace($0) }), line[start] != UInt8(ascii: "#") else {
                    return nil
                }
                let end = line.lastIndex(where: { !isSpace($0) })!
                return (number + 1, Secret(String(decoding: line[start...end], as: UTF8.self)))
            }
    }
}
