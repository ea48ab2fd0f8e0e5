import FastCGI
package import Posix

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
    private let idle = Locked<[String: [ReaderConnection]]>([:])

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
        } catch  where error.kind == .write || error.kind == .acknowledge {
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
        guard path.utf8.count <= Sys.maxUnixSocketPathBytes else {
            throw SocketForwardError(kind: .connect, path: path, detail: "path too long for a Unix socket")
        }
        do {
            return ReaderConnection(fd: try Sys.connectUnix(path, deadline: deadline), path: path)
        } catch  where error.isSocketTimeout {
            throw SocketForwardError(kind: .timeout, path: path, detail: "connection")
        } catch {
            let detail = error.call == "connect" ? error.reason : "\(error.call): \(error.reason)"
            throw SocketForwardError(kind: .connect, path: path, detail: detail)
        }
    }

    package func close() {
        Sys.closeIgnoringError(fd)
    }

    /// False when the reader has hung up (or sent something unasked) while the
    /// connection sat idle: such a connection is not reused.
    var isOpenForWriting: Bool { Sys.isQuiet(fd) }

    func deliver(_ line: [UInt8], acknowledged: Bool, deadline: Deadline) throws(SocketForwardError) {
        try write(line, deadline: deadline)
        if acknowledged { try awaitAcknowledgement(deadline: deadline) }
    }

    private func write(_ line: [UInt8], deadline: Deadline) throws(SocketForwardError) {
        var offset = 0
        while offset < line.count {
            try setTimeout(.send, deadline, waitingFor: "write")
            offset += try step(.write, timingOut: "write of the whole line") { () throws(SystemError) in
                try Sys.send(fd, line, from: offset)
            }
        }
    }

    /// Reads the reader's answer line; it must start with `ok`.
    private func awaitAcknowledgement(deadline: Deadline) throws(SocketForwardError) {
        var answer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 256)
        while !answer.contains(UInt8(ascii: "\n")) {
            try setTimeout(.receive, deadline, waitingFor: "acknowledgement")
            let received = try step(.acknowledge, timingOut: "acknowledgement") { () throws(SystemError) in
                try Sys.receive(fd, into: &chunk, path: path)
            }
            if received == 0 {
                throw SocketForwardError(
                    kind: .acknowledge, path: path, detail: "reader closed the connection before acknowledging")
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

    /// One send or receive; its failure as `kind`, or as a timeout waiting for `what`.
    private func step(
        _ kind: SocketForwardError.Kind, timingOut what: String, _ call: () throws(SystemError) -> Int
    ) throws(SocketForwardError) -> Int {
        do {
            return try call()
        } catch  where error.isSocketTimeout {
            throw SocketForwardError(kind: .timeout, path: path, detail: what)
        } catch {
            throw SocketForwardError(kind: kind, path: path, detail: error.reason)
        }
    }

    private func setTimeout(_ which: SocketTimeout, _ deadline: Deadline, waitingFor what: String)
        throws(SocketForwardError)
    {
        let set: Bool
        do {
            set = try Sys.setTimeout(fd, which, remainingOf: deadline, path: path)
        } catch {
            throw SocketForwardError(kind: .connect, path: path, detail: error.description)
        }
        if !set { throw SocketForwardError(kind: .timeout, path: path, detail: what) }
    }
}
