import ArgumentParser
import FastCGI
import FoundationEssentials
import Glibc
import HookguardCore
import Logging

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
                environment: environment, processID: getpid(),
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
            defer { listener.close() }
            Serve.serve(on: listener, workers: options.workers, logger: logger, logSink: logSink)
        } else {
            try answerCGIRequest(environment: environment, logger: logger)
        }
    }

    /// One request: its parameters are the environment, its body standard
    /// input; the answer goes to standard output. Exits 0 once the answer is
    /// written, whatever it says.
    private func answerCGIRequest(environment: [String: String], logger: Logger) throws {
        // A web server that stops reading must give EPIPE, not kill the answer's log line.
        signal(SIGPIPE, SIG_IGN)
        var body = FileDescriptorBody(fd: STDIN_FILENO)
        let response = WebhookHandler(logger: logger, connections: .request).handle(RequestParams(environment), body: &body)
        do {
            try CGIResponseWriter.write(response, to: STDOUT_FILENO)
        } catch {
            logger.error("answer not written", metadata: ["status": "\(response.status)", "detail": "\(error)"])
            throw ExitCode.failure
        }
    }
}
