import FastCGI
import FoundationEssentials
import Logging
import Metrics
import Posix
import Receiver

/// `drain --to-url`'s side of the drainer: claimed deliveries go to worker
/// threads, each owning one `HTTPConnection` (kept alive between requests),
/// and come back through a pipe the drainer's `poll` watches. Everything but
/// the transfer itself (claims, the breaker, the circuit file, metrics) stays
/// on the drainer's thread.
final class HTTPForwarder {
    /// A finished transfer, back on the drainer's thread.
    struct Finished {
        let claim: Claim
        let attempt: Int
        let started: ContinuousClock.Instant
        let result: Result<HTTPResponse, HTTPTransferError>
        /// nil: cut short by drain's shutdown; the outcome is unknown.
        let verdict: ForwardVerdict?
        let outcome: String
    }

    private struct Job: Sendable {
        let number: Int
        let envelope: StoredEnvelope
        let attempt: Int
    }

    private struct Done: Sendable {
        let number: Int
        let result: Result<HTTPResponse, HTTPTransferError>
    }

    /// The queues the worker threads share with the drainer's thread.
    private final class Shared: Sendable {
        let jobs = Locked<[Job]>([])
        let done = Locked<[Done]>([])
        let abort = TransferAbort()
    }

    /// Readable when a transfer has finished: for the drainer's `poll`.
    let fd: Int32
    private let doneWrite: Int32
    private let jobWrite: Int32
    private let jobRead: Int32
    private let forwarding: HTTPForwarding
    private let shared = Shared()
    private var threads: [WorkerThread] = []
    private var pending: [Int: (claim: Claim, attempt: Int, started: ContinuousClock.Instant)] = [:]
    private var nextNumber = 0
    private(set) var breaker: URLCircuitBreaker
    private let circuitFile: CircuitFile
    private let clock = ContinuousClock()
    private let logger: Logger

    init(_ forwarding: HTTPForwarding, workers: Int, spool: DrainSpool, logger: Logger) throws(SystemError) {
        self.forwarding = forwarding
        self.logger = logger
        breaker = URLCircuitBreaker(forwarding.breaker)
        circuitFile = CircuitFile(spool: spool, url: forwarding.endpoint.description)
        let done = try makePipe(nonBlocking: .read)
        try? Sys.setBlocking(done.write, false)
        let jobs: (read: Int32, write: Int32)
        do {
            jobs = try makePipe(nonBlocking: .read)
        } catch {
            Sys.closeIgnoringError(done.read)
            Sys.closeIgnoringError(done.write)
            throw error
        }
        // Workers block on the job pipe; only the read end is made blocking again.
        try? Sys.setBlocking(jobs.read, true)
        (fd, doneWrite, jobWrite) = (done.read, done.write, jobs.write)
        let (shared, jobRead, doneWrite) = (shared, jobs.read, done.write)
        self.jobRead = jobRead
        for _ in 0..<workers {
            threads.append(
                WorkerThread(named: "hg-forward-\(threads.count + 1)") {
                    Self.work(forwarding, shared: shared, jobs: jobRead, done: doneWrite)
                })
        }
        circuitFile.write(breaker, now: clock.now)
    }

    var inFlight: Int { pending.count }
    var isIdle: Bool { pending.isEmpty }

    /// Whether the breaker lets one more request out now (a probe counts).
    func mayStart() -> Bool {
        breaker.allowsRequest(now: clock.now)
    }

    /// When the breaker lets requests out again, if it is open.
    var reopensAt: ContinuousClock.Instant? { breaker.reopensAt }

    func start(_ claim: Claim, envelope: StoredEnvelope, attempt: Int) {
        let before = breaker
        breaker.requestStarted(now: clock.now)
        if breaker != before {
            circuitFile.write(breaker, now: clock.now)
            logger.notice("circuit probing: one request goes out", metadata: ["url": "\(forwarding.endpoint)"])
        }
        nextNumber += 1
        pending[nextNumber] = (claim, attempt, clock.now)
        let job = Job(number: nextNumber, envelope: envelope, attempt: attempt)
        shared.jobs.withLock { $0.append(job) }
        // A pipe write of one byte is whole; the pipe holds far more jobs than the workers.
        try? Sys.write(jobWrite, byte: 1)
    }

    /// The transfers finished since the last call, with their verdicts; the
    /// breaker, circuit file and metrics are updated.
    func collect() -> [Finished] {
        Sys.drain(fd)
        let done = shared.done.withLock { done in
            defer { done.removeAll() }
            return done
        }
        let now = clock.now
        let before = breaker
        let finished = done.compactMap { item -> Finished? in
            guard let job = pending.removeValue(forKey: item.number) else { return nil }
            return finish(job.claim, attempt: job.attempt, started: job.started, result: item.result, now: now)
        }
        if breaker != before {
            circuitFile.write(breaker, now: now)
            logBreaker(from: before)
        }
        return finished
    }

