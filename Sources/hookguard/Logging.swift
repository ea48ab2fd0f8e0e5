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
        var line = LogLine(json: format == .json)
        line.field("time", Timestamp.now().rfc3339)
        line.field("level", event.level.rawValue)
        line.field("msg", event.message.description)
        let merged = metadata.isEmpty ? event.metadata ?? [:] : metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) { line.field(key, value.description) }
        sink.write(line.finished())
    }
}

/// One log line's bytes, built in place: a field at a time, escaped as it is
/// appended. Each line used to be a dozen intermediate strings: 9 % of
/// hookguard's CPU samples in `bench/run`'s socket row, 6 % now.
struct LogLine {
    private let json: Bool
    private var bytes: [UInt8] = []
    private var empty = true

    init(json: Bool) {
        self.json = json
        bytes.reserveCapacity(512)
        if json { bytes.append(UInt8(ascii: "{")) }
    }

    /// logfmt: `key=value`, the value bare when it can be, else quoted as a
    /// JSON string. JSON: `"key":"value"`.
    mutating func field(_ key: String, _ value: String) {
        if !empty { bytes.append(json ? UInt8(ascii: ",") : UInt8(ascii: " ")) }
        empty = false
        if json {
            appendQuoted(key)
            bytes.append(UInt8(ascii: ":"))
            appendQuoted(value)
        } else {
            bytes.append(contentsOf: key.utf8)
            bytes.append(UInt8(ascii: "="))
            if Self.needsQuotes(value) { appendQuoted(value) } else { bytes.append(contentsOf: value.utf8) }
        }
    }

    mutating func finished() -> [UInt8] {
        if json { bytes.append(UInt8(ascii: "}")) }
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    private static func needsQuotes(_ value: String) -> Bool {
        value.isEmpty
            || value.utf8.contains {
                $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\"")
                    || $0 == UInt8(ascii: "\\") || $0 < 0x20 || $0 == 0x7f
            }
    }

    /// `value` as a JSON string; UTF-8 beyond ASCII passes through.
    private mutating func appendQuoted(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20, 0x7f:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0f)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
