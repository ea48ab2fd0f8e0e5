package import FastCGI
import FoundationEssentials
import Posix

/// The per-location parameters hookguard reads from every request
/// (`fastcgi_param` in nginx, `SetEnv` in Apache, the environment in CGI).
package enum Parameter: String, Sendable, CaseIterable {
    case scheme = "HOOKGUARD_SCHEME"
    case secretFile = "HOOKGUARD_SECRET_FILE"
    case secret = "HOOKGUARD_SECRET"
    case spool = "HOOKGUARD_SPOOL"
    case maxBody = "HOOKGUARD_MAX_BODY"
    case rejectStatus = "HOOKGUARD_REJECT_STATUS"
    case signatureHeader = "HOOKGUARD_SIGNATURE_HEADER"
    case algorithm = "HOOKGUARD_ALGORITHM"
    case encoding = "HOOKGUARD_ENCODING"
    case prefix = "HOOKGUARD_PREFIX"
    case socket = "HOOKGUARD_SOCKET"
    case socketAck = "HOOKGUARD_SOCKET_ACK"
    case socketTimeout = "HOOKGUARD_SOCKET_TIMEOUT_MS"
    case role = "HOOKGUARD_ROLE"
    case location = "HOOKGUARD_LOCATION"
    case idHeader = "HOOKGUARD_ID_HEADER"
    case tolerance = "HOOKGUARD_TOLERANCE"
    case dedupe = "HOOKGUARD_DEDUPE"
    case natsURL = "HOOKGUARD_NATS_URL"
    case natsSubject = "HOOKGUARD_NATS_SUBJECT"
    case natsCredentials = "HOOKGUARD_NATS_CREDS"
    case natsTokenFile = "HOOKGUARD_NATS_TOKEN_FILE"
    case natsTimeout = "HOOKGUARD_NATS_TIMEOUT_MS"
    case breakerFailures = "HOOKGUARD_BREAKER_FAILURES"
    case breakerBackoff = "HOOKGUARD_BREAKER_BACKOFF_MS"
    case breakerMaxInFlight = "HOOKGUARD_BREAKER_MAX_IN_FLIGHT"
    // The custom scheme's template (issue 16).
    case message = "HOOKGUARD_MESSAGE"
    case timestampHeader = "HOOKGUARD_TIMESTAMP_HEADER"
    case timestampField = "HOOKGUARD_TIMESTAMP_FIELD"
    case timestampFormat = "HOOKGUARD_TIMESTAMP_FORMAT"
    case separator = "HOOKGUARD_SEPARATOR"
    case keyForm = "HOOKGUARD_KEY_FORM"
    case eventHeader = "HOOKGUARD_EVENT_HEADER"
    /// The exact package URL the sender signs (URL-bound schemes).
    case url = "HOOKGUARD_URL"
    /// Meta's verify token for its GET subscription check.
    case verifyTokenFile = "HOOKGUARD_VERIFY_TOKEN_FILE"
}

/// A location whose parameters cannot work. The message names the parameter
/// and what is wrong with it, never a secret's value.
package struct ConfigError: Error, Sendable, CustomStringConvertible {
    package let parameter: Parameter
    package let problem: String

    package init(_ parameter: Parameter, _ problem: String) {
        self.parameter = parameter
        self.problem = problem
    }

    package var description: String { "\(parameter.rawValue): \(problem)" }
}

