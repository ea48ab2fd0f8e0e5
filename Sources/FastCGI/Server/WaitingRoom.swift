import CFastCGI
import Glibc
import Posix

/// The connections with nothing to read yet: new ones before their first
/// record, and kept ones (FCGI_KEEP_CONN) between requests. One thread
/// accepts them and watches them all with poll(2), so a connection that
/// sends nothing never holds a worker: the first one that has something to
/// read goes to `ready`, where a worker takes it. A new connection silent
/// for the read timeout, or a kept one for the idle timeout, is closed.
final class WaitingRoom: Sendable {
    /// Readable connections, for the workers (non-blocking: idle workers race for each).
    let ready: Pipe
    /// Kept connections the workers give back after a request.
    let returned: Pipe
    private let listener: Listener
    private let wakeFd: Int32
    private let timeouts: FastCGIServer.Timeouts
    private let capacity: Int
    private let acceptFailed: @Sendable (SystemError) -> Void

    /// `wakeFd` becomes readable when the server stops. At most `capacity`
    /// connections wait here; more stay in the listening socket's backlog.
    init(
        listener: Listener, wakeFd: Int32, timeouts: FastCGIServer.Timeouts, capacity: Int,
        acceptFailed: @escaping @Sendable (SystemError) -> Void
    ) throws(SystemError) {
        ready = try Pipe(nonBlocking: true)
        returned = try Pipe(nonBlocking: true)
        self.listener = listener
        self.wakeFd = wakeFd
        self.timeouts = timeouts
        self.capacity = capacity
        self.acceptFailed = acceptFailed
    }

    /// Watches until the server stops, then closes every connection still
    /// waiting (those already in `ready` are the server's to close).
    func run() {
        var waiting: [(connection: Connection, deadline: Deadline)] = []
        var acceptingAgainAt: Deadline?
        defer {
            for entry in waiting { entry.connection.close() }
            while let connection = returned.receive() { connection.close() }
        }
        while true {
            if let pause = acceptingAgainAt, pause.remainingMilliseconds == nil { acceptingAgainAt = nil }
            let accepting = waiting.count < capacity && acceptingAgainAt == nil
            // poll(2) skips a negative descriptor: the listening socket, while not accepting.
            var watched = [
                pollfd(fd: wakeFd, events: Int16(POLLIN), revents: 0),
                pollfd(fd: returned.read, events: Int16(POLLIN), revents: 0),
                pollfd(fd: accepting ? listener.fd : -1, events: Int16(POLLIN), revents: 0),
            ]
            watched += waiting.map { pollfd(fd: $0.connection.fd, events: Int16(POLLIN), revents: 0) }
            let next = (waiting.map(\.deadline) + (acceptingAgainAt.map { [$0] } ?? [])).min()
            let timeout = next.map { Int32(clamping: $0.remainingMilliseconds ?? 0) } ?? -1
            guard poll(&watched, nfds_t(watched.count), timeout) >= 0 else { continue }  // EINTR
            if watched[0].revents != 0 { return }

            var stillWaiting: [(connection: Connection, deadline: Deadline)] = []
            for (index, entry) in waiting.enumerated() {
                if watched[3 + index].revents != 0 {
                    if !ready.send(entry.connection) { entry.connection.close() }
                } else if entry.deadline.remainingMilliseconds == nil {
                    entry.connection.close()  // silent for the whole timeout
                } else {
                    stillWaiting.append(entry)
                }
            }
            waiting = stillWaiting
            if watched[1].revents != 0 {
                while let kept = returned.receive() { waiting.append((kept, Deadline(after: timeouts.idle))) }
            }
            if accepting && watched[2].revents != 0 {
                while waiting.count < capacity {
                    do throws(SystemError) {
                        guard let connection = try accept() else { break }
                        waiting.append((connection, Deadline(after: timeouts.read)))
                    } catch {
                        acceptFailed(error)
                        // Out of descriptors or memory: wait a little instead of spinning.
                        acceptingAgainAt = Deadline(after: 0.1)
                        break
                    }
                }
            }
        }
    }

    /// A new connection with its timeouts set; nil when there is none left
    /// to take (another process sharing the socket took it, or its client
    /// gave up before it was taken).
    private func accept() throws(SystemError) -> Connection? {
        guard let fd = try listener.accept() else { return nil }
        let connection = Connection(fd: fd)
        do {
            try connection.setTimeouts(timeouts.read)
        } catch {
            connection.close()
            throw error
        }
        return connection
    }
}
