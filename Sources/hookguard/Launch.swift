import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Logging
import Posix
import Receiver

/// `hookguard` without arguments, as Apache's mod_fcgid and mod_cgid, spawn-fcgi
/// and systemd start it: it serves the socket it was given, answers the one
/// CGI request in its environment, or (typed at a terminal) prints its help.
extension Hookguard {
    mutating func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let mode: LaunchMode
        let options: EnvironmentOptions
        do {
            mode = try LaunchMode.detect(
                environment: environment, processID: Sys.processID,
                standardInputIsListeningSocket: { Listener.standardInputIsListeningSocket })
            if mode == .interactive { throw CleanExit.helpRequest(self) }
            options = try EnvironmentOptions(environment: environment, defaultWorkers: Serve.defaultWorkers)
        } catch let error as LaunchError {
            try LoggingOptions.makeLogger(level: .info).0.critical("cannot start", metadata: ["detail": "\(error)"])
            throw ExitCode.failure
        }
        let (logger, logSink) = try LoggingOptions.makeLogger(level: options.logLevel)

        if let fd = mode.inheritedDescriptor {
            // No arguments, so no --allow-remote: an inherited TCP socket must be loopback.
            let listener = try Serve.openListener(.inherited(fd: fd), options: .init(), logger: logger)
            let status = Serve.serve(
                on: listener, workers: options.workers, timeouts: options.timeouts, logger: logger, logSink: logSink)
            listener.close()
            // Abandoned workers may still be running: end here, not through exit()'s handlers.
            if status != 0 { Sys.exitNow(status) }
        } else {
            try answerCGIRequest(environment: environment, timeouts: options.timeouts, logger: logger)
        }
    }

    /// One request: its parameters are the environment, its body standard
    /// input; the answer goes to standard output. Exits 0 once the answer is
    /// written, whatever it says.
    /// The body's reads wait at most `timeouts.read` each; SIGTERM or SIGINT
    /// leave the request `timeouts.grace` seconds to finish, then end the
    /// process with status 1.
    private func answerCGIRequest(environment: [String: String], timeouts: FastCGIServer.Timeouts, logger: Logger)
        throws
    {
        // A web server that stops reading must give EPIPE, not kill the answer's log line.
        Sys.ignoreSignal(Signal.brokenPipe)
        try Self.endAfterGraceOnTerm(grace: timeouts.grace, logger: logger)
        var body = FileDescriptorBody(fd: Sys.standardInput, timeout: timeouts.read)
        let response = WebhookHandler(logger: logger, connections: .request).handle(
            RequestParams(environment), body: &body)
        do {
            try CGIResponseWriter.write(response, to: Sys.standardOutput)
        } catch {
            logger.error("answer not written", metadata: ["status": "\(response.status)", "detail": "\(error)"])
            throw ExitCode.failure
        }
    }

    /// Blocks SIGTERM and SIGINT for every thread (before any other starts)
    /// and waits for them on the signal thread: the request then has `grace`
    /// seconds left before the process ends, unanswered.
    private static func endAfterGraceOnTerm(grace: Double, logger: Logger) throws {
        try SignalWaiter.start([Signal.terminate, Signal.interrupt]) { received in
            logger.notice(
                "stopping: the request has the grace period left",
                metadata: [
                    "signal": "\(received)", "grace": "\(grace)",
                ])
            Sys.sleep(seconds: grace)
            logger.warning("grace period over; stopping with the request unanswered", metadata: ["grace": "\(grace)"])
            Sys.exitNow(1)
        }
    }
}

extension EnvironmentOptions {
    /// The server's timeouts, with its defaults for what the environment leaves unset.
    var timeouts: FastCGIServer.Timeouts {
        let defaults = FastCGIServer.Timeouts.defaults
        return .init(
            read: readTimeout ?? defaults.read, idle: idleTimeout ?? defaults.idle, grace: grace ?? defaults.grace)
    }
}