/// One location's settings, validated. Built anew from every request's
/// parameters, so a change to the web server's config needs no restart.
package struct LocationConfig: Sendable {
    package static let defaultMaxBody = 25 * 1024 * 1024
    package static let defaultRejectStatus = 500

    package var scheme: Scheme
    package var secretFile: String?
    package var literalSecret: Secret?
    /// Where deliveries are stored; with a socket too, where they go when the socket cannot take them.
    package var spool: String?
    package var socket: SocketDestination?
    package var nats: NATSDestination?
    /// When the socket or JetStream is cut off instead of waited on.
    package var breaker: BreakerPolicy
    package var maxBody: Int
    package var rejectStatus: Int
    /// Seconds a signed timestamp may be from now, either way.
    package var tolerance: Int
    /// Seconds a sender's delivery id is remembered, to answer its retries
    /// without spooling them again; `nil`: every delivery is spooled.
    package var dedupeWindow: Int?
    /// HOOKGUARD_URL: the package URL the sender was given, for URL-bound schemes.
    package var publicURL: String?
    /// HOOKGUARD_VERIFY_TOKEN_FILE: the token Meta's GET subscription check must carry.
    package var verifyTokenFile: String?

    package init(
        scheme: Scheme, secretFile: String? = nil, literalSecret: Secret? = nil, spool: String?,
        socket: SocketDestination? = nil, nats: NATSDestination? = nil, breaker: BreakerPolicy = BreakerPolicy(),
        maxBody: Int = LocationConfig.defaultMaxBody,
        rejectStatus: Int = LocationConfig.defaultRejectStatus,
        tolerance: Int = SignatureVerifier.defaultTolerance, dedupeWindow: Int? = nil
    ) {
        self.scheme = scheme
        self.secretFile = secretFile
        self.literalSecret = literalSecret
        self.spool = spool
        self.socket = socket
        self.nats = nats
        self.breaker = breaker
        self.maxBody = maxBody
        self.rejectStatus = rejectStatus
        self.tolerance = tolerance
        self.dedupeWindow = dedupeWindow
    }

    package init(params: RequestParams) throws(ConfigError) {
        let value = Self.reader(params)
        scheme = try Self.scheme(params)

        secretFile = value(.secretFile)
        literalSecret = value(.secret).map { Secret($0) }
        guard secretFile != nil || literalSecret != nil else {
            throw ConfigError(.secretFile, "no secret: set HOOKGUARD_SECRET_FILE or HOOKGUARD_SECRET")
        }
        if let path = secretFile, !path.hasPrefix("/") {
            throw ConfigError(.secretFile, "\"\(path)\" is not an absolute path")
        }

        spool = value(.spool)
        if let path = spool, !path.hasPrefix("/") {
            throw ConfigError(.spool, "\"\(path)\" is not an absolute path")
        }
        socket = try Self.socketDestination(value)
        nats = try Self.natsDestination(value)
        if socket != nil && nats != nil {
            throw ConfigError(.natsURL, "set with HOOKGUARD_SOCKET: forward to one of them (the spool can back either)")
        }
        guard spool != nil || socket != nil || nats != nil else {
            throw ConfigError(.spool, "no destination: set HOOKGUARD_SPOOL, HOOKGUARD_SOCKET or HOOKGUARD_NATS_URL")
        }
        breaker = try Self.breakerPolicy(value, forwarding: socket != nil || nats != nil)

        maxBody = Self.defaultMaxBody
        if let text = value(.maxBody) {
            guard let bytes = Int(text), bytes > 0 else {
                throw ConfigError(.maxBody, "\"\(text)\" is not a positive number of bytes")
            }
            maxBody = bytes
        }

        rejectStatus = Self.defaultRejectStatus
        if let text = value(.rejectStatus) {
            guard let status = Int(text), (400...599).contains(status) else {
                throw ConfigError(.rejectStatus, "\"\(text)\" is not an HTTP status from 400 to 599")
            }
            rejectStatus = status
        }

        tolerance = try Self.tolerance(params, default: scheme.tolerance)
        publicURL = try Self.publicURL(value(.url), scheme: scheme)
        verifyTokenFile = value(.verifyTokenFile)
        if let path = verifyTokenFile, !path.hasPrefix("/") {
            throw ConfigError(.verifyTokenFile, "\"\(path)\" is not an absolute path")
        }

        dedupeWindow = nil
        if let text = value(.dedupe) {
            guard let seconds = Int(text), seconds > 0 else {
                throw ConfigError(.dedupe, "\"\(text)\" is not a positive number of seconds")
            }
            guard scheme.idHeader != nil else {
                throw ConfigError(
                    .dedupe, "scheme \(scheme.name) sends no delivery id header, so a retry cannot be recognised")
            }
            guard spool != nil else {
                throw ConfigError(.dedupe, "needs HOOKGUARD_SPOOL: the records of accepted ids live beside the spool")
            }
            dedupeWindow = seconds
        }
    }

    /// The scheme `HOOKGUARD_SCHEME` names, with the `custom` parameters.
    package static func scheme(_ params: RequestParams) throws(ConfigError) -> Scheme {
        let value = reader(params)
        guard let schemeName = value(.scheme) else {
            throw ConfigError(.scheme, "missing; name the sender's scheme (\(Self.schemeNames))")
        }
        if schemeName == "custom" {
            return try Self.customScheme(value)
        } else if let preset = Scheme.presets[schemeName] {
            return preset
        } else {
            throw ConfigError(.scheme, "unknown scheme \"\(schemeName)\"; known: \(Self.schemeNames)")
        }
    }

    /// HOOKGUARD_URL, required by a URL-bound scheme.
    package static func publicURL(_ text: String?, scheme: Scheme) throws(ConfigError) -> String? {
        guard let text else {
            if scheme.isURLBound {
                throw ConfigError(
                    .url,
                    "missing; \(scheme.name) signs the URL it was given: set it here exactly, e.g. https://example.org/hooks/\(scheme.name)"
                )
            }
            return nil
        }
        guard text.hasPrefix("https://") || text.hasPrefix("http://"), text.count > 8,
            !text.contains(where: { $0 == " " || $0.isNewline || $0 == "\t" })
        else {
            throw ConfigError(.url, "\"\(text)\" is not an http(s) URL")
        }
        return text
    }

    /// The URL a URL-bound sender signed: HOOKGUARD_URL, with the request's
    /// query string when HOOKGUARD_URL has none (Twilio's `bodySHA256`).
    package func signedURL(_ params: RequestParams) -> String? {
        guard let publicURL else { return nil }
        guard !publicURL.contains("?"), let query = params["QUERY_STRING"], !query.isEmpty else { return publicURL }
        return publicURL + "?" + query
    }

    /// `HOOKGUARD_TOLERANCE`, or the scheme's.
    package static func tolerance(_ params: RequestParams, default tolerance: Int) throws(ConfigError) -> Int {
        guard let text = reader(params)(.tolerance) else { return tolerance }
        guard let seconds = Int(text), seconds >= 0 else {
            throw ConfigError(.tolerance, "\"\(text)\" is not a number of seconds")
        }
        return seconds
    }

    private static func reader(_ params: RequestParams) -> (Parameter) -> String? {
        { parameter in
            guard let text = params[parameter.rawValue], !text.isEmpty else { return nil }
            return text
        }
    }

    private static var schemeNames: String {
        (Scheme.presets.keys.sorted() + ["custom"]).joined(separator: ", ")
    }

    private static func natsDestination(_ value: (Parameter) -> String?) throws(ConfigError) -> NATSDestination? {
        guard let url = value(.natsURL) else {
            for parameter in [Parameter.natsSubject, .natsCredentials, .natsTokenFile, .natsTimeout]
            where value(parameter) != nil {
                throw ConfigError(parameter, "set without HOOKGUARD_NATS_URL")
            }
            return nil
        }
        return try NATSDestination(
            url: url, subjectTemplate: value(.natsSubject) ?? "", credentialsFile: value(.natsCredentials),
            tokenFile: value(.natsTokenFile),
            timeoutMilliseconds: try value(.natsTimeout).map { text throws(ConfigError) in
                try milliseconds(text, .natsTimeout)
            }
                ?? NATSDestination.defaultTimeoutMilliseconds)
    }

    private static func breakerPolicy(
        _ value: (Parameter) -> String?, forwarding: Bool
    ) throws(ConfigError) -> BreakerPolicy {
        var policy = BreakerPolicy()
        let parameters = [Parameter.breakerFailures, .breakerBackoff, .breakerMaxInFlight]
        guard forwarding else {
            for parameter in parameters where value(parameter) != nil {
                throw ConfigError(parameter, "set without HOOKGUARD_SOCKET or HOOKGUARD_NATS_URL")
            }
            return policy
        }
        func number(_ parameter: Parameter, _ range: ClosedRange<Int>, _ what: String) throws(ConfigError) -> Int? {
            guard let text = value(parameter) else { return nil }
            guard let number = Int(text), range.contains(number) else {
                throw ConfigError(
                    parameter, "\"\(text)\" is not \(what) from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        if let failures = try number(.breakerFailures, 1...1000, "a number of failures") { policy.failures = failures }
        if let backoff = try number(.breakerBackoff, 1...3_600_000, "a number of milliseconds") {
            policy.backoffMilliseconds = backoff
        }
        policy.maxInFlight = try number(.breakerMaxInFlight, 1...4096, "a number of requests")
        return policy
    }

    private static func socketDestination(_ value: (Parameter) -> String?) throws(ConfigError) -> SocketDestination? {
        guard let path = value(.socket) else {
            for parameter in [Parameter.socketAck, .socketTimeout] where value(parameter) != nil {
                throw ConfigError(parameter, "set without HOOKGUARD_SOCKET")
            }
            return nil
        }
        var acknowledged = true
        if let text = value(.socketAck) {
            switch text.lowercased() {
            case "1", "on", "yes", "true": acknowledged = true
            case "0", "off", "no", "false": acknowledged = false
            default: throw ConfigError(.socketAck, "\"\(text)\" is neither 1 nor 0")
            }
        }
        return try SocketDestination(
            path: path, acknowledged: acknowledged,
            timeoutMilliseconds: try value(.socketTimeout).map { text throws(ConfigError) in
                try milliseconds(text, .socketTimeout)
            }
                ?? SocketDestination.defaultTimeoutMilliseconds)
    }

    /// A HOOKGUARD_*_TIMEOUT_MS value; its range is the destination's to check.
    private static func milliseconds(_ text: String, _ parameter: Parameter) throws(ConfigError) -> Int {
        guard let milliseconds = Int(text) else { throw Destinations.badTimeout(text, parameter) }
        return milliseconds
    }

    private static func customScheme(_ value: (Parameter) -> String?) throws(ConfigError) -> Scheme {
        func headerName(_ parameter: Parameter) throws(ConfigError) -> HeaderName? {
            guard let name = value(parameter) else { return nil }
            guard name.utf8.allSatisfy({ isTokenCharacter($0) }) else {
                throw ConfigError(parameter, "\"\(name)\" is not a header name")
            }
            return HeaderName(name)
        }
        guard let header = try headerName(.signatureHeader) else {
            throw ConfigError(.signatureHeader, "missing; the custom scheme needs the signature's header name")
        }
        var algorithm = DigestAlgorithm.sha256
        var publicKey: PublicKeyAlgorithm? = nil
        if let name = value(.algorithm) {
            if let known = PublicKeyAlgorithm(rawValue: name.lowercased()) {
                publicKey = known
            } else if let known = DigestAlgorithm(rawValue: name.lowercased()) {
                algorithm = known
            } else {
                let names = (DigestAlgorithm.allCases.map(\.rawValue) + PublicKeyAlgorithm.allCases.map(\.rawValue))
                    .joined(separator: ", ")
                throw ConfigError(.algorithm, "unknown algorithm \"\(name)\"; known: \(names)")
            }
        }
        var encoding = SignatureEncoding.hex
        if let name = value(.encoding) {
            guard let known = SignatureEncoding(rawValue: name.lowercased()), known != .hexOrBase64 else {
                throw ConfigError(.encoding, "unknown encoding \"\(name)\"; known: hex, base64, token")
            }
            encoding = known
        }
        let idHeader = try headerName(.idHeader)
        let eventHeader = try headerName(.eventHeader)
        let prefix = try headerText(value(.prefix) ?? "", .prefix)
        var separator: Character? = nil
        if let text = value(.separator) {
            let spelled = text == "space" ? " " : text
            guard spelled.count == 1, let character = spelled.first, character.isASCII,
                !(character.isLetter || character.isNumber)
            else {
                throw ConfigError(.separator, "\"\(text)\" is not one punctuation character (or \"space\")")
            }
            separator = character
        }
        var timestamp: Scheme.TimestampSource? = nil
        if let name = try headerName(.timestampHeader) { timestamp = .header(name) }
        if let field = value(.timestampField) {
            guard timestamp == nil else {
                throw ConfigError(.timestampField, "set with HOOKGUARD_TIMESTAMP_HEADER: the timestamp is in one place")
            }
            guard separator != nil else {
                throw ConfigError(
                    .timestampField, "needs HOOKGUARD_SEPARATOR: a field is an entry of the signature header's list")
            }
            timestamp = .field(try headerText(field, .timestampField))
        }
        var timestampFormat = TimestampFormat.unixSeconds
        if let name = value(.timestampFormat) {
            guard let known = TimestampFormat(rawValue: name.lowercased()) else {
                let names = TimestampFormat.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(.timestampFormat, "unknown format \"\(name)\"; known: \(names)")
            }
            timestampFormat = known
        }
        var keyForm: Scheme.KeyForm =
            switch publicKey {
            case nil: .asGiven
            case .ed25519: .hexPublicKey
            case .ecdsaP256: .base64PublicKey
            }
        if let name = value(.keyForm) {
            guard let known = Scheme.KeyForm(rawValue: name.lowercased()) else {
                let names = Scheme.KeyForm.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(.keyForm, "unknown key form \"\(name)\"; known: \(names)")
            }
            keyForm = known
        }
        let publicKeyForm = keyForm == .hexPublicKey || keyForm == .base64PublicKey
        if publicKeyForm != (publicKey != nil) {
            throw ConfigError(
                .keyForm,
                publicKey == nil
                    ? "\(keyForm.rawValue) is for package-key algorithms (ed25519, ecdsa-p256)"
                    : "a package-key algorithm needs hex-package-key or base64-package-key")
        }
        if publicKey != nil, encoding == .token {
            throw ConfigError(.encoding, "token: the header carries a secret, and a package-key scheme has none")
        }
        var message: [Scheme.MessagePart] = [.body]
        if let template = value(.message) {
            guard let parts = Scheme.MessagePart.parse(template) else {
                throw ConfigError(
                    .message,
                    "\"\(template)\" is not a template: text with {body} once, and {timestamp} or {id} at most once each"
                )
            }
            message = parts
        }
        if message.contains(.timestamp) != (timestamp != nil) {
            throw ConfigError(
                .message,
                timestamp == nil
                    ? "uses {timestamp}: name where it is with HOOKGUARD_TIMESTAMP_HEADER or HOOKGUARD_TIMESTAMP_FIELD"
                    : "has no {timestamp}, so the timestamp is not signed and would protect nothing")
        }
        if message.contains(.id), idHeader == nil {
            throw ConfigError(.message, "uses {id}: name its header with HOOKGUARD_ID_HEADER")
        }
        if encoding == .token, message != [.body] || timestamp != nil {
            throw ConfigError(.encoding, "token: the header carries the secret itself, so nothing is signed")
        }
        return Scheme(
            name: "custom", signatureHeader: header, algorithm: algorithm, encoding: encoding, prefix: prefix,
            separator: separator, timestamp: timestamp, timestampFormat: timestampFormat, message: message,
            keyForm: keyForm, idHeader: idHeader, eventHeader: eventHeader, publicKey: publicKey)
    }

    /// Text that must arrive as part of a header value.
    private static func headerText(_ text: String, _ parameter: Parameter) throws(ConfigError) -> String {
        // Web servers strip a header value's leading white space, and no value holds a control character.
        if let first = text.utf8.first, first == UInt8(ascii: " ") || first == 0x09 {
            throw ConfigError(parameter, "\"\(text)\" begins with white space, which never reaches hookguard")
        }
        if text.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f }) {
            throw ConfigError(parameter, "holds a control character, which no header value can")
        }
        return text
    }

    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
