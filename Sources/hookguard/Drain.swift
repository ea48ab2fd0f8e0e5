import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Logging
import Posix
import Receiver

struct Drain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command for every spooled delivery, at least once.",
        usage: """
            hookguard drain <spool> [<options>] -- <command> [<argument> ...]
              hookguard drain <spool> [<options>] --to-url <url>
              hookguard drain <spool> [<options>] --to-nats <url> <subject>
              hookguard drain <spool> --retry-failed [-- <command> [<argument> ...]]
            """,
        discussion: """
            Deliveries are taken oldest first. Each runs <command> with its body, byte-exact, on \
            standard input and HOOKGUARD_ID, HOOKGUARD_EVENT, HOOKGUARD_SCHEME, HOOKGUARD_DELIVERY_ID, \
            HOOKGUARD_ENVELOPE (the envelope's path) and HOOKGUARD_ATTEMPT in its environment. Exit 0 \
            removes the delivery; anything else (or --timeout) is retried after --backoff, doubled each \
            time, and after --max-attempts the delivery moves to failed/ with <id>.attempts beside it \
            saying how the last attempt ended. With --to-url, each delivery is POSTed instead (2xx \
            removes it; 408, 429, 5xx, timeouts and connection errors are retried, honouring \
            Retry-After; other 4xx move it to failed/ at once). Without --follow, drain exits once the spool holds \
            nothing left to run or wait for. A delivery drain cannot read (permissions) is left where it \
            is and logged; --follow tries it again every --rescan-interval, and drain exits 1 if it ends \
            with such deliveries left. A command must not leave processes holding its fd 3 (the \
            delivery's lock): drain logs them and keeps its own claim, so the retries keep their \
            schedule. SIGTERM or SIGINT: no new deliveries are claimed, running commands get --grace \
            to finish, then SIGTERM, SIGKILL 2s later, and drain exits 0 within --grace + 3s even if \
            one of them does not die.
            """
    )

    @Argument(help: ArgumentHelp("The spool directory: a location's HOOKGUARD_SPOOL.", valueName: "spool"))
    var spool: String

    @Argument(
        parsing: .postTerminator,
        help: ArgumentHelp(
            "The command to run for each delivery, after --, with its arguments.", valueName: "command"))
    var command: [String] = []

    @Flag(help: "Keep running and take new deliveries as they arrive, until SIGTERM or SIGINT.")
    var follow = false

    @Option(help: ArgumentHelp("Commands run at once.", valueName: "n"))
    var concurrency = 1

    @Option(help: ArgumentHelp("Attempts before a delivery moves to failed/.", valueName: "n"))
    var maxAttempts = 8

    @Option(
        help: ArgumentHelp(
            "Wait after a delivery's first failed attempt, doubled after each further one (never more than 1h).",
            valueName: "duration"))
    var backoff = CommandLineDuration(.seconds(10))

    @Option(
        help: ArgumentHelp(
            "Longest a command may run; then its process group gets SIGTERM, SIGKILL 2s later, and the attempt has failed.",
            valueName: "duration"))
    var timeout: CommandLineDuration?

    @Option(
        help: ArgumentHelp(
            "After SIGTERM or SIGINT, how long running commands may go on before they are stopped (their deliveries stay for the next run).",
            valueName: "duration"))
    var grace = CommandLineDuration(.seconds(30))

    @Option(
        help: ArgumentHelp(
            "With --follow, how often the spool is listed again besides the change notifications (deliveries that could not be read are retried then).",
            valueName: "duration"))
    var rescanInterval = CommandLineDuration(.seconds(60))

    @Flag(
        help:
            "First move every delivery in failed/ back to new/ for a fresh set of attempts; without a command, only that."
    )
    var retryFailed = false

    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp(
            "Instead of a command, publish each delivery to JetStream, as a location with HOOKGUARD_NATS_URL would have: for replaying a spool filled while NATS was down.",
            valueName: "url subject"))
    var toNats: [String] = []

    @OptionGroup(title: "JetStream (with --to-nats)") var nats: NATSOptions

    @OptionGroup(title: "HTTP (with --to-url)") var forward: ForwardOptions

    @Option(
        help: ArgumentHelp(
            "Also serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (loopback only).",
            valueName: "host:port"))
    var metricsListen: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let metricsListen, case .tcp = try? ListenAddress(parsing: metricsListen) {
        } else if let metricsListen {
            throw ValidationError("--metrics-listen \"\(metricsListen)\" is not HOST:PORT, e.g. 127.0.0.1:9465")
        }
        if forward.toUrl != nil {
            guard command.isEmpty && toNats.isEmpty else {
                throw ValidationError("give one of --to-url, --to-nats or a command after --")
            }
            try validateCommon()
            return
        }
        if !toNats.isEmpty {
            guard toNats.count == 2 else {
                throw ValidationError(
                    "--to-nats takes a URL and a subject, e.g. --to-nats nats://127.0.0.1:4222 'hooks.{scheme}.{event}'"
                )
            }
            guard command.isEmpty else {
                throw ValidationError("give either --to-nats or a command after --, not both")
            }
            _ = try nats.destination(url: toNats[0], subject: toNats[1])
            return
        }
        if command.isEmpty && !retryFailed {
            throw ValidationError(
                "Give the command to run after --, e.g. hookguard drain \(spool) -- ./handle-delivery")
        }
        if let first = command.first, resolveExecutable(first, path: ProcessInfo.processInfo.environment["PATH"]) == nil
        {
            throw ValidationError(
                "cannot run \"\(first)\": no executable file of that name\(first.contains("/") ? "" : " on PATH")")
        }
        try validateCommon()
    }

    private func validateCommon() throws {
        guard (1...1024).contains(concurrency) else {
            throw ValidationError("--concurrency must be between 1 and 1024")
        }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        if let timeout, timeout.duration <= .zero { throw ValidationError("--timeout must be more than 0") }
        if rescanInterval.duration <= .zero { throw ValidationError("--rescan-interval must be more than 0") }
    }

    func run() throws {
        let (logger, _) = try logging.makeLogger()
        let drainSpool = DrainSpool(root: spool)
        if retryFailed {
            do {
                try drainSpool.prepare()
                let moved = try drainSpool.retryFailed()
                logger.notice(
                    "moved failed deliveries back to new/",
                    metadata: [
                        "spool": "\(drainSpool.root)", "deliveries": "\(moved.count)",
                    ])
            } catch {
                logger.critical("cannot move failed deliveries back", metadata: ["detail": "\(error)"])
                throw ExitCode.failure
            }
            if command.isEmpty && toNats.isEmpty && forward.toUrl == nil { return }
        }
        let metricsListener = try metricsListen.map { try openMetricsListener($0, logger: logger) }
        defer { metricsListener?.close() }
        let metricsEndpoint = metricsListener.map {
            MetricsEndpoint(listener: $0, text: bootstrapMetrics(), logger: logger)
        }
        defer { metricsEndpoint?.stop() }
        if let forwarding = try forward.forwarding(timeout: timeout?.duration) {
            let options = DrainOptions(
                executable: "", arguments: [], concurrency: concurrency, maxAttempts: maxAttempts,
                backoff: Backoff(base: backoff.duration), grace: grace.duration, follow: follow,
                rescanInterval: rescanInterval.duration, forwarding: forwarding)
            return try drain(drainSpool, options: options, logger: logger)
        }
        // --to-nats runs this very binary's nats-publish for each delivery: the
        // claims, retries and crash safety of drain, the addressing of the live path.
        let command =
            toNats.isEmpty ? self.command : [Self.ownExecutable, "nats-publish", toNats[0], toNats[1]] + nats.arguments
        let options = DrainOptions(
            executable: resolveExecutable(command[0], path: ProcessInfo.processInfo.environment["PATH"])!,
            arguments: command, concurrency: concurrency, maxAttempts: maxAttempts,
            backoff: Backoff(base: backoff.duration), timeout: timeout?.duration, grace: grace.duration, follow: follow,
            rescanInterval: rescanInterval.duration)
        try drain(drainSpool, options: options, logger: logger)
    }

    private func drain(_ drainSpool: DrainSpool, options: DrainOptions, logger: Logger) throws {
        let summary: DrainSummary
        do {
            summary = try Drainer(spool: drainSpool, options: options, logger: logger).run()
        } catch {
            logger.critical("drain stopped", metadata: ["spool": "\(drainSpool.root)", "detail": "\(error)"])
            throw ExitCode.failure
        }
        // Deliveries left unread are an operator's to fix: say so in the exit status too.
        if summary.unreadable > 0 { throw ExitCode.failure }
    }

    /// Opened before the drainer starts its threads; the signals the drainer
    /// takes itself are blocked first, so the metrics thread never gets them.
    private func openMetricsListener(_ text: String, logger: Logger) throws -> Listener {
        try Sys.blockSignals([Signal.terminate, Signal.interrupt, Signal.child])
        return try Serve.openListener(try ListenAddress(parsing: text), options: Listener.Options(), logger: logger)
    }
}

extension Drain {
    static var ownExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// A duration as options take it: `250ms`, `1.5s`, `10m`, `1h`; a bare number is seconds.
struct CommandLineDuration: ExpressibleByArgument {
    let duration: Duration

    init(_ duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        guard let duration = Duration(parsing: argument) else { return nil }
        self.duration = duration
    }

    var defaultValueDescription: String { duration.shortDescription }
}
