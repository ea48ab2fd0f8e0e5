public import ArgumentParser
import Glibc
public import Logging
import Synchronization

struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// Log lines go to standard error, one per request.
    func makeLogger() -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label)
            handler.logLevel = .trace
            return handler
        }
        var logger = Logger(label: "hookguard")
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// swift-log's `StreamLogHandler` line, `2026-11-22T16:32:24+0000 info
/// hookguard: key=value … [Module] message`, made for a line per request: the
/// timestamp is formatted once a second, the line is built as bytes, and each
/// line is one `write(2)` to standard error (whole lines, no stdio lock or
/// flush). StreamLogHandler and its string building took a fifth of the
/// instructions of a refused request in the profile.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { $1 } }
        if let explicit = event.metadata {
            if fields.isEmpty { fields = explicit } else { fields.merge(explicit) { $1 } }
        }
        if let error = event.error { fields["error.message"] = "\(error)" }

        var line = [UInt8]()
        line.reserveCapacity(320)
        LineLogHandler.timestamp { line.append(contentsOf: $0) }
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: event.level.rawValue.utf8)
        if !label.isEmpty {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: label.utf8)
        }
        line.append(UInt8(ascii: ":"))
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: key.utf8)
            line.append(UInt8(ascii: "="))
            if case .string(let text) = value {
                line.append(contentsOf: text.utf8)
            } else {
                line.append(contentsOf: value.description.utf8)
            }
        }
        line.append(contentsOf: " [".utf8)
        line.append(contentsOf: event.source.utf8)
        line.append(contentsOf: "] ".utf8)
        line.append(contentsOf: event.message.description.utf8)
        line.append(UInt8(ascii: "\n"))
        writeWhole(line)
    }

    private func writeWhole(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }  // standard error is gone: nowhere to say so
                offset += written
            }
        }
    }

    /// The second last formatted, and its text (local time, as StreamLogHandler).
    private static let lastSecond = Mutex<(second: time_t, text: [UInt8])>((0, []))

    private static func timestamp(_ use: ([UInt8]) -> Void) {
        var now = time(nil)
        if let cached = lastSecond.withLock({ $0.second == now ? $0.text : nil }) { return use(cached) }
        var parts = tm()
        localtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        let text = buffer[..<length].map { UInt8(bitPattern: $0) }
        lastSecond.withLock { $0 = (now, text) }
        use(text)
    }
}