    /// Ends every running transfer within about a second: shutdown's grace ran out.
    func abortTransfers() {
        shared.abort.abort()
    }

    /// Lets the workers go once nothing is in flight, and removes the circuit file.
    func stop() {
        Sys.closeIgnoringError(jobWrite)
        for thread in threads { thread.join() }
        threads.removeAll()
        for end in [jobRead, fd, doneWrite] { Sys.closeIgnoringError(end) }
        circuitFile.remove()
    }

    private func logBreaker(from before: URLCircuitBreaker) {
        let url = "\(forwarding.endpoint)"
        switch breaker.state {
        case .open:
            logger.warning(
                "circuit open: no requests for a while",
                metadata: [
                    "url": "\(url)", "consecutive_failures": "\(breaker.consecutiveFailures)",
                    "pause": "\(breaker.currentPause.shortDescription)",
                ])
        case .closed where before.state != .closed:
            logger.notice("circuit closed: the service answers again", metadata: ["url": "\(url)"])
        default:
            break
        }
    }

    private func finish(
        _ claim: Claim, attempt: Int, started: ContinuousClock.Instant,
        result: Result<HTTPResponse, HTTPTransferError>, now: ContinuousClock.Instant
    ) -> Finished {
        let verdict: ForwardVerdict?
        let outcome: String
        let statusClass: String
        switch result {
        case .success(let response):
            verdict = forwarding.verdict(status: response.status)
            let head = String(decoding: response.bodyHead.prefix(200), as: UTF8.self)
            outcome = "HTTP \(response.status)" + (head.isEmpty ? "" : ": \(head)")
            statusClass = "\(response.status / 100)xx"
        case .failure(let error):
            verdict = error.kind == .aborted ? nil : .retry
            outcome =
                switch error.kind {
                case .timedOut: "timed out after \(forwarding.connection.timeout.shortDescription): \(error.message)"
                case .aborted: "stopped by shutdown"
                case .failed: "request failed: \(error.message)"
                }
            statusClass = "none"
        }
        switch verdict {
        case .retry?: breaker.recordFailure(now: now)
        case .delivered?, .refused?: breaker.recordSuccess()
        case nil: break
        }
        let outcomeLabel =
            switch verdict {
            case .delivered?: "delivered"
            case .retry?: "retried"
            case .refused?: "refused"
            case nil: "interrupted"
            }
        Counter(
            label: "hookguard_forwarded_total", dimensions: [("outcome", outcomeLabel), ("status_class", statusClass)]
        )
        .increment()
        DeliveryMetrics.forward(
            to: .http(url: forwarding.endpoint.description), succeeded: verdict == .delivered,
            nanoseconds: UInt64(max(0, (now - started).seconds) * 1e9))
        return Finished(
            claim: claim, attempt: attempt, started: started, result: result, verdict: verdict, outcome: outcome)
    }

    /// One worker thread: takes a job per token on the job pipe until the
    /// pipe closes, with a connection of its own made at the first job.
    private static func work(_ forwarding: HTTPForwarding, shared: Shared, jobs: Int32, done: Int32) {
        var connection: HTTPConnection? = nil
        var setupError: String? = nil
        while true {
            guard (try? Sys.readByte(jobs)) != nil else { return }
            guard let job = shared.jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            if connection == nil && setupError == nil {
                do {
                    connection = try HTTPConnection(
                        endpoint: forwarding.endpoint, options: forwarding.connection,
                        abort: shared.abort)
                } catch {
                    setupError = "cannot set up the connection: \(error)"
                }
            }
            let result: Result<HTTPResponse, HTTPTransferError>
            if let connection {
                do {
                    let headers = try forwarding.requestHeaders(
                        for: job.envelope, attempt: job.attempt, now: Sys.wallClock().seconds)
                    result = connection.post(headers: headers, body: job.envelope.body)
                } catch {
                    result = .failure(HTTPTransferError(kind: .failed, message: "cannot sign: \(error)"))
                }
            } else {
                result = .failure(HTTPTransferError(kind: .failed, message: setupError ?? "no connection"))
            }
            shared.done.withLock { $0.append(Done(number: job.number, result: result)) }
            // A full pipe already says "look": a write that would block is dropped.
            try? Sys.write(done, byte: 1)
        }
    }
}
