import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

/// The scheme and secret `sign` and `verify` work with: the same names and
/// checks as a location's HOOKGUARD_* parameters, given as flags.
struct SchemeOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The sender's scheme, as HOOKGUARD_SCHEME names it.", valueName: "scheme"))
    var scheme: String

    @Option(help: ArgumentHelp("A secret file, as HOOKGUARD_SECRET_FILE.", valueName: "file"))
    var secretFile: String?

    @Option(help: ArgumentHelp("The secret itself, as HOOKGUARD_SECRET.", valueName: "secret"))
    var secret: String?

    @Option(help: ArgumentHelp("custom: the signature's header (HOOKGUARD_SIGNATURE_HEADER).", valueName: "name"))
    var signatureHeader: String?

    @Option(help: ArgumentHelp("custom: sha1, sha256, sha384 or sha512 (HOOKGUARD_ALGORITHM).", valueName: "name"))
    var algorithm: String?

    @Option(help: ArgumentHelp("custom: hex, base64 or token (HOOKGUARD_ENCODING).", valueName: "name"))
    var encoding: String?

    @Option(help: ArgumentHelp("custom: text before the MAC (HOOKGUARD_PREFIX).", valueName: "text"))
    var prefix: String?

    @Option(help: ArgumentHelp("custom: the delivery id's header (HOOKGUARD_ID_HEADER).", valueName: "name"))
    var idHeader: String?

    @Option(
        help: ArgumentHelp(
            "custom: the signed bytes, e.g. 'v0:{timestamp}:{body}' (HOOKGUARD_MESSAGE).", valueName: "template"))
    var message: String?

    @Option(help: ArgumentHelp("custom: the timestamp's own header (HOOKGUARD_TIMESTAMP_HEADER).", valueName: "name"))
    var timestampHeader: String?

    @Option(
        help: ArgumentHelp(
            "custom: the timestamp's entry in the signature list, e.g. t= (HOOKGUARD_TIMESTAMP_FIELD).",
            valueName: "text"))
    var timestampField: String?

    @Option(
        help: ArgumentHelp("custom: seconds, milliseconds or rfc3339 (HOOKGUARD_TIMESTAMP_FORMAT).", valueName: "name"))
    var timestampFormat: String?

    @Option(
        help: ArgumentHelp("custom: the character between signature entries (HOOKGUARD_SEPARATOR).", valueName: "char"))
    var separator: String?

    @Option(help: ArgumentHelp("custom: as-given or whsec-base64 (HOOKGUARD_KEY_FORM).", valueName: "name"))
    var keyForm: String?

    @Option(help: ArgumentHelp("custom: the event's header (HOOKGUARD_EVENT_HEADER).", valueName: "name"))
    var eventHeader: String?

    @Option(
        help: ArgumentHelp(
            "URL-bound schemes (twilio, square, hubspot): the public URL the sender signs (HOOKGUARD_URL).",
            valueName: "url"))
    var url: String?

    /// `--url`, checked as HOOKGUARD_URL is, for the schemes that sign it.
    func signedURL(for scheme: Scheme) throws -> String {
        do {
            return try LocationConfig.publicURL(url, scheme: scheme) ?? ""
        } catch {
            throw ValidationError("--url: \(error.problem)")
        }
    }

    /// Public-key schemes are signed with `--private-key-file` instead.
    func requireSecret() throws {
        guard secretFile != nil || secret != nil else {
            throw ValidationError("give the secret with --secret-file FILE or --secret TEXT")
        }
    }

    /// The location parameters these flags stand for.
    var params: RequestParams {
        var values = [Parameter.scheme.rawValue: scheme]
        let optional: [(Parameter, String?)] = [
            (.signatureHeader, signatureHeader), (.algorithm, algorithm), (.encoding, encoding),
            (.prefix, prefix), (.idHeader, idHeader), (.message, message), (.timestampHeader, timestampHeader),
            (.timestampField, timestampField), (.timestampFormat, timestampFormat), (.separator, separator),
            (.keyForm, keyForm), (.eventHeader, eventHeader),
        ]
        for (parameter, value) in optional { if let value { values[parameter.rawValue] = value } }
        return RequestParams(values)
    }

    func resolvedScheme() throws -> Scheme {
        do {
            return try LocationConfig.scheme(params)
        } catch {
            throw ValidationError(flagMessage(error))
        }
    }

    /// The secrets, as the server would read them: the file's lines, then the literal one.
    func secrets() throws -> [Secret] {
        try requireSecret()
        var secrets: [Secret] = []
        if let secretFile {
            do {
                secrets += try SecretFileCache().secrets(at: secretFile)
            } catch {
                throw ValidationError(flagMessage(error))
            }
        }
        if let secret { secrets.append(Secret(secret)) }
        return secrets
    }

    /// The keys the secrets stand for under `scheme`, as the server finds
    /// them: a secret file's unusable lines are skipped and listed.
    func keys(for scheme: Scheme) throws -> LocationKeys {
        try requireSecret()
        let file: (path: String, lines: [(line: Int, secret: Secret)])?
        do {
            file = try secretFile.map { path throws(ConfigError) in
                (path, try SecretFileCache().numberedSecrets(at: path))
            }
        } catch {
            throw ValidationError(flagMessage(error))
        }
        return try LocationKeys(scheme, literal: secret.map { Secret($0) }, file: file)
    }

    /// A configuration error in the words of the command line.
    func flagMessage(_ error: ConfigError) -> String {
        let flags: [Parameter: String] = [
            .scheme: "--scheme", .secretFile: "--secret-file", .secret: "--secret",
            .signatureHeader: "--signature-header", .algorithm: "--algorithm", .encoding: "--encoding",
            .prefix: "--prefix", .idHeader: "--id-header", .message: "--message",
            .timestampHeader: "--timestamp-header", .timestampField: "--timestamp-field",
            .timestampFormat: "--timestamp-format", .separator: "--separator", .keyForm: "--key-form",
            .eventHeader: "--event-header",
        ]
        return "\(flags[error.parameter] ?? error.parameter.rawValue): \(error.problem)"
    }
}

/// The body to sign or verify: a file, or standard input.
func readBody(_ path: String?) throws -> [UInt8] {
    if let path, path != "-" {
        do {
            return try readWholeFile(path)
        } catch {
            throw CommandFailure("cannot read the body: \(error)")
        }
    }
    var input = FileDescriptorBody(fd: Sys.standardInput)
    do {
        return try RequestBody.read(from: &input, contentLength: nil, limit: 1 << 30)
    } catch {
        throw CommandFailure("cannot read the body from standard input (\(error))")
    }
}
