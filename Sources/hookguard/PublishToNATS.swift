import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

/// The options that name a JetStream destination, shared by `drain --to-nats`
/// and `nats-publish`.
struct NATSOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A NATS .creds file (JWT and NKey seed).", valueName: "file"))
    var natsCreds: String?

    @Option(help: ArgumentHelp("A file holding a NATS authentication token.", valueName: "file"))
    var natsTokenFile: String?

    @Option(help: ArgumentHelp("How long to wait for JetStream's acknowledgement, in milliseconds.", valueName: "ms"))
    var natsTimeoutMs = NATSDestination.defaultTimeoutMilliseconds

    /// Validated the way a location's HOOKGUARD_NATS_* parameters are.
    func destination(url: String, subject: String) throws -> NATSDestination {
        do {
            return try NATSDestination(
                url: url, subjectTemplate: subject, credentialsFile: natsCreds, tokenFile: natsTokenFile,
                timeoutMilliseconds: natsTimeoutMs)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The same options again, as arguments for a `nats-publish` child.
    var arguments: [String] {
        var arguments = ["--nats-timeout-ms", String(natsTimeoutMs)]
        if let natsCreds { arguments += ["--nats-creds", natsCreds] }
        if let natsTokenFile { arguments += ["--nats-token-file", natsTokenFile] }
        return arguments
    }
}

/// Publishes one spooled envelope to JetStream, exactly as the live path
/// would have: the command `drain --to-nats` runs for each delivery.
struct PublishToNATS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nats-publish",
        abstract: "Publish one spooled envelope to JetStream (what drain --to-nats runs).",
        shouldDisplay: false
    )

    @Argument(help: ArgumentHelp("nats://HOST:PORT", valueName: "url"))
    var url: String

    @Argument(help: ArgumentHelp("Subject template, e.g. hooks.{scheme}.{event}", valueName: "subject"))
    var subject: String

    @Argument(help: ArgumentHelp("The envelope file (default: $HOOKGUARD_ENVELOPE).", valueName: "envelope"))
    var envelope: String?

    @OptionGroup var nats: NATSOptions

    func run() throws {
        let destination = try nats.destination(url: url, subject: subject)
        guard let path = envelope ?? ProcessInfo.processInfo.environment["HOOKGUARD_ENVELOPE"] else {
            throw ValidationError("name the envelope file, or run under hookguard drain")
        }
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(path)
        } catch {
            throw CommandFailure("cannot read the envelope: \(error)")
        }
        let stored = try StoredEnvelope(decoding: bytes)
        let message = JetStreamMessage(
            id: stored.id, scheme: stored.scheme, event: stored.event, deliveryID: stored.deliveryID,
            destination: destination)
        do {
            let ack = try JetStreamPublisher(lifetime: .request).publish(bytes, as: message, to: destination)
            print(
                "\(stored.id) stream \(ack.stream) sequence \(ack.sequence)\(ack.duplicate ? " (already there)" : "")")
        } catch {
            try? writeAll(Sys.standardError, Array("hookguard nats-publish: \(error)\n".utf8), path: "standard error")
            throw ExitCode.failure
        }
    }
}
