import Foundation
import Testing

/// A page of the repository's documentation, read where the tests are built
/// from, for the tests that hold a table in it equal to the code.
struct DocsPage {
    let path: String
    let text: String

    /// `path` from the repository's root, such as `docs/schemes.md`.
    init(_ path: String) throws {
        self.path = path
        text = try String(contentsOfFile: Self.repository + "/" + path, encoding: .utf8)
    }

    /// The rows (after the header and the rule) of the table under `## heading`
    /// whose header row starts with `header`, such as `| scheme |`.
    func tableRows(under heading: String, header: String) throws -> [String] {
        let section =
            try #require(
                text.components(separatedBy: "\n## \(heading)\n").dropFirst().first,
                "\(path) has no ## \(heading)"
            )
            .components(separatedBy: "\n## ").first ?? ""
        let lines = section.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(
            lines.firstIndex { $0.hasPrefix(header) }, "\(path): no table \(header) under ## \(heading)")
        return Array(lines[(start + 2)...].prefix { $0.hasPrefix("|") })
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
}
