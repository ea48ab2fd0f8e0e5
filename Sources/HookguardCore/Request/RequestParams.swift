/// An HTTP header as the sender names it, the CGI parameter the web server
/// passes it in, and the name the envelope records.
public struct HeaderName: Sendable, Hashable, CustomStringConvertible {
    /// As documented by the sender, e.g. `X-Hub-Signature-256`.
    public let display: String
    /// As a CGI/FastCGI parameter, e.g. `HTTP_X_HUB_SIGNATURE_256`.
    public let parameter: String

    public init(_ display: String) {
        self.display = display
        self.parameter = "HTTP_" + display.uppercased().replacingDashes()
    }

    public var description: String { display }

    /// A parameter such as `HTTP_X_WEBHOOK_NAME` as the envelope names it: `x-webhook-name`.
    public static func envelopeName(ofParameter parameter: Substring) -> String {
        String(parameter.lowercased().map { $0 == "_" ? "-" : $0 })
    }
}

extension String {
    fileprivate func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}

/// The CGI/FastCGI parameters of one request, copied out of the web server's
/// record: the location's `HOOKGUARD_*` settings and the `HTTP_*` headers.
public struct RequestParams: Sendable {
    public private(set) var values: [String: String]

    public init(_ values: [String: String] = [:]) {
        self.values = values
    }

    public subscript(name: String) -> String? {
        get { values[name] }
        set { values[name] = newValue }
    }

    public subscript(header: HeaderName) -> String? { values[header.parameter] }

    /// Adds one parameter as CGI and FastCGI carry it, `NAME=VALUE` (split at
    /// the first `=`; an entry without one is ignored), decoded as UTF-8 with
    /// invalid bytes replaced. A name sent twice (a header the client repeated)
    /// is combined as HTTP combines headers, so a repeated signature header is
    /// malformed rather than last-one-wins.
    public mutating func append(entry bytes: some Collection<UInt8>) {
        guard let equals = bytes.firstIndex(of: UInt8(ascii: "=")) else { return }
        let name = String(decoding: bytes[..<equals], as: UTF8.self)
        let value = String(decoding: bytes[bytes.index(after: equals)...], as: UTF8.self)
        values[name] = values[name].map { $0 + ", " + value } ?? value
    }

    public var method: String { values["REQUEST_METHOD"] ?? "" }
    public var uri: String { values["REQUEST_URI"] ?? values["SCRIPT_NAME"] ?? "" }

    /// The request's headers with envelope names, sorted by name. `Content-Type`
    /// and `Content-Length` travel outside `HTTP_*` in CGI and are put back.
    public var headers: [(name: String, value: String)] {
        var result: [(name: String, value: String)] = []
        for (key, value) in values {
            if key.hasPrefix("HTTP_") {
                result.append((HeaderName.envelopeName(ofParameter: key.dropFirst(5)), value))
            } else if key == "CONTENT_TYPE" || key == "CONTENT_LENGTH", !value.isEmpty {
                result.append((HeaderName.envelopeName(ofParameter: Substring(key)), value))
            }
        }
        return result.sorted { $0.name < $1.name }
    }
}
