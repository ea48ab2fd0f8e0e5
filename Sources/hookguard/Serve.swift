import ArgumentParser
import FastCGI
import FoundationEssentials
import HookguardCore
import Logging

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

    @Flag(help: "Allow --listen on a TCP address that is not loopback.")
    var allowRemote = false

    @Option(help: "Worker threads, each answering one request at a time (default: 16, or 2 × cores if more).")
    var workers: Int = Serve.defaultWorkers

    /// A durable delivery spends most of its time waiting for the disk, not
    /// the CPU: 16 workers keep 16 flushes in flight, which the disk merges and
    /// the spool's group commit shares (bench/run: 4 → 16 workers doubled the
    /// durable rate on 2 cores). Bigger machines keep 2 per core.
    static let defaultWorkers = max(16, 2 * ProcessInfo.processInfo.activeProcessorCount)

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
    }

    func run() throws {
        let logger = logging.makeLogger()
        let address = try ListenAddress(parsing: listen)
        let listener: Listener
        do {
            listener = try Listener.open(address, options: .init(
                socketMode: UInt32(socketMode, radix: 8)!, socketGroup: socketGroup, allowRemote: allowRemote))
        } catch {
            logger.critical("cannot listen", metadata: ["listen": "\(address)", "detail": "\(error)"])
            throw ExitCode.failure
        }
        let handler = WebhookHandler(logger: logger)
        logger.notice("serving", metadata: ["listen": "\(address)", "workers": "\(workers)"])
        FastCGIServer(listener: listener, workers: workers).run { exchange in
            let response = handler.handle(exchange.params, body: &exchange.body)
            exchange.respond(response)
        }
        logger.notice("stopped", metadata: ["listen": "\(address)"])
    }
}
