import Posix

/// Where `hookguard serve` takes FastCGI connections.
package enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// A Unix socket file, `unix:/run/hookguard/hookguard.sock`.
    case unix(path: String)
    /// A TCP address, `127.0.0.1:9000` or `[::1]:9000`.
    case tcp(host: String, port: UInt16)
    /// A listening socket hookguard was started with, already bound by
    /// whoever started it: descriptor 0 (spawn-fcgi, mod_fcgid) or 3
    /// (systemd). Never unlinked: its file belongs to that starter.
    case inherited(fd: Int32)

    package enum ParseError: Error, CustomStringConvertible {
        case invalid(String)
        package var description: String {
            switch self {
            case .invalid(let text):
                "\"\(text)\" is not a listen address; use unix:/path/to.sock or HOST:PORT (e.g. 127.0.0.1:9000)"
            }
        }
    }

    package init(parsing text: String) throws(ParseError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") || path.hasPrefix(".") || !path.isEmpty else { throw .invalid(text) }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0
        else { throw .invalid(text) }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalid(text) }
        self = .tcp(host: host, port: port)
    }

    package var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .inherited(let fd): "fd:\(fd)"
        }
    }
}
