import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

struct Sign: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the header lines a genuine sender would add to a body.",
        discussion: """
            Prints one `Name: value` line per header: the delivery id (for schemes that have one; \
            a fresh UUID unless --id is given), the timestamp (now unless --timestamp is given), \
            then the signature. With a secret file, its first secret signs. To send them with curl:

              hookguard sign --scheme slack --secret-file slack.secret body.json > headers.txt
              curl -H @headers.txt --data-binary @body.json http://127.0.0.1/hooks/slack

            (`curl -H @<(hookguard sign …)` works too). Never `curl $(hookguard sign …)`: the \
            values hold spaces.
            """
    )

    @OptionGroup var options: SchemeOptions

    @Option(help: ArgumentHelp("Unix time to sign (default: now).", valueName: "seconds"))
    var timestamp: Int?

    @Option(
        help: ArgumentHelp(
            "Public-key schemes (discord, sendgrid, custom ed25519/ecdsa-p256; standard-webhooks v1a): the sender's private key, PEM.",
            valueName: "file"))
    var privateKeyFile: String?

    @Option(help: ArgumentHelp("The sender's delivery id (default: a fresh UUID).", valueName: "id"))
    var id: String?

    @Argument(help: ArgumentHelp("The exact body to sign (default: standard input).", valueName: "file"))
    var file: String?

    func validate() throws {
        if let timestamp, timestamp < 0 { throw ValidationError("--timestamp must be Unix seconds") }
        if let id, id.isEmpty || id.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw ValidationError("--id must be one line of text")
        }
    }

    func run() throws {
        let scheme = try options.resolvedScheme()
        let now = Timestamp.now()
        let deliveryID = scheme.idHeader == nil ? nil : (id ?? DeliveryID.next(milliseconds: now.milliseconds).text)
        let url = try options.signedURL(for: scheme)
        let lines: [(name: String, value: String)]
        if scheme.publicKey != nil || (scheme.asymmetricPrefix != nil && privateKeyFile != nil) {
            guard let privateKeyFile else {
                throw ValidationError(
                    "--private-key-file: \(scheme.name) is signed with the sender's private key (a readable PEM file)")
            }
            let pem: [UInt8]
            do { pem = try readWholeFile(privateKeyFile) } catch {
                throw CommandFailure("--private-key-file: \(error)")
            }
            do {
                lines = try SignatureSigner.headers(
                    scheme, privateKeyPEM: pem, body: readBody(file), timestamp: timestamp ?? now.seconds,
                    id: deliveryID, url: url)
            } catch let error as Scheme.KeyError {
                throw ValidationError("--private-key-file: \(error.problem)")
            }
        } else {
            guard let secret = try options.secrets().first else { throw ValidationError("no secret given") }
            do {
                lines = try SignatureSigner.headers(
                    scheme, secret: secret, body: readBody(file), timestamp: timestamp ?? now.seconds, id: deliveryID,
                    url: url)
            } catch let error as Scheme.KeyError {
                throw ValidationError("\(options.secretFile != nil ? "--secret-file" : "--secret"): \(error.problem)")
            }
        }
        print(lines.map { "\($0.name): \($0.value)" }.joined(separator: "\n"))
    }
}
