import ArgumentParser
import FastCGI
import Foundation
import HookguardCore
import Logging

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer FastCGI requests from nginx or Apache.",
        discussion: """
            Without --listen, serves on the listening socket it was started with: \
            systemd's (LISTEN_FDS, on fd 3) or one on standard input (spawn-fcgi, \
            mod_fcgid, StandardInput=socket). Runs until SIGTERM, SIGINT or SIGUSR1, \
            then finishes the requests in flight and exits 0, removing a Unix socket \
            file it created (never one it was given).
            """
    )

    static let defaultWorkers = 2 * ProcessInfo.processInfo.activeProcessorCount

    @Option(help: ArgumentHelp(
        "Where to take FastCGI connections: unix:/path/to.sock or HOST:PORT (default: the socket hookguard was started with).",
        valueName: "address"))
    var listen: String?

    @Option(help: ArgumentHelp("Mode of the Unix socket file, in octal.", valueName: "mode"))
    var socketMode: String = "0660"

    @Option(help: ArgumentHelp("Group of the Unix socket file (the web server's group).", valueName: "group"))
    var socketGroup: String?

    @Flag(help: "Allow --listen (or an inherited socket) on a TCP address that is not loopback.")
    var allowRemote = false

    @Option(help: "Worker threads, each answering one request at a time (default: 2 × cores).")
    var workers: Int = Serve.defaultWorkers

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
                throw ValidationError("""
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
    }

    func run() throws {
        let logger = logging.makeLogger()
        let address: ListenAddress
        if let listen {
            address = try ListenAddress(parsing: listen)
        } else {
            address = .inherited(fd: try Self.inheritedSocket()!)
        }
        let listener = try Self.openListener(address, options: .init(
            socketMode: UInt32(socketMode, radix: 8)!, socketGroup: socketGroup, allowRemote: allowRemote),
            logger: logger)
        Self.serve(on: listener, workers: workers, logger: logger)
    }

    /// The descriptor of the listening socket hookguard was started with, if any.
    static func inheritedSocket() throws -> Int32? {
        do {
            return try LaunchMode.detect(
                environment: ProcessInfo.processInfo.environment, processID: getpid(),
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

    /// Answers FastCGI requests on `listener` until told to stop.
    static func serve(on listener: Listener, workers: Int, logger: Logger) {
        let handler = WebhookHandler(logger: logger)
        logger.notice("serving", metadata: ["listen": "\(listener)", "workers": "\(workers)"])
        FastCGIServer(listener: listener, workers: workers).run { exchange in
            let response = handler.handle(exchange.params, body: &exchange.body)
            exchange.respond(response)
        }
        logger.notice("stopped", metadata: ["listen": "\(listener)"])
    }
}
