import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Logging
import Posix
import Receiver

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer FastCGI requests from nginx or Apache.",
        discussion: """
            Without --listen, serves on the listening socket it was started with: \
            systemd's (LISTEN_FDS, on fd 3) or one on standard input (spawn-fcgi, \
            mod_fcgid, StandardInput=socket). Runs until SIGTERM, SIGINT or SIGUSR1, \
            then stops accepting, lets the requests in flight finish for --grace seconds \
            and exits 0 (1 if the grace period ran out first), removing a Unix socket \
            file it created (never one it was given).
            """
    )

    @Option(
        help: ArgumentHelp(
            "Where to take FastCGI connections: unix:/path/to.sock or HOST:PORT (default: the socket hookguard was started with).",
            valueName: "address"))
    var listen: String?

    @Option(help: ArgumentHelp("Mode of the Unix socket file, in octal.", valueName: "mode"))
    var socketMode: String = "0660"

    @Option(help: ArgumentHelp("Group of the Unix socket file (the web server's group).", valueName: "group"))
    var socketGroup: String?

    @Option(
        help: ArgumentHelp(
            "Run as this unprivileged user once the sockets are open (start as root); the socket file is given to it.",
            valueName: "name"))
    var user: String?

    @Flag(help: "Allow --listen (or an inherited socket) on a TCP address that is not loopback.")
    var allowRemote = false

    @Option(help: "Worker threads, each answering one request at a time (default: 16, or 2 × cores if more).")
    var workers: Int = Serve.defaultWorkers

    /// A durable delivery spends most of its time waiting for the disk, not
    /// the CPU: 16 workers keep 16 flushes in flight, which the disk merges and
    /// the spool's group commit shares (bench/run: 4 → 16 workers doubled the
    /// durable rate on 2 cores). Bigger machines keep 2 per core.
    static let defaultWorkers = max(16, 2 * ProcessInfo.processInfo.activeProcessorCount)

    @Option(
        help: ArgumentHelp(
            "Longest wait, in seconds, for a new connection's first record, for each read of a request's parameters or body, and for each write of its answer; the connection is then closed.",
            valueName: "seconds"))
    var readTimeout: Double = FastCGIServer.Timeouts.defaults.read

    @Option(
        help: ArgumentHelp(
            "Longest wait, in seconds, for the next request on a connection the web server keeps open (fastcgi_keep_conn); it is then closed.",
            valueName: "seconds"))
    var idleTimeout: Double = FastCGIServer.Timeouts.defaults.idle

    @Option(
        help: ArgumentHelp(
            "After SIGTERM, seconds the requests in flight have to finish before hookguard exits anyway (status 1).",
            valueName: "seconds"))
    var grace: Double = FastCGIServer.Timeouts.defaults.grace

    var timeouts: FastCGIServer.Timeouts { .init(read: readTimeout, idle: idleTimeout, grace: grace) }

    @Option(
        help: ArgumentHelp(
            "Also serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (loopback unless --allow-remote).",
            valueName: "host:port"))
    var metricsListen: String?

    @Flag(help: "Serve in this process, without a supervisor process that restarts the workers if they die.")
    var noSupervisor = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if let listen {
            do {
                _ = try ListenAddress(parsing: listen)
            } catch {
                throw ValidationError(error.description)
            }
        } else {
            guard try Self.inheritedSocket() != nil else {
                throw ValidationError(
                    """
                    no --listen, and hookguard was not started with a listening socket \
                    (on fd 0 as spawn-fcgi or mod_fcgid pass it, or from systemd with LISTEN_FDS)
                    """)
            }
        }
        guard let mode = UInt32(socketMode, radix: 8), mode <= 0o777 else {
            throw ValidationError("--socket-mode \"\(socketMode)\" is not an octal mode such as 0660")
        }
        guard mode & 0o600 == 0o600 || mode & 0o060 == 0o060 else {
            throw ValidationError("--socket-mode \(socketMode) lets neither owner nor group connect")
        }
        guard (1...1024).contains(workers) else {
            throw ValidationError("--workers must be between 1 and 1024")
        }
        for (name, value) in [("--read-timeout", readTimeout), ("--idle-timeout", idleTimeout)] {
            guard value >= 0.001, value <= 86400 else {
                throw ValidationError("\(name) must be between 0.001 and 86400 seconds")
            }
        }
        guard grace >= 0, grace <= 86400 else { throw ValidationError("--grace must be between 0 and 86400 seconds") }
        if let metricsListen {
            guard case .tcp = try? ListenAddress(parsing: metricsListen) else {
                throw ValidationError("--metrics-listen \"\(metricsListen)\" is not HOST:PORT, e.g. 127.0.0.1:9464")
            }
        }
    }

    func run() throws {
        let (logger, logSink) = try logging.makeLogger()
        let address: ListenAddress
        if let listen {
            address = try ListenAddress(parsing: listen)
        } else {
            address = .inherited(fd: try Self.inheritedSocket()!)
        }
        let account = try user.map(ServiceAccount.init(named:))
        var options = Listener.Options(
            socketMode: UInt32(socketMode, radix: 8)!, socketGroup: socketGroup, allowRemote: allowRemote)
        options.socketOwner = account?.uid
        let listener = try Self.openListener(address, options: options, logger: logger)
        defer { listener.close() }
        let metricsListener = try metricsListen.map {
            try Self.openListener(try ListenAddress(parsing: $0), options: options, logger: logger)
        }
        defer { metricsListener?.close() }
        if let account {
            do {
                try account.become()
            } catch {
                logger.critical("cannot drop privileges", metadata: ["detail": "\(error)"])
                throw ExitCode.failure
            }
        }
        let status = Self.serve(
            on: listener, metricsListener: metricsListener, workers: workers, timeouts: timeouts, logger: logger,
            logSink: logSink, supervised: !noSupervisor)
        if status != 0 {
            // Abandoned workers may still be running: end here, not through exit()'s handlers.
            listener.close()
            metricsListener?.close()
            Sys.exitNow(status)
        }
    }

    /// The descriptor of the listening socket hookguard was started with, if any.
    static func inheritedSocket() throws -> Int32? {
        do {
            return try LaunchMode.detect(
                environment: ProcessInfo.processInfo.environment, processID: Sys.processID,
                standardInputIsListeningSocket: { Listener.standardInputIsListeningSocket }
            ).inheritedDescriptor
        } catch {
            throw ValidationError(error.description)
        }
    }

    static func openListener(_ address: ListenAddress, options: Listener.Options, logger: Logger) throws -> Listener {
        do {
            return try Listener.open(address, options: options)
        } catch {
            logger.critical("cannot listen", metadata: ["listen": "\(address)", "detail": "\(error)"])
            throw ExitCode.failure
        }
    }

    /// Answers FastCGI requests on `listener` until told to stop: in a child
    /// process that `Supervisor` restarts should it die, unless `supervised`
    /// is false. Returns the exit status: 0 when every request in flight
    /// finished, 1 when the grace period ran out first.
    static func serve(
        on listener: Listener, metricsListener: Listener? = nil, workers: Int,
        timeouts: FastCGIServer.Timeouts = .defaults, logger: Logger, logSink: LogSink, supervised: Bool = true
    ) -> Int32 {
        let exposition = bootstrapMetrics()
        logger.notice(
            "serving",
            metadata: [
                "listen": "\(listener)", "workers": "\(workers)",
                "read_timeout": "\(timeouts.read)", "idle_timeout": "\(timeouts.idle)", "grace": "\(timeouts.grace)",
                "user": "\(Sys.accountName(of: Sys.effectiveUserID) ?? String(Sys.effectiveUserID))",
            ])
        let serveHere = { () -> Int32 in
            LargeBuffers.unmapWhenFreed()
            let workerStatus = WorkerStatus(total: workers)
            let handler = WebhookHandler(logger: logger, workers: workerStatus, exposition: exposition)
            let metricsEndpoint = metricsListener.map {
                MetricsEndpoint(listener: $0, text: handler.metricsText, logger: logger)
            }
            let server = FastCGIServer(listener: listener, workers: workers, timeouts: timeouts) { event in
                switch event {
                case .acceptFailed(let error, let count):
                    logger.error("cannot accept connections", metadata: ["detail": "\(error)", "count": "\(count)"])
                case .graceExpired(let inFlight):
                    logger.warning(
                        "grace period over; stopping with requests unanswered",
                        metadata: [
                            "grace": "\(timeouts.grace)", "in_flight": "\(inFlight)",
                        ])
                }
            }
            let stop: FastCGIServer.Stop
            do {
                stop = try server.run(onHangup: { logSink.reopen() }) { exchange in
                    workerStatus.working {
                        let response = handler.handle(exchange.params, body: &exchange.body)
                        exchange.respond(response)
                    }
                }
            } catch {
                logger.critical("cannot serve", metadata: ["detail": "\(error)"])
                return 1
            }
            // Abandoned workers still run: the metrics endpoint goes with the process.
            guard stop == .finished else { return 1 }
            metricsEndpoint?.stop()
            return 0
        }
        let status: Int32
        if supervised {
            status = Supervisor.run(
                grace: timeouts.grace,
                report: { event in
                    switch event {
                    case .started(let pid): logger.debug("workers started", metadata: ["pid": "\(pid)"])
                    case .died(let pid, let status):
                        logger.critical(
                            "workers died; restarting them", metadata: ["pid": "\(pid)", "detail": "\(status)"])
                    case .forkFailed(let error, let retryIn):
                        logger.critical(
                            "cannot start workers; retrying",
                            metadata: ["detail": "\(error)", "retry_in": "\(retryIn)s"])
                    case .stopping: logger.debug("stopping workers")
                    case .killed(let pid):
                        logger.error("workers outlived the grace period; killed", metadata: ["pid": "\(pid)"])
                    }
                },
                onHangup: { logSink.reopen() }, child: serveHere)
        } else {
            status = serveHere()
        }
        logger.notice("stopped", metadata: ["listen": "\(listener)", "status": "\(status)"])
        return status
    }
}
