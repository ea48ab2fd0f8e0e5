import FastCGI
import Posix
import Receiver

/// One command running for one claimed delivery.
final class RunningCommand {
    let claim: Claim
    let process: ChildProcess
    let attempt: Int
    let started: ContinuousClock.Instant
    let deadline: ContinuousClock.Instant?
    private(set) var stdin: Int32?
    private(set) var stderr: Int32?
    private var body: [UInt8]
    private var written = 0
    var stderrTail = TailBuffer(limit: AttemptRecord.stderrTailBytes)
    var timedOut = false
    var interrupted = false
    var killAt: ContinuousClock.Instant?

    init(
        claim: Claim, process: ChildProcess, attempt: Int, body: [UInt8], started: ContinuousClock.Instant,
        deadline: ContinuousClock.Instant?
    ) {
        self.claim = claim
        self.process = process
        self.attempt = attempt
        self.body = body
        self.started = started
        self.deadline = deadline
        stdin = process.stdin
        stderr = process.stderr
    }

    /// Writes as much of the body as the pipe takes; closes it when all is
    /// written or the command stopped reading (EPIPE: not drain's failure).
    func writeInput() {
        guard let fd = stdin else { return }
        do throws(SystemError) {
            while written < body.count {
                let count = try Sys.write(fd, body, from: written, path: "command input")
                guard count > 0 else { break }
                written += count
            }
        } catch  where error.wouldBlock {
            return
        } catch {}
        closeInput()
    }

    func closeInput() {
        guard let fd = stdin else { return }
        Sys.closeIgnoringError(fd)
        stdin = nil
        body = []
    }

    /// Reads what the command wrote to standard error: passed on to drain's
    /// own, the end kept for the attempt record.
    func readErrors() {
        guard let fd = stderr else { return }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            do throws(SystemError) {
                let count = try Sys.read(fd, into: &chunk)
                guard count > 0 else { break }
                try? writeAll(Sys.standardError, Array(chunk[..<count]), path: "standard error")
                stderrTail.append(chunk[..<count])
            } catch  where error.wouldBlock {
                return
            } catch {
                break
            }
        }
        closeErrors()
    }

    func closeErrors() {
        guard let fd = stderr else { return }
        Sys.closeIgnoringError(fd)
        stderr = nil
    }

    func terminate(now: ContinuousClock.Instant, killDelay: Duration) {
        process.signalGroup(Signal.terminate)
        killAt = now + killDelay
    }
}

/// The last `limit` bytes appended.
struct TailBuffer {
    let limit: Int
    private(set) var bytes: [UInt8] = []

    init(limit: Int) {
        self.limit = limit
    }

    mutating func append(_ chunk: some Collection<UInt8>) {
        bytes.append(contentsOf: chunk.suffix(limit))
        if bytes.count > limit { bytes.removeFirst(bytes.count - limit) }
    }

    /// As text, invalid UTF-8 (a character cut at the start) replaced.
    var text: String { String(decoding: bytes, as: UTF8.self) }
}
