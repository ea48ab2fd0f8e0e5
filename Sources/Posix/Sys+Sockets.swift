import Glibc

/// Which of a socket's two timeouts: sending (on a Unix socket it bounds
/// `connect` too) or receiving.
package enum SocketTimeout: Sendable {
    case send, receive

    var option: Int32 { self == .send ? SO_SNDTIMEO : SO_RCVTIMEO }
}

extension SystemError {
    /// EAGAIN/EWOULDBLOCK (EINPROGRESS from `connect`, ETIMEDOUT from
    /// `Sys.connectUnix` past its deadline): a socket call ran out of the
    /// timeout set with `Sys.setTimeout`.
    package var isSocketTimeout: Bool { [EAGAIN, EWOULDBLOCK, EINPROGRESS, ETIMEDOUT].contains(errno) }
}

extension Sys {
    /// The longest path a Unix socket address holds, in bytes.
    package static let maxUnixSocketPathBytes = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// A blocking Unix stream socket connected to `path`; its send timeout
    /// (set to `deadline`'s remainder first) bounds the connect.
    package static func connectUnix(_ path: String, deadline: Deadline) throws(SystemError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count <= maxUnixSocketPathBytes else {
            throw SystemError("connect", path: path, errno: ENAMETOOLONG)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path.utf8) }
        let fd = try syscall("socket", path: path) {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            guard try setTimeout(fd, .send, remainingOf: deadline, path: path) else {
                throw SystemError("connect", path: path, errno: ETIMEDOUT)
            }
            // connect is not retried on EINTR: the attempt goes on in the kernel.
            let status = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if status != 0 { throw SystemError("connect", path: path, errno: errno) }
        } catch {
            closeIgnoringError(fd)
            throw error
        }
        return fd
    }

    /// A TCP connection to the first address `host` resolves to, with both
    /// timeouts set to `timeoutSeconds`; nil when `host` does not resolve.
    package static func connectTCP(host: String, port: UInt16, timeoutSeconds: Int) throws(SystemError) -> Int32? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>? = nil
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else { return nil }
        defer { freeaddrinfo(result) }
        let name = "\(host):\(port)"
        let fd = try syscall("socket", path: name) {
            socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        do throws(SystemError) {
            var timeout = timeval()
            timeout.tv_sec = timeoutSeconds
            for which in [SocketTimeout.send, .receive] { try setTimeout(fd, which, timeout, path: name) }
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                throw SystemError("connect", path: name, errno: errno)
            }
        } catch {
            closeIgnoringError(fd)
            throw error
        }
        return fd
    }

    /// Sets the socket's timeout to what is left of `deadline` (at least a
    /// microsecond); false, setting nothing, once the deadline has passed.
    package static func setTimeout(
        _ fd: Int32, _ which: SocketTimeout, remainingOf deadline: Deadline, path: String
    ) throws(SystemError) -> Bool {
        guard var left = deadline.remaining else { return false }
        if left.tv_sec == 0 && left.tv_usec == 0 { left.tv_usec = 1 }
        try setTimeout(fd, which, left, path: path)
        return true
    }

    private static func setTimeout(_ fd: Int32, _ which: SocketTimeout, _ value: timeval, path: String)
        throws(SystemError)
    {
        var value = value
        try syscall("setsockopt", path: path) {
            setsockopt(fd, SOL_SOCKET, which.option, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// Sends some of `bytes[offset...]` without SIGPIPE; returns how many.
    package static func send(_ fd: Int32, _ bytes: [UInt8], from offset: Int) throws(SystemError) -> Int {
        try syscall("send") {
            bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
        }
    }

    /// Receives into `buffer`; 0 when the peer closed the connection.
    /// `waitingForAll`: blocks until the buffer is full (or the timeout passes).
    package static func receive(
        _ fd: Int32, into buffer: inout [UInt8], waitingForAll: Bool = false, path: String
    ) throws(SystemError) -> Int {
        try syscall("recv", path: path) {
            buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, waitingForAll ? Int32(MSG_WAITALL) : 0) }
        }
    }

    /// True while the peer has neither hung up nor sent anything: a look
    /// without waiting or consuming (MSG_PEEK | MSG_DONTWAIT).
    package static func isQuiet(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let peeked = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }
}
