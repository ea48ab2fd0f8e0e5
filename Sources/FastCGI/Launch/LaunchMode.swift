import Posix

/// How hookguard was started, as far as its descriptors and environment tell.
/// Web servers that spawn hookguard themselves (Apache's mod_fcgid and
/// mod_cgid, spawn-fcgi, systemd) pass no arguments: this is how a bare
/// `hookguard` finds out what to do.
package enum LaunchMode: Sendable, Equatable {
    /// systemd's socket activation: `LISTEN_FDS=1` and `LISTEN_PID` naming
    /// this process; the listening socket is descriptor 3.
    case systemdSocket
    /// A listening FastCGI socket on standard input (spawn-fcgi, mod_fcgid,
    /// a systemd socket with `StandardInput=socket`).
    case standardInputSocket
    /// A CGI program (mod_cgid, mod_cgi): one request in the environment,
    /// its body on standard input, the answer on standard output.
    case cgi
    /// None of those: someone typed `hookguard`.
    case interactive

    /// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
    package static let systemdFirstDescriptor: Int32 = 3

    /// The listening socket to serve on, for the FastCGI modes.
    package var inheritedDescriptor: Int32? {
        switch self {
        case .systemdSocket: LaunchMode.systemdFirstDescriptor
        case .standardInputSocket: 0
        case .cgi, .interactive: nil
        }
    }

    /// Decides in the order of the most explicit sign first: systemd's
    /// variables, then a listening socket on standard input (checked only
    /// when needed, through `standardInputIsListeningSocket`), then a CGI
    /// environment.
    package static func detect(
        environment: [String: String], processID: Int32, standardInputIsListeningSocket: () -> Bool
    ) throws(LaunchError) -> LaunchMode {
        if try systemdPassedSocket(environment: environment, processID: processID) { return .systemdSocket }
        if standardInputIsListeningSocket() { return .standardInputSocket }
        let cgiVariables = ["GATEWAY_INTERFACE", "REQUEST_METHOD"]
        if cgiVariables.contains(where: { !(environment[$0] ?? "").isEmpty }) { return .cgi }
        return .interactive
    }

    /// `sd_listen_fds` semantics: variables meant for another process (an
    /// ancestor's, left in the environment) are ignored; ours must pass
    /// exactly one socket, since hookguard serves one.
    private static func systemdPassedSocket(
        environment: [String: String], processID: Int32
    ) throws(LaunchError) -> Bool {
        guard let pidText = environment["LISTEN_PID"], let count = environment["LISTEN_FDS"] else { return false }
        guard Int32(pidText) == processID else { return false }
        switch count {
        case "0": return false
        case "1": return true
        default: throw .systemdSocketCount(count)
        }
    }
}

/// A start hookguard cannot make sense of, in words for the operator.
package enum LaunchError: Error, Sendable, Equatable, CustomStringConvertible {
    case systemdSocketCount(String)
    case invalidOption(variable: String, value: String, expected: String)

    package var description: String {
        switch self {
        case .systemdSocketCount(let count):
            "systemd passed LISTEN_FDS=\(count); hookguard serves exactly one socket: give its .socket unit one Listen… line"
        case .invalidOption(let variable, let value, let expected):
            "\(variable)=\"\(value)\" is not valid: expected \(expected)"
        }
    }
}
