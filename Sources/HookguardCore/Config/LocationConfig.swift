import FoundationEssentials

/// The per-location parameters hookguard reads from every request
/// (`fastcgi_param` in nginx, `SetEnv` in Apache, the environment in CGI).
public enum Parameter: String, Sendable, CaseIterable {
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
}

/// A reader's Unix socket that verified deliveries are handed to.
public struct SocketDestination: Sendable, Equatable {
    public static let defaultTimeoutMilliseconds = 2000

    public var path: String
    /// Wait for the reader's `ok` line before answering 200 (the default;
    /// without it a 200 only means the kernel took the line).
    public var acknowledged: Bool
    /// Bounds connect, write and acknowledgement together.
    public var timeoutMilliseconds: Int

    public init(path: String, acknowledged: Bool = true, timeoutMilliseconds: Int = SocketDestination.defaultTimeoutMilliseconds) {
        self.path = path
        self.acknowledged = acknowledged
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// A location whose parameters cannot work. The message names the parameter
/// and what is wrong with it, never a secret's value.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public let parameter: Parameter
    public let problem: String

    public init(_ parameter: Parameter, _ problem: String) {
        self.parameter = parameter
        self.problem = problem
    }

    public var description: String { "\(parameter.rawValue): \(problem)" }
}

/// One location's settings, validated. Built anew from every request's
/// parameters, so a change to the web server's config needs no restart.
public struct LocationConfig: Sendable {
    public static let defaultMaxBody = 25 * 1024 * 1024
    public static let defaultRejectStatus = 500

    public var scheme: Scheme
    public var secretFile: String?
    public var literalSecret: Secret?
    /// Where deliveries are stored; with a socket too, where they go when the socket cannot take them.
    public var spool: String?
    public var socket: SocketDestination?
    public var nats: NATSDestination?
    /// When the socket or JetStream is cut off instead of waited on.
    public var breaker: BreakerPolicy
    public var maxBody: Int
    public var rejectStatus: Int
    /// Seconds a signed timestamp may be from now, either way.
    public var tolerance: Int
    /// Seconds a sender's delivery id is remembered, to answer its retries
    /// without spooling them again; `nil`: every delivery is spooled.
    public var dedupeWindow: Int?

    public init(
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

    public init(params: RequestParams) throws(ConfigError) {
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

        tolerance = try Self.tolerance(params)

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
    public static func scheme(_ params: RequestParams) throws(ConfigError) -> Scheme {
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

    /// `HOOKGUARD_TOLERANCE`, or the default.
    public static func tolerance(_ params: RequestParams) throws(ConfigError) -> Int {
        guard let text = reader(params)(.tolerance) else { return SignatureVerifier.defaultTolerance }
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
        guard url.hasPrefix("nats://") || url.hasPrefix("tls://"), url.count > 7 else {
            throw ConfigError(.natsURL, "\"\(url)\" is not a nats:// URL")
        }
        guard !url.dropFirst(6).contains("@") else {
            throw ConfigError(.natsURL, "holds credentials; put them in a file named by HOOKGUARD_NATS_CREDS or HOOKGUARD_NATS_TOKEN_FILE")
        }
        guard let template = value(.natsSubject) else {
            throw ConfigError(.natsSubject, "missing; name the subject, e.g. hooks.{scheme}.{event}")
        }
        let allowed = template.replacing("{scheme}", with: "s").replacing("{event}", with: "e")
        guard allowed.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }),
            !allowed.hasPrefix("."), !allowed.hasSuffix("."), !allowed.contains("..")
        else {
            throw ConfigError(.natsSubject, "\"\(template)\" is not a subject: dot-separated tokens of letters, digits, - and _, with {scheme} and {event}")
        }
        var destination = NATSDestination(url: url, subjectTemplate: template)
        for (parameter, path) in [(Parameter.natsCredentials, value(.natsCredentials)), (.natsTokenFile, value(.natsTokenFile))] {
            if let path, !path.hasPrefix("/") { throw ConfigError(parameter, "\"\(path)\" is not an absolute path") }
        }
        destination.credentialsFile = value(.natsCredentials)
        destination.tokenFile = value(.natsTokenFile)
        if let text = value(.natsTimeout) {
            guard let milliseconds = Int(text), (1...600_000).contains(milliseconds) else {
                throw ConfigError(.natsTimeout, "\"\(text)\" is not a number of milliseconds from 1 to 600000")
            }
            destination.timeoutMilliseconds = milliseconds
        }
        return destination
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
                throw ConfigError(parameter, "\"\(text)\" is not \(what) from \(range.lowerBound) to \(range.upperBound)")
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
        guard path.hasPrefix("/") else { throw ConfigError(.socket, "\"\(path)\" is not an absolute path") }
        var destination = SocketDestination(path: path)
        if let text = value(.socketAck) {
            switch text.lowercased() {
            case "1", "on", "yes", "true": destination.acknowledged = true
            case "0", "off", "no", "false": destination.acknowledged = false
            default: throw ConfigError(.socketAck, "\"\(text)\" is neither 1 nor 0")
            }
        }
        if let text = value(.socketTimeout) {
            guard let milliseconds = Int(text), (1...600_000).contains(milliseconds) else {
                throw ConfigError(.socketTimeout, "\"\(text)\" is not a number of milliseconds from 1 to 600000")
            }
            destination.timeoutMilliseconds = milliseconds
        }
        return destination
    }

    private static func customScheme(_ value: (Parameter) -> String?) throws(ConfigError) -> Scheme {
        guard let header = value(.signatureHeader) else {
            throw ConfigError(.signatureHeader, "missing; the custom scheme needs the signature's header name")
        }
        guard header.utf8.allSatisfy({ isTokenCharacter($0) }) else {
            throw ConfigError(.signatureHeader, "\"\(header)\" is not a header name")
        }
        var algorithm = DigestAlgorithm.sha256
        if let name = value(.algorithm) {
            guard let known = DigestAlgorithm(rawValue: name.lowercased()) else {
                let names = DigestAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError(.algorithm, "unknown algorithm \"\(name)\"; known: \(names)")
            }
            algorithm = known
        }
        var encoding = SignatureEncoding.hex
        if let name = value(.encoding) {
            guard let known = SignatureEncoding(rawValue: name.lowercased()), known != .hexOrBase64 else {
                throw ConfigError(.encoding, "unknown encoding \"\(name)\"; known: hex, base64, token")
            }
            encoding = known
        }
        var idHeader: HeaderName? = nil
        if let name = value(.idHeader) {
            guard name.utf8.allSatisfy({ isTokenCharacter($0) }) else {
                throw ConfigError(.idHeader, "\"\(name)\" is not a header name")
            }
            idHeader = HeaderName(name)
        }
        let prefix = value(.prefix) ?? ""
        // Web servers strip a header value's leading white space, and no value holds a control character.
        if let first = prefix.utf8.first, first == UInt8(ascii: " ") || first == 0x09 {
            throw ConfigError(.prefix, "\"\(prefix)\" begins with white space, which never reaches hookguard")
        }
        if prefix.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f }) {
            throw ConfigError(.prefix, "holds a control character, which no header value can")
        }
        return Scheme(
            name: "custom", signatureHeader: HeaderName(header), algorithm: algorithm,
            encoding: encoding, prefix: prefix, idHeader: idHeader)
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
