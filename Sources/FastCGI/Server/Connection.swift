import CFastCGI
import Glibc
import Posix

/// One accepted connection. Whoever holds its descriptor owns it: the
/// waiting room while it has nothing to read, then the worker serving it.
struct Connection {
    let fd: Int32

    /// Every read and write on it waits at most `seconds`. (A Unix-socket
    /// connection does not inherit these from the listening socket.)
    func setTimeouts(_ seconds: Double) throws(SystemError) {
        var limit = timeval()
        limit.tv_sec = Int(seconds)
        limit.tv_usec = Int((seconds - seconds.rounded(.down)) * 1_000_000)
        for option in [SO_RCVTIMEO, SO_SNDTIMEO] {
            try syscall("setsockopt", path: "accepted connection") {
                setsockopt(fd, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
            }
        }
    }

    /// Closes it. `lingering` seconds > 0: first says it is done sending
    /// and reads what the web server still sends, until it closes its side
    /// or the time is up, so that unread data does not make the kernel
    /// reset the connection and lose the answer.
    func close(lingering seconds: Double = 0) {
        if seconds > 0, Glibc.shutdown(fd, Int32(SHUT_WR)) == 0 {
            let deadline = Deadline(after: seconds)
            var trash = [UInt8](repeating: 0, count: 4096)
            while let remaining = deadline.remainingMilliseconds {
                var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&ready, 1, Int32(clamping: remaining)) > 0,
                    recv(fd, &trash, trash.count, Int32(MSG_DONTWAIT)) > 0
                else { break }
            }
        }
        _ = Glibc.close(fd)
    }
}

/// A pipe whose ends are not inherited by programs hookguard starts.
struct Pipe {
    let read: Int32
    let write: Int32

    /// `nonBlocking`: neither end ever blocks (reads and writes fail with EAGAIN instead).
    init(nonBlocking: Bool = false) throws(SystemError) {
        var fds: [Int32] = [-1, -1]
        try syscall("pipe2") { hookguard_pipe_cloexec(&fds, nonBlocking ? 1 : 0) }
        read = fds[0]
        write = fds[1]
    }

    func close() {
        _ = Glibc.close(read)
        _ = Glibc.close(write)
    }

    /// Passes a connection to whoever reads the pipe; false if the pipe is full.
    func send(_ connection: Connection) -> Bool {
        var fd = connection.fd
        // 4 bytes, under PIPE_BUF: written and read whole, never interleaved.
        return Glibc.write(write, &fd, 4) == 4
    }

    /// The next connection sent, or nil when there is none (another reader took it).
    func receive() -> Connection? {
        var fd: Int32 = -1
        return Glibc.read(read, &fd, 4) == 4 ? Connection(fd: fd) : nil
    }
}

/// Counts events and says when to report them: at most once per `interval`
/// seconds, with how many happened since the last report.
final class RateLimitedCount: Sendable {
    private let interval: Double
    private let state = Locked<(lastReport: Double, count: Int)>((-Double.infinity, 0))

    init(interval: Double) {
        self.interval = interval
    }

    /// Records one event; returns the count to report, or nil to stay quiet.
    func record() -> Int? {
        let now = Double(monotonicNanoseconds()) / 1e9
        return state.withLock { state in
            state.count += 1
            guard now - state.lastReport >= interval else { return nil }
            defer { state = (now, 0) }
            return state.count
        }
    }
}
