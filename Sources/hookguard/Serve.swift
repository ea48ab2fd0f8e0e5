import ArgumentParser
import FastCGI
import Foundation
import HookguardCore
import Logging
import Glibc

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer FastCGI requests from nginx or Apache.",
        discussion: """
            Runs until SIGTERM or SIGINT, then finishes the requests in flight and exits 0, \
            removing its Unix socket file.
            """
    )

    @Option(help: ArgumentHelp(
        "Where to take FastCGI connections: unix:/path/to.sock or HOST:PORT.",
        valueName: "address"))
    var listen: String

    @Option(help: ArgumentHelp("Mode of the Unix socket file, in octal.", valueName: "mode"))
    var socketMode: String = "0660"

    @Option(help: ArgumentHelp("Group of the Unix socket file (the web server's group).", valueName: "group"))
    var socketGroup: String?

    @Option(help: ArgumentHelp(
        "Run as this unprivileged user once the sockets are open (start as root); the socket file is given to it.",
        valueName: "name"))
    var user: String?

    @Flag(help: "Allow --listen on a TCP address that is not loopback.")
    var allowRemote = false

    @Option(help: "Worker threads, each answering one request at a time (default: 2 × cores).")
    var workers: Int = 2 * ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp(
        "Also serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (loopback unless --allow-remote).",
        valueName: "host:port"))
    var metricsListen: String?

    @Flag(help: "Serve in this process, without a supervisor process that restarts the workers if they die.")
    var noSupervisor = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        do {
            _ = try ListenAddress(parsing: listen)
        } catch {
            throw ValidationError(error.description)
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
        if let metricsListen {
            guard case .tcp = try? ListenAddress(parsing: metricsListen) else {
                throw ValidationError("--metrics-listen \"\(metricsListen)\" is not HOST:PORT, e.g. 127.0.0.1:9464")
            }
        }
    }

    func run() throws {
        let (logger, logSink) = try logging.makeLogger()
        let exposition = bootstrapMetrics()
        let address = try ListenAddress(parsing: listen)
        let account = try user.map(ServiceAccount.init(named:))
        var options = Listener.Options(
            socketMode: UInt32(socketMode, radix: 8)!, socketGroup: socketGroup, allowRemote: allowRemote)
        options.socketOwner = account?.uid
        let listener: Listener
        let metricsListener: Listener?
        do {
            listener = try Listener.open(address, options: options)
            metricsListener = try metricsListen.map { try Listener.open(try ListenAddress(parsing: $0), options: options) }
        } catch {
            logger.critical("cannot listen", metadata: ["listen": "\(address)", "detail": "\(error)"])
            throw ExitCode.failure
        }
        defer {
            listener.close()
            metricsListener?.close()
        }
        if let account {
            do {
                try account.become()
            } catch {
                logger.critical("cannot drop privileges", metadata: ["detail": "\(error)"])
                throw ExitCode.failure
            }
        }
        logger.notice("serving", metadata: [
            "listen": "\(address)", "workers": "\(workers)",
            "user": "\(account?.name ?? getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? String(geteuid()))",
        ])

        let serve = { () -> Int32 in
            let workerStatus = WorkerStatus(total: workers)
            let handler = WebhookHandler(logger: logger, workers: workerStatus, exposition: exposition)
            let metricsEndpoint = metricsListener.map { MetricsEndpoint(listener: $0, text: handler.metricsText, logger: logger) }
            FastCGIServer(listener: listener, workers: workers).run(onHangup: { logSink.reopen() }) { exchange in
                workerStatus.working {
                    let response = handler.handle(exchange.params, body: &exchange.body)
                    exchange.respond(response)
                }
            }
            metricsEndpoint?.stop()
            return 0
        }
        if noSupervisor {
            _ = serve()
        } else {
            Supervisor.run(
                report: { event in
                    switch event {
                    case .started(let pid): logger.debug("workers started", metadata: ["pid": "\(pid)"])
                    case .died(let pid, let status):
                        logger.critical("workers died; restarting them", metadata: ["pid": "\(pid)", "detail": "\(status)"])
                    case .stopping: logger.debug("stopping workers")
                    }
                },
                onHangup: { logSink.reopen() }, child: serve)
        }
        logger.notice("stopped", metadata: ["listen": "\(address)"])
    }
}
