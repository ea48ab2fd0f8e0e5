/// What the destinations' initialisers share: the checks a location's
/// parameters and the command line's flags both go through, so both say
/// the same words (naming the HOOKGUARD_* parameter).
enum Destinations {
    static let timeoutRange = 1...600_000

    static func badTimeout(_ text: String, _ parameter: Parameter) -> ConfigError {
        ConfigError(parameter, "\"\(text)\" is not a number of milliseconds from 1 to 600000")
    }

    static func checkTimeout(_ milliseconds: Int, _ parameter: Parameter) throws(ConfigError) {
        guard timeoutRange.contains(milliseconds) else { throw badTimeout(String(milliseconds), parameter) }
    }

    static func checkAbsolute(_ path: String?, _ parameter: Parameter) throws(ConfigError) {
        if let path, !path.hasPrefix("/") { throw ConfigError(parameter, "\"\(path)\" is not an absolute path") }
    }

    /// An empty subject template is a missing one.
    static func checkNATS(
        url: String, subjectTemplate: String, credentialsFile: String?, tokenFile: String?, timeoutMilliseconds: Int
    ) throws(ConfigError) {
        guard url.hasPrefix("nats://") || url.hasPrefix("tls://"), url.count > 7 else {
            throw ConfigError(.natsURL, "\"\(url)\" is not a nats:// URL")
        }
        guard !url.dropFirst(6).contains("@") else {
            throw ConfigError(
                .natsURL,
                "holds credentials; put them in a file named by HOOKGUARD_NATS_CREDS or HOOKGUARD_NATS_TOKEN_FILE")
        }
        guard !subjectTemplate.isEmpty else {
            throw ConfigError(.natsSubject, "missing; name the subject, e.g. hooks.{scheme}.{event}")
        }
        let allowed = subjectTemplate.replacing("{scheme}", with: "s").replacing("{event}", with: "e")
        guard allowed.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }),
            !allowed.hasPrefix("."), !allowed.hasSuffix("."), !allowed.contains("..")
        else {
            throw ConfigError(
                .natsSubject,
                "\"\(subjectTemplate)\" is not a subject: dot-separated tokens of letters, digits, - and _, with {scheme} and {event}"
            )
        }
        try checkAbsolute(credentialsFile, .natsCredentials)
        try checkAbsolute(tokenFile, .natsTokenFile)
        try checkTimeout(timeoutMilliseconds, .natsTimeout)
    }
}

/// A reader's Unix socket that verified deliveries are handed to.
package struct SocketDestination: Sendable, Equatable {
    package static let defaultTimeoutMilliseconds = 2000

    package let path: String
    /// Wait for the reader's `ok` line before answering 200 (the default;
    /// without it a 200 only means the kernel took the line).
    package let acknowledged: Bool
    /// Bounds connect, write and acknowledgement together.
    package let timeoutMilliseconds: Int

    /// Checked as HOOKGUARD_SOCKET and HOOKGUARD_SOCKET_TIMEOUT_MS are.
    package init(
        path: String, acknowledged: Bool = true, timeoutMilliseconds: Int = SocketDestination.defaultTimeoutMilliseconds
    ) throws(ConfigError) {
        try Destinations.checkAbsolute(path, .socket)
        try Destinations.checkTimeout(timeoutMilliseconds, .socketTimeout)
        self.path = path
        self.acknowledged = acknowledged
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}
