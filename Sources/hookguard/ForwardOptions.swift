import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

/// `drain --to-url` and the options that shape its requests.
struct ForwardOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Instead of a command, POST each delivery's body, byte-exact, with its sender's headers to this http:// or https:// URL (or unix:/path/to.sock:/uri); --timeout is then each request's (default 30s).",
            valueName: "url"))
    var toUrl: String?

    @Option(
        name: .customLong("header"),
        help: ArgumentHelp("Add this header to every request (repeatable).", valueName: "name:value"))
    var headers: [String] = []

    @Option(
        name: .customLong("header-file"),
        help: ArgumentHelp(
            "Add a header whose value is the file's content, its final newline removed: for tokens (repeatable).",
            valueName: "name:file"))
    var headerFiles: [String] = []

    @Option(
        name: .customLong("drop-header"),
        help: ArgumentHelp("Do not forward this sender header (repeatable).", valueName: "name"))
    var dropHeaders: [String] = []

    @Option(
        name: .customLong("keep-header"),
        help: ArgumentHelp(
            "Forward only the sender headers named so (repeatable); without it, all but hop-by-hop ones.",
            valueName: "name"))
    var keepHeaders: [String] = []

    @Flag(
        help:
            "Retry deliveries the service answers with 4xx (but 408 and 429, always retried) instead of moving them to failed/ at once."
    )
    var retryClientErrors = false

    @Option(
        help: ArgumentHelp(
            "Sign each request over the forwarded body with this scheme (e.g. standard-webhooks), with --secret-file.",
            valueName: "scheme"))
    var sign: String?

    @Option(help: ArgumentHelp("With --sign: the file holding the signing secret (its first line).", valueName: "file"))
    var secretFile: String?

    @Option(
        help: ArgumentHelp(
            "Trust the certificates in this PEM file instead of the system's, for https.", valueName: "file"))
    var caFile: String?

    @Option(
        help: ArgumentHelp(
            "Failures in a row (timeouts, connection errors, 408, 429, 5xx) that open the circuit: no requests for a while.",
            valueName: "n"))
    var circuitFailures = 5

    @Option(
        help: ArgumentHelp(
            "How long an open circuit pauses before one probe; doubled after each failed probe (at most 5m).",
            valueName: "duration"))
    var circuitPause = CommandLineDuration(.seconds(5))

    static let defaultTimeout = Duration.seconds(30)

    func validate() throws {
        guard let toUrl else {
            let given =
                !headers.isEmpty || !headerFiles.isEmpty || !dropHeaders.isEmpty || !keepHeaders.isEmpty
                || retryClientErrors || sign != nil || secretFile != nil || caFile != nil
            if given { throw ValidationError("--header, --sign, --ca-file and the like go with --to-url") }
            return
        }
        do {
            _ = try HTTPEndpoint(parsing: toUrl)
        } catch {
            throw ValidationError("--to-url: \(error)")
        }
        guard circuitFailures >= 1 else { throw ValidationError("--circuit-failures must be at least 1") }
        guard circuitPause.duration > .zero else { throw ValidationError("--circuit-pause must be more than 0") }
        if let caFile {
            do { _ = try readWholeFile(caFile) } catch { throw CommandFailure("--ca-file: \(error)") }
        }
        if (sign == nil) != (secretFile == nil) { throw ValidationError("--sign and --secret-file go together") }
        _ = try extraHeaders()
        _ = try signing()
    }

    /// The request settings; nil without --to-url.
    func forwarding(timeout: Duration?) throws -> HTTPForwarding? {
        guard let toUrl else { return nil }
        let timeout = timeout ?? Self.defaultTimeout
        return HTTPForwarding(
            endpoint: try HTTPEndpoint(parsing: toUrl),
            connection: HTTPConnection.Options(
                timeout: timeout, connectTimeout: min(timeout, .seconds(10)), caFile: caFile),
            headers: ForwardedHeaders(
                keep: keepHeaders.isEmpty ? nil : Set(keepHeaders), drop: Set(dropHeaders),
                extra: try extraHeaders()),
            signing: try signing(), retryClientErrors: retryClientErrors,
            breaker: URLCircuitBreaker.Settings(failures: circuitFailures, pause: circuitPause.duration))
    }

    private func extraHeaders() throws -> [(name: String, value: String)] {
        func split(_ text: String, _ flag: String) throws -> (String, String) {
            guard let colon = text.firstIndex(of: ":") else {
                throw ValidationError("\(flag) \"\(text)\": give NAME:VALUE")
            }
            return (String(text[..<colon]), String(text[text.index(after: colon)...]).trimmingSpaces)
        }
        var result: [(name: String, value: String)] = []
        for text in headers {
            let (name, value) = try split(text, "--header")
            guard ForwardedHeaders.isValid(name: name, value: value) else {
                throw ValidationError("--header \"\(name)\": not a valid header")
            }
            result.append((name, value))
        }
        for text in headerFiles {
            let (name, path) = try split(text, "--header-file")
            let data: [UInt8]
            do { data = try readWholeFile(path) } catch { throw CommandFailure("--header-file: \(error)") }
            var value = String(decoding: data, as: UTF8.self)
            while value.hasSuffix("\n") || value.hasSuffix("\r") { value.removeLast() }
            // The value may be a token: never repeat it in a message.
            guard ForwardedHeaders.isValid(name: name, value: value) else {
                throw ValidationError(
                    "--header-file \(name): the name or the file's content cannot be a header (one line of text)")
            }
            result.append((name, value))
        }
        return result
    }

    private func signing() throws -> (scheme: Scheme, secret: Secret)? {
        guard let sign, let secretFile else { return nil }
        let scheme: Scheme
        let secrets: [Secret]
        do {
            scheme = try LocationConfig.scheme(RequestParams([Parameter.scheme.rawValue: sign]))
        } catch {
            throw ValidationError("--sign: \(error.problem)")
        }
        do {
            secrets = try SecretFileCache().secrets(at: secretFile)
        } catch {
            throw ValidationError("--secret-file: \(error.problem)")
        }
        guard let secret = secrets.first else { throw ValidationError("--secret-file \(secretFile) holds no secret") }
        do {
            _ = try SignatureSigner.headers(scheme, secret: secret, body: [], timestamp: 0, id: "check")
        } catch {
            throw ValidationError("--secret-file: \(error.problem)")
        }
        return (scheme, secret)
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var slice = Substring(self)
        while slice.first == " " || slice.first == "\t" { slice.removeFirst() }
        while slice.last == " " || slice.last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
