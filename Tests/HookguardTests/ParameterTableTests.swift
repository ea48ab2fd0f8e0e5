import Foundation
import Testing

@testable import Receiver

/// docs/configuration.md's one parameter table names exactly the parameters
/// hookguard reads (`Parameter`), one row each.
@Suite struct ParameterTableTests {
    @Test func configurationPageTableIsTheParameterList() throws {
        let rows = try DocsPage("docs/configuration.md").tableRows(
            under: "Parameters (per location)", header: "| parameter |")
        // Each row's first cell: one parameter name in backticks.
        let names = rows.map { row in
            row.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: true).first
                .map { $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "`")) }
                ?? ""
        }
        let documented = Set(names)
        let known = Set(Parameter.allCases.map(\.rawValue))
        let repeated = Dictionary(grouping: names, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(
            documented == known && repeated.isEmpty,
            """
            docs/configuration.md's ## Parameters (per location) table differs from the code's parameters:
            rows to add: \(Self.list(known.subtracting(documented)))
            rows to remove (not a parameter, or not one name alone in the first cell): \(Self.list(documented.subtracting(known)))
            rows named twice: \(Self.list(repeated))
            """)
    }

    static func list(_ names: some Sequence<String>) -> String {
        let sorted = names.sorted()
        return sorted.isEmpty ? "none" : sorted.joined(separator: ", ")
    }
}
