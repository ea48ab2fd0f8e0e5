package import Logging
import Posix

/// The options `hookguard serve` takes as arguments, read from the
/// environment instead when hookguard is started without arguments (by
/// mod_fcgid's `FcgidInitialEnv`, a systemd unit's `Environment=`, or
/// Apache's `SetEnv` for CGI).
package struct EnvironmentOptions: Sendable, Equatable {
    package static let workersVariable = "HOOKGUARD_WORKERS"
    package static let logLevelVariable = "HOOKGUARD_LOG_LEVEL"
    package static let workerRange = 1...1024

    package static let secondsRange = 0.001...86400.0

    package var workers: Int
    package var logLevel: Logger.Level
    /// Seconds, as `serve`'s `--read-timeout`, `--idle-timeout` and
    /// `--grace` (from `HOOKGUARD_READ_TIMEOUT`, `HOOKGUARD_IDLE_TIMEOUT`,
    /// `HOOKGUARD_GRACE`); nil when unset, for the server's default.
    package var readTimeout: Double?
    package var idleTimeout: Double?
    package var grace: Double?

    /// `defaultWorkers` applies when `HOOKGUARD_WORKERS` is unset or empty,
    /// `info` when `HOOKGUARD_LOG_LEVEL` is.
    package init(environment: [String: String], defaultWorkers: Int) throws(LaunchError) {
        workers = defaultWorkers
        if let text = environment[Self.workersVariable], !text.isEmpty {
            guard let value = Int(text), Self.workerRange.contains(value) else {
                throw .invalidOption(
                    variable: Self.workersVariable, value: text,
                    expected:
                        "a number of threads from \(Self.workerRange.lowerBound) to \(Self.workerRange.upperBound)")
            }
            workers = value
        }
        logLevel = .info
        if let text = environment[Self.logLevelVariable], !text.isEmpty {
            guard let value = Logger.Level(rawValue: text.lowercased()) else {
                let levels = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidOption(variable: Self.logLevelVariable, value: text, expected: "one of \(levels)")
            }
            logLevel = value
        }
        let seconds: [(variable: String, option: WritableKeyPath<EnvironmentOptions, Double?>)] = [
            ("HOOKGUARD_READ_TIMEOUT", \.readTimeout), ("HOOKGUARD_IDLE_TIMEOUT", \.idleTimeout),
            ("HOOKGUARD_GRACE", \.grace),
        ]
        for (variable, option) in seconds {
            guard let text = environment[variable], !text.isEmpty else { continue }
            guard let value = Double(text), Self.secondsRange.contains(value) else {
                throw .invalidOption(
                    variable: variable, value: text,
                    expected:
                        "a number of seconds from \(Self.secondsRange.lowerBound) to \(Int(Self.secondsRange.upperBound))"
                )
            }
            self[keyPath: option] = value
        }
    }
}
