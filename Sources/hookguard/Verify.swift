import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a captured delivery offline, and say why it fails.",
        discussion: """
            Give the delivery's headers with --header (repeat it) and its exact body as FILE \
            (or standard input). Checks exactly what the server checks, with every secret \
            of the file. Exit status 0: genuine; 1: refused, with the reason, or a file could not be read; 64: bad usage.
            """
    )

    @OptionGroup var options: SchemeOptions

    @Option(
        name: .customLong("header"),
        help: ArgumentHelp("A request header as captured, e.g. 'X-Slack-Signature: v0=…'.", valueName: "line"))
    var headers: [String] = []

    @Option(
        help: ArgumentHelp(
            "Seconds a signed timestamp may be from now (default: the scheme's, as HOOKGUARD_TOLERANCE).",
            valueName: "seconds"))
    var tolerance: Int?

    @Option(help: ArgumentHelp("Unix time to check against (default: now).", valueName: "seconds"))
    var now: Int?

    @Argument(help: ArgumentHelp("The exact body (default: standard input).", valueName: "file"))
    var file: String?

    func validate() throws {
        if let tolerance, tolerance < 0 { throw ValidationError("--tolerance must be a number of seconds") }
        for line in headers where !line.contains(":") {
            throw ValidationError("--header \"\(line)\" is not 'Name: value'")
        }
    }

    func run() throws {
        let scheme = try options.resolvedScheme()
        let keys: [Secret]
        do {
            let located = try options.keys(for: scheme)
            for unusable in located.unusable { print("skipped: --secret-file \(unusable)") }
            keys = located.keys
        } catch let error as ConfigError {
            print("refused (secret-unusable): \(options.flagMessage(error))")
            throw ExitCode.failure
        }
        var params = RequestParams()
        for line in headers {
            let colon = line.firstIndex(of: ":")!
            let name = String(line[..<colon].trimmingASCIIWhitespace())
            params[HeaderName(name).parameter] = String(line[line.index(after: colon)...].trimmingASCIIWhitespace())
        }
        let body = try readBody(file)
        let checkedAt = now ?? Timestamp.now().seconds
        let tolerance = self.tolerance ?? scheme.tolerance
        let url = try options.signedURL(for: scheme)

        func check(_ body: [UInt8]) throws(VerificationError) {
            try SignatureVerifier.verify(
                scheme, keys: keys, params: params, body: body, now: checkedAt, tolerance: tolerance, url: url)
        }
        do {
            try check(body)
        } catch {
            switch error {
            case .refused(let failure):
                print("refused (\(failure.reasonCode)): \(failure)")
                for hint in hints(failure, scheme: scheme, body: body, tolerance: tolerance, check: check) {
                    print("  \(hint)")
                }
            case .crypto(let failure):
                print("not checked (crypto-error): \(failure)")
            }
            throw ExitCode.failure
        }
        var facts = ["genuine: the signature in \(scheme.signatureHeader.display) matches"]
        if let idHeader = scheme.idHeader, let id = params[idHeader] { facts.append("delivery id \(id)") }
        print(facts.joined(separator: "; "))
    }

    /// What an operator would check next, from what else the delivery tells.
    private func hints(
        _ failure: SignatureFailure, scheme: Scheme, body: [UInt8], tolerance: Int,
        check: ([UInt8]) throws(VerificationError) -> Void
    ) -> [String] {
        switch failure {
        case .missing:
            let given = headers.map { String($0[..<$0.firstIndex(of: ":")!]) }
            return ["headers given: " + (given.isEmpty ? "none" : given.joined(separator: ", "))]
        case .mismatch where scheme.encoding == .token:
            return ["the token is none of the secrets given"]
        case .mismatch:
            if body.last == UInt8(ascii: "\n"), (try? check(Array(body.dropLast()))) != nil {
                return ["it matches the body without its final newline: the capture added one"]
            }
            return ["a wrong secret, or a body that is not byte for byte the one signed"]
        case .stale, .future:
            return [
                "the signature itself matches: the delivery is genuine but outside --tolerance \(tolerance) s"
                    + " (a replay, or a clock that is off)"
            ]
        case .malformed:
            return []
        }
    }
}
