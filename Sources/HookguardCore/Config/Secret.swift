/// A shared secret. It prints as `<secret>` wherever it is interpolated,
/// so it cannot reach a log line or a response by accident.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let bytes: [UInt8]

    public init(_ text: some StringProtocol) {
        self.bytes = Array(text.utf8)
    }

    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var description: String { "<secret>" }
    public var debugDescription: String { "<secret>" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }

    /// The secrets in a secret file: one per line, surrounding white space
    /// trimmed, blank lines and `#` comments ignored.
    public static func parseFile(_ contents: [UInt8]) -> [Secret] {
        contents.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).compactMap { line in
            let text = String(decoding: line, as: UTF8.self).trimmingASCIIWhitespace()
            if text.isEmpty || text.hasPrefix("#") { return nil }
            return Secret(text)
        }
    }
}
