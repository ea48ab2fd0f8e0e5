package import Posix
package import FastCGI
import Glibc
import Synchronization

/// Why a delivery could not be handed to the socket reader.
package struct SocketForwardError: Error, Sendable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        case connect, write, acknowledge, refused, timeout
        /// Not tried: its circuit breaker is open, or too many requests wait on it.
        case cutOff
    }

    package let kind: Kind
    package let path: String
    package let detail: String

    package var description: String {
        switch kind {
        case .timeout: "socket \(path): no \(detail) within the timeout"
        case .refused: "socket \(path): reader answered \"\(detail)\" instead of ok"
        default: "socket \(path): \(detail)"
        }
    }
}

/// Hands envelopes to a reader on a Unix stream socket, one JSON object per
/// line. Connections are kept and reused across requests; a worker takes one
/// for the length of a delivery, so deliveries on one connection keep their order.
package final class SocketForwarder: Sendable {
    /// Idle connections per socket path, never more than this many kept.
    private let maxIdlePerPath = 64
    private let idle = Mutex<[String: [ReaderConnection]]>([:])

    package init() {}

    /// Returns once the line was written whole (and, with `acknowledged`,
    /// once the reader answered a line starting with `ok`), all within
    /// `timeoutMilliseconds`. A broken connection is replaced once.
    package func send(
        _ line: [UInt8], to path: String, acknowledged: Bool, timeoutMilliseconds: Int
    ) throws(SocketForwardError) {
        let deadline = Deadline(milliseconds: timeoutMilliseconds)
        var connection = try takeConnection(path, deadline: deadline)
        do {
            try connection.deliver(line, acknowledged: acknowledged, deadline: deadline)
        } catch where error.kind == .write || error.kind == .acknowledge {
            // The reader went away since this connection was last used: once more, afresh.
            connection.close()
            connection = try ReaderConnection.open(path, deadline: deadline)
            do {
                try connection.deliver(line, acknowledged: acknowledged, deadline: deadline)
            } catch {
                connection.close()
                throw error
            }
        } catch {
            connection.close()
            throw error
        }
        giveBack(connection)
    }

    private func takeConnection(_ path: String, deadline: Deadline) throws(SocketForwardError) -> ReaderConnection {
        while let connection = idle.withLock({ $0[path]?.popLast() }) {
            if connection.isOpenForWriting { return connection }
            connection.close()
        }
        return try ReaderConnection.open(path, deadline: deadline)
    }

    private func giveBack(_ connection: ReaderConnection) {
        let kept = idle.withLock { pool -> Bool in
            guard pool[connection.path, default: []].count < maxIdlePerPath else { return false }
            pool[connection.path, default: []].append(connection)
            return true
        }
        if !kept { connection.close() }
    }
}

/// One connection to a reader: a blocking socket whose send and receive
/// timeouts are set to what is left of the deadline before each step.
package struct ReaderConnection: Sendable {
    let fd: Int32
    let path: String

    package static func open(_ path: String, deadline: Deadline) throws(SocketForwardError) -> ReaderConnection {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            throw SocketForwardError(kind: .connect, path: path, detail: "path too long for a Unix socket")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path.utf8) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw SocketForwardError(kind: .connect, path: path, detail: SystemError("socket", errno: errno).description)
        }
        let connection = ReaderConnection(fd: fd, path: path)
        do throws(SocketForwardError) {
            // On Unix sockets SO_SNDTIMEO bounds connect() too.
            try connection.setTimeout(SO_SNDTIMEO, deadline, waitingFor: "connection")
            let status = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if status != 0 {
                let code = errno
                if code == EAGAIN || code == EINPROGRESS {
                    throw SocketForwardError(kind: .timeout, path: path, detail: "connection")
                }
                throw SocketForwardError(kind: .connect, path: path, detail: SystemError("connect", errno: code).reason)
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    package func close() {
        _ = Glibc.close(fd)
    }

    /// False when the reader has hung up (or sent something unasked) while the
    /// connection sat idle: such a connection is not reused.
    var isOpenForWriting: Bool {
        var byte: UInt8 = 0
        let peeked = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
    }

    func deliver(_ line: [UInt8], acknowledged: Bool, deadline: Deadline) throws(SocketForwardError) {
        try write(line, deadline: deadline)
        if acknowledged { try awaitAcknowledgement(deadline: deadline) }
    }

    private func write(_ line: [UInt8], deadline: Deadline) throws(SocketForwardError) {
        var offset = 0
        while offset < line.count {
            try setTimeout(SO_SNDTIMEO, deadline, waitingFor: "write")
            // MSG_NOSIGNAL: a reader that hung up gives EPIPE here, never SIGPIPE.
            let sent = line.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    throw SocketForwardError(kind: .timeout, path: path, detail: "write of the whole line")
                }
                throw SocketForwardError(kind: .write, path: path, detail: SystemError("send", errno: code).reason)
            }
            offset += sent
        }
    }

    /// Reads the reader's answer line; it must start with `ok`.
    private func awaitAcknowledgement(deadline: Deadline) throws(SocketForwardError) {
        var answer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 256)
        while !answer.contains(UInt8(ascii: "\n")) {
            try setTimeout(SO_RCVTIMEO, deadline, waitingFor: "acknowledgement")
            let received = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received == 0 {
                throw SocketForwardError(kind: .acknowledge, path: path, detail: "reader closed the connection before acknowledging")
            }
            if received < 0 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK {
                    throw SocketForwardError(kind: .timeout, path: path, detail: "acknowledgement")
                }
                throw SocketForwardError(kind: .acknowledge, path: path, detail: SystemError("recv", errno: code).reason)
            }
            answer.append(contentsOf: chunk[0..<received])
            if answer.count > 4096 { break }
        }
        let line = answer.prefix { $0 != UInt8(ascii: "\n") }
        guard line.starts(with: "ok".utf8) else {
            let shown = String(decoding: line.prefix(80), as: UTF8.self)
            throw SocketForwardError(kind: .refused, path: path, detail: shown)
        }
    }

    private func setTimeout(_ option: Int32, _ deadline: Deadline, waitingFor what: String) throws(SocketForwardError) {
        guard var left = deadline.remaining else {
            throw SocketForwardError(kind: .timeout, path: path, detail: what)
        }
        if left.tv_sec == 0 && left.tv_usec == 0 { left.tv_usec = 1 }
        setsockopt(fd, SOL_SOCKET, option, &left, socklen_t(MemoryLayout<timeval>.size))
    }
}
