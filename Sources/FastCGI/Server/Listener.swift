import CFastCGI
import Glibc
package import Posix

/// The listening socket. hookguard makes it itself rather than with
/// `FCGX_OpenSocket`, which cannot set the socket file's mode or group, tell a
/// stale socket file from a live one, or bind IPv6; or takes one it was
/// started with.
package struct Listener: Sendable, CustomStringConvertible {
    package let fd: Int32
    package let address: ListenAddress
    /// Where an inherited socket is bound, e.g. `unix:/run/hookguard/hookguard.sock`.
    package let boundTo: String?

    init(fd: Int32, address: ListenAddress, boundTo: String? = nil) {
        self.fd = fd
        self.address = address
        self.boundTo = boundTo
    }

    /// `unix:/path`, `host:port`, or `fd:3 (unix:/path)` for an inherited socket.
    package var description: String {
        guard let boundTo else { return address.description }
        return "\(address) (\(boundTo))"
    }

    package struct Options: Sendable {
        package var socketMode: UInt32
        package var socketGroup: String?
        /// The user the socket file is given to, when the server drops to one after opening it.
        package var socketOwner: UInt32?
        package var allowRemote: Bool
        package var backlog: Int32

        package init(
            socketMode: UInt32 = 0o660, socketGroup: String? = nil, allowRemote: Bool = false, backlog: Int32 = 1024
        ) {
            self.socketMode = socketMode
            self.socketGroup = socketGroup
            self.allowRemote = allowRemote
            self.backlog = backlog
        }
    }

    package enum OpenError: Error, CustomStringConvertible {
        case system(SystemError)
        case inUse(String)
        case notASocket(String)
        case pathTooLong(String)
        case unknownGroup(String)
        case unresolved(String, String)
        case remoteRefused(String)
        case notListening(String)

        package var description: String {
            switch self {
            case .system(let error): error.description
            case .inUse(let path): "another server is already listening on \(path)"
            case .notASocket(let path): "\(path) exists and is not a socket; refusing to replace it"
            case .pathTooLong(let path): "socket path \(path) is longer than the 107 bytes a Unix socket allows"
            case .unknownGroup(let group): "no group named \"\(group)\""
            case .unresolved(let host, let why): "cannot resolve \(host): \(why)"
            case .remoteRefused(let address):
                "\(address) is not a loopback address: anyone who can reach a FastCGI socket can set HOOKGUARD_* parameters; pass --allow-remote to listen there anyway"
            case .notListening(let why): why
            }
        }
    }

    package static func open(_ address: ListenAddress, options: Options = Options()) throws(OpenError) -> Listener {
        switch address {
        case .unix(let path): try openUnix(path, options: options)
        case .tcp(let host, let port): try openTCP(host, port, options: options)
        case .inherited(let fd): try adopt(fd, options: options)
        }
    }

    /// True when standard input is a socket nobody is connected to, which is
    /// how a FastCGI program is started (libfcgi's own test, `FCGX_IsCGI`).
    /// A CGI program's standard input is a pipe or a connected socket.
    package static var standardInputIsListeningSocket: Bool { FCGX_IsCGI() == 0 }

    /// Closes the socket and removes a Unix socket file hookguard made; an
    /// inherited socket's file belongs to whoever made it and stays.
    package func close() {
        _ = Glibc.close(fd)
        if case .unix(let path) = address { unlink(path) }
    }

    /// The next connection, close-on-exec: the one accept loop, for the
    /// waiting room and the metrics endpoint. nil when there is none to take
    /// on a non-blocking socket (another process sharing it took it); a
    /// connection its client gave up on before it was taken is skipped.
    package func accept() throws(SystemError) -> Int32? {
        while true {
            do {
                return try syscall("accept4", path: description) { hookguard_accept_cloexec(fd) }
            } catch {
                switch error.errno {
                case EAGAIN, EWOULDBLOCK: return nil
                case ECONNABORTED: continue
                default: throw error
                }
            }
        }
    }

    private static func openUnix(_ path: String, options: Options) throws(OpenError) -> Listener {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.utf8.count < capacity else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
        }
        try removeStaleSocket(path, addr: addr)

        let fd = try call("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do throws(OpenError) {
            _ = try withSockaddr(addr) { ptr, len throws(OpenError) in
                try call("bind", path: path) { bind(fd, ptr, len) }
            }
            // Permissions are set before listen(), so no client connects through wider ones.
            try call("chmod", path: path) { chmod(path, mode_t(options.socketMode)) }
            var group = gid_t.max
            if let name = options.socketGroup {
                guard let entry = getgrnam(name) else { throw .unknownGroup(name) }
                group = entry.pointee.gr_gid
            }
            if group != gid_t.max || options.socketOwner != nil {
                try call("chown", path: path) { chown(path, options.socketOwner ?? uid_t.max, group) }
            }
            try call("listen", path: path) { listen(fd, options.backlog) }
        } catch {
            Glibc.close(fd)
            unlink(path)
            throw error
        }
        return Listener(fd: fd, address: .unix(path: path))
    }

    /// A socket file nobody answers on is left by a server that died; one
    /// that answers belongs to a running server and is kept.
    private static func removeStaleSocket(_ path: String, addr: sockaddr_un) throws(OpenError) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path) }
        // Without a probe, a live server's socket would look stale.
        let probe = try call("socket") {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { Glibc.close(probe) }
        let connected = withSockaddr(addr) { ptr, len in connect(probe, ptr, len) == 0 }
        if connected { throw .inUse(path) }
        unlink(path)
    }

    private static func openTCP(_ host: String, _ port: UInt16, options: Options) throws(OpenError) -> Listener {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>? = nil
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw .unresolved(host, String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }
        let address = ListenAddress.tcp(host: host, port: port)
        if !options.allowRemote && !isLoopback(info.pointee.ai_addr) { throw .remoteRefused(address.description) }

        let fd = try call("socket") {
            socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(OpenError) {
            var one: Int32 = 1
            try call("setsockopt(SO_REUSEADDR)", path: address.description) {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try call("bind", path: address.description) { bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) }
            try call("listen", path: address.description) { listen(fd, options.backlog) }
        } catch {
            Glibc.close(fd)
            throw error
        }
        return Listener(fd: fd, address: address)
    }

    /// Checks that `fd` is a listening stream socket (not remote unless
    /// allowed, as for `--listen`) and takes it as it is: its mode, group and
    /// address were chosen by whoever made it.
    private static func adopt(_ fd: Int32, options: Options) throws(OpenError) -> Listener {
        let name = "fd \(fd)"
        func option(_ option: Int32) throws(OpenError) -> Int32 {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, option, &value, &length) == 0 else {
                switch errno {
                case ENOTSOCK:
                    throw .notListening("\(name) is not a socket; start hookguard with its listening socket there")
                case EBADF: throw .notListening("\(name) is not open; start hookguard with its listening socket there")
                default: throw .system(SystemError("getsockopt", path: name, errno: errno))
                }
            }
            return value
        }
        guard try option(SO_TYPE) == Int32(SOCK_STREAM.rawValue) else {
            throw .notListening("\(name) is not a stream socket")
        }
        guard try option(SO_ACCEPTCONN) == 1 else {
            throw .notListening("\(name) is a socket but not a listening one")
        }

        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { pointer throws(OpenError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(OpenError) in
                try call("getsockname", path: name) { getsockname(fd, address, &length) }
            }
        }
        let boundTo = withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { describe($0, length: length) }
        }
        let family = Int32(storage.ss_family)
        if family == AF_INET || family == AF_INET6, !options.allowRemote {
            let loopback = withUnsafeMutablePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { isLoopback($0) }
            }
            if !loopback { throw .remoteRefused("\(boundTo) (\(name))") }
        }
        // No program hookguard might start should inherit the listening socket.
        let descriptorFlags = try call("fcntl(F_GETFD)", path: name) { fcntl(fd, F_GETFD) }
        try call("fcntl(F_SETFD)", path: name) { fcntl(fd, F_SETFD, descriptorFlags | FD_CLOEXEC) }
        return Listener(fd: fd, address: .inherited(fd: fd), boundTo: boundTo)
    }

    /// A socket address as `--listen` would spell it.
    private static func describe(_ addr: UnsafeMutablePointer<sockaddr>, length: socklen_t) -> String {
        switch Int32(addr.pointee.sa_family) {
        case AF_UNIX:
            let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
            let pathLength = Int(length) - pathOffset
            guard pathLength > 0 else { return "unix:(unnamed)" }
            return addr.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { un in
                withUnsafeBytes(of: &un.pointee.sun_path) { raw in
                    let bytes = raw.prefix(pathLength)
                    // A leading NUL is Linux's abstract namespace; `@` is how ss(8) shows it.
                    if bytes.first == 0 { return "unix:@" + String(decoding: bytes.dropFirst(), as: UTF8.self) }
                    return "unix:" + String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
                }
            }
        case AF_INET, AF_INET6:
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            var port = [CChar](repeating: 0, count: Int(NI_MAXSERV))
            guard
                getnameinfo(
                    addr, length, &host, socklen_t(host.count), &port, socklen_t(port.count),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0
            else { return "tcp:(unknown)" }
            func text(_ chars: [CChar]) -> String {
                String(decoding: chars.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            return ListenAddress.tcp(host: text(host), port: UInt16(text(port)) ?? 0).description
        default:
            return "family \(addr.pointee.sa_family)"
        }
    }

    private static func isLoopback(_ addr: UnsafeMutablePointer<sockaddr>) -> Bool {
        switch Int32(addr.pointee.sa_family) {
        case AF_INET:
            return addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                UInt32(bigEndian: $0.pointee.sin_addr.s_addr) >> 24 == 127
            }
        case AF_INET6:
            return addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { sin6 in
                var loopback = in6addr_loopback
                return memcmp(&sin6.pointee.sin6_addr, &loopback, MemoryLayout<in6_addr>.size) == 0
            }
        default:
            return false
        }
    }
}

private func withSockaddr<R, E: Error>(
    _ addr: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R
) throws(E) -> R {
    var copy = addr
    let result = withUnsafePointer(to: &copy) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
            Result { () throws(E) -> R in try body(address, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
    return try result.get()
}

/// `syscall` for the listener's calls: a failure is an `OpenError`.
@discardableResult
private func call<T: BinaryInteger>(_ name: String, path: String? = nil, _ body: () -> T) throws(Listener.OpenError)
    -> T
{
    do {
        return try syscall(name, path: path, body)
    } catch {
        throw .system(error)
    }
}
