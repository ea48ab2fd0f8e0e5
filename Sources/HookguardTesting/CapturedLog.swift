import InMemoryLogging
package import Logging

/// Keeps every log line, to check what the code says and never says: swift-log's
/// in-memory handler, each entry read back as one line
/// `level message key=value…` (keys sorted).
package struct CapturedLog: Sendable {
    private let handler = InMemoryLogHandler()

    package init() {}

    package func logger(label: String = "test") -> Logger {
        let handler = self.handler
        var logger = Logger(label: label) { _ in handler }
        logger.logLevel = .trace
        return logger
    }

    package var lines: [String] {
        handler.entries.map { entry in
            let fields = entry.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            return "\(entry.level) \(entry.message) " + fields.joined(separator: " ")
        }
    }

    package var text: String { lines.joined(separator: "\n") }

    package func clear() { handler.clear() }
}
