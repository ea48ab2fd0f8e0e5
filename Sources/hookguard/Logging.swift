public import ArgumentParser
public import Logging

struct LoggingOptions: ParsableArguments {
    @Option(help: "Least severe log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    /// Log lines go to standard error, one per request.
    func makeLogger() -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .trace
            return handler
        }
        var logger = Logger(label: "hookguard")
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
