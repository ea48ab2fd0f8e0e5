public import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
public import Logging
import Posix
import Receiver

enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    case logfmt, json
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log line format: logfmt or json.")
    var logFormat: LogFormat = .logfmt

    @Option(
        help: ArgumentHelp(
            "Append log lines to this file instead of standard error; SIGHUP reopens it (for logrotate).",
            valueName: "path"))
    var logFile: String?

    /// Sets up swift-log once for the process and returns the logger and its sink.
    func makeLogger() throws -> (Logger, LogSink) {
        try Self.makeLogger(level: logLevel, format: logFormat, file: logFile)
    }

    /// Also for a start without arguments, where the level comes from the environment.
    static func makeLogger(level: Logger.Level, format: LogFormat = .logfmt, file: String? = nil) throws -> (
        Logger, LogSink
    ) {
        let sink = try LogSink(path: file)
        LoggingSystem.bootstrap { label in LineLogHandler(format: format, sink: sink) }
        var logger = Logger(label: "hookguard")
        logger.logLevel = level
        return (logger, sink)
    }
}

// swift-format-ignore: AvoidRetroactiveConformances
// --log-level takes swift-log's level names; neither package declares this itself.
extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Where log lines go: standard error, or a file reopened on SIGHUP. Each
/// line is one write(2), so lines from many workers never interleave.
final class LogSink: Sendable {
    private let path: String?
    private let fd: Locked<Int32>

    init(path: String?) throws {
        self.path = path
        fd = Locked(path == nil ? Sys.standardError : try LogSink.open(path!))
    }

    private static func open(_ path: String) throws -> Int32 {
        do {
            return try Sys.openForAppending(path, mode: 0o640)
        } catch {
            throw CommandFailure("cannot open --log-file \(path): \(error.reason)")
        }
    }

    /// After logrotate moved the file away: write to a new one at the same path.
    func reopen() {
        guard let path, let fresh = try? LogSink.open(path) else { return }
        let old = fd.withLock { current in
            defer { current = fresh }
            return current
        }
        Sys.closeIgnoringError(old)
    }

    func write(_ line: [UInt8]) {
        fd.withLock { fd in try? writeAll(fd, line, path: "log") }
    }
}

/// One line per event: logfmt (`time=… level=… msg=… key=value`) or a JSON object.
struct LineLogHandler: LogHandler {
    let format: LogFormat
    let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var fields: [(String, String)] = [
            ("time", Timestamp.now().rfc3339), ("level", event.level.rawValue), ("msg", event.message.description),
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        fields += merged.sorted { $0.key < $1.key }.map { ($0.key, $0.value.description) }
        var line: String
        switch format {
        case .logfmt:
            line = fields.map { "\($0.0)=\(LineLogHandler.logfmtValue($0.1))" }.joined(separator: " ")
        case .json:
            line =
                "{"
                + fields.map { "\(LineLogHandler.jsonString($0.0)):\(LineLogHandler.jsonString($0.1))" }
                .joined(separator: ",") + "}"
        }
        line += "\n"
        sink.write(Array(line.utf8))
    }

    /// Bare when it can be, else quoted with `"` and `\` escaped.
    static func logfmtValue(_ value: String) -> String {
        let needsQuotes =
            value.isEmpty
            || value.unicodeScalars.contains {
                $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f
            }
        return needsQuotes ? jsonString(value) : value
    }

    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
