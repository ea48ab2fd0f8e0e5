import FastCGI
import FoundationEssentials
package import Logging
package import Posix
import Receiver

/// How `hookguard drain` runs a command for each delivery.
package struct DrainOptions: Sendable {
    /// The command's executable, an absolute path (see `resolveExecutable`).
    package var executable: String
    /// The command line as given, its first word included (the command's argv).
    package var arguments: [String]
    package var concurrency: Int
    package var maxAttempts: Int
    package var backoff: Backoff
    /// Longest a command may run; then it counts as failed.
    package var timeout: Duration?
    /// How long running commands may go on after SIGTERM or SIGINT.
    package var grace: Duration
    /// Keep running, waiting for new deliveries, until SIGTERM or SIGINT.
    package var follow: Bool
    /// Between the SIGTERM and the SIGKILL sent to a command's process group.
    package var killDelay: Duration
    /// With `follow`, how often the spool is listed again besides inotify's
    /// events: a delivery that could not be read (permissions) is retried then.
    package var rescanInterval: Duration
    /// `--to-url`: POST each delivery there instead of running the command.
    package var forwarding: HTTPForwarding?

    package init(
        executable: String, arguments: [String], concurrency: Int = 1, maxAttempts: Int = 8,
        backoff: Backoff = Backoff(base: .seconds(10)), timeout: Duration? = nil, grace: Duration = .seconds(30),
        follow: Bool = false, killDelay: Duration = .seconds(2), rescanInterval: Duration = .seconds(60),
        forwarding: HTTPForwarding? = nil
    ) {
        self.executable = executable
        self.arguments = arguments
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.timeout = timeout
        self.grace = grace
        self.follow = follow
        self.killDelay = killDelay
        self.rescanInterval = rescanInterval
        self.forwarding = forwarding
    }
}

/// What one run of drain did.
package struct DrainSummary: Sendable, Equatable {
    package var delivered = 0
    package var failedAttempts = 0
    package var movedToFailed = 0
    package var interrupted = 0
    /// Deliveries left where they were because drain could not read them.
    package var unreadable = 0

    package init() {}
}

/// The spool consumer: claims deliveries oldest first, runs the command for
/// each with its body on standard input, removes a delivery once its command
/// exits 0, and retries failures with backoff until they move to `failed/`.
///
/// One thread runs everything, waiting in `poll` for signals (SIGTERM, SIGINT,
/// SIGCHLD), inotify events on `new/` and `cur/`, and the commands' pipes.
/// New deliveries are noticed by inotify; an entry another process holds is
/// tried again when a descriptor on it closes (inotify again), so nothing is
/// polled.
package final class Drainer {
    private let spool: DrainSpool
    private let options: DrainOptions
    private let logger: Logger
    private let baseEnvironment: [String]
    private let clock = ContinuousClock()

    private var queue = EntryQueue()
    /// Entries waiting for their next attempt, released until then.
    private var retryAt: [EntryName: Date] = [:]
    /// Entries another process holds, with the descriptor kept to try again.
    private var heldElsewhere: [EntryName: Int32] = [:]
    private var jobs: [Int32: RunningCommand] = [:]
    private var running: Set<EntryName> = []
    /// Claims kept across a failed attempt because a process the command left
    /// running holds the delivery's lock too (see `failed`).
    private var keptClaims: [EntryName: Claim] = [:]
    /// Deliveries that could not be opened or read, with why; tried again at each rescan.
    private var unreadable: [EntryName: String] = [:]
    /// When each entry held elsewhere was first found held, until it is
    /// reported (once, after `rescanInterval`: another drain's command
    /// holding it for a moment is no news).
    private var heldSince: [EntryName: ContinuousClock.Instant] = [:]
    private var reportedHeld: Set<EntryName> = []
    private var nextRescan: ContinuousClock.Instant?
    private var stopping = false
    private var stopDeadline: ContinuousClock.Instant?
    private var summary = DrainSummary()
    /// With `options.forwarding`: the HTTP requests in flight, on threads of their own.
    private var forwarder: HTTPForwarder?

    package init(spool: DrainSpool, options: DrainOptions, logger: Logger) {
        self.spool = spool
        self.options = options
        self.logger = logger
        let ours: Set<String> = [
            "HOOKGUARD_ID", "HOOKGUARD_EVENT", "HOOKGUARD_SCHEME", "HOOKGUARD_DELIVERY_ID",
            "HOOKGUARD_ENVELOPE", "HOOKGUARD_ATTEMPT",
        ]
        baseEnvironment = ProcessInfo.processInfo.environment
            .filter { !ours.contains($0.key) }
            .map { "\($0.key)=\($0.value)" }
            .sorted()
    }

    /// Drains until the spool holds nothing left to run or wait for (with
    /// `follow`, until SIGTERM or SIGINT), then returns. Call it before any
    /// other thread is started: it blocks SIGTERM, SIGINT and SIGCHLD to take
    /// them itself.
    package func run() throws(SystemError) -> DrainSummary {
        let signals = try SignalPipe([Signal.terminate, Signal.interrupt, Signal.child])
        // A command that exits without reading its input must not kill drain.
        Sys.ignoreSignal(Signal.brokenPipe)
        try spool.prepare()
        let watcher = try DirectoryWatcher()
        typealias Change = DirectoryWatcher.Change
        let closed = Change.closedAfterWriting | Change.closedUnwritten
        try watcher.watch(spool.new, for: Change.movedIn | Change.movedOut | Change.deleted | closed)
        try watcher.watch(spool.cur, for: Change.movedOut | Change.deleted | closed)
        if let forwarding = options.forwarding {
            forwarder = try HTTPForwarder(forwarding, workers: options.concurrency, spool: spool, logger: logger)
        }
        defer { forwarder?.stop() }
        let repaired = try spool.repairRecords()
        if repaired > 0 { logger.notice("finished steps a crash interrupted", metadata: ["files": "\(repaired)"]) }
        sweepStaleStaged()
        try scan()
        if options.follow { nextRescan = clock.now + options.rescanInterval }
        logger.notice(
            "draining",
            metadata: [
                "spool": "\(spool.root)", "follow": "\(options.follow)", "concurrency": "\(options.concurrency)",
                "waiting": "\(queue.count)",
            ])

        while true {
            if !stopping { startWhatIsDue() }
            if isFinished { break }
            var fds = [Watched(reading: signals.fd), Watched(reading: watcher.fd)]
            var pipes: [(job: RunningCommand, input: Bool)] = []
            for job in jobs.values {
                if let fd = job.stdin {
                    fds.append(Watched(writing: fd))
                    pipes.append((job, true))
                }
                if let fd = job.stderr {
                    fds.append(Watched(reading: fd))
                    pipes.append((job, false))
                }
            }
            if let forwarder { fds.append(Watched(reading: forwarder.fd)) }
            try Sys.poll(&fds, milliseconds: nextWakeMilliseconds())
            for signal in signals.received() where signal == Signal.terminate || signal == Signal.interrupt {
                beginStop(signal)
            }
            if fds[1].isReady {
                switch try watcher.read() {
                case .events(let events): for event in events { notice(event) }
                case .overflowed: try scan()
                }
            }
            for (index, pipe) in pipes.enumerated() where fds[index + 2].isReady {
                if pipe.input { pipe.job.writeInput() } else { pipe.job.readErrors() }
            }
            while let (pid, status) = Sys.reapAnyChild() {
                if let job = jobs.removeValue(forKey: pid) { finish(job, status) }
            }
            for forwarded in forwarder?.collect() ?? [] { finish(forwarded) }
            handleTimers()
            if let due = nextRescan, due <= clock.now, !stopping {
                sweepStaleStaged()
                try scan()
                nextRescan = clock.now + options.rescanInterval
            }
        }
        if !jobs.isEmpty {
            logger.error(
                "commands still running after SIGKILL; exiting without them (their deliveries stay in cur/)",
                metadata: ["pids": "\(jobs.keys.sorted().map(String.init).joined(separator: ","))"])
        }
        for fd in heldElsewhere.values { Sys.closeIgnoringError(fd) }
        heldElsewhere.removeAll()
        releaseKeptClaims()
        summary.unreadable = unreadable.count
        if !unreadable.isEmpty {
            logger.error(
                "left deliveries it could not read",
                metadata: [
                    "spool": "\(spool.root)", "deliveries": "\(unreadable.count)",
                    "ids": "\(unreadable.keys.sorted().prefix(20).map(\.stem).joined(separator: ","))",
                ])
        }
        logger.notice(
            "stopped",
            metadata: [
                "spool": "\(spool.root)", "delivered": "\(summary.delivered)",
                "failed_attempts": "\(summary.failedAttempts)",
                "moved_to_failed": "\(summary.movedToFailed)", "interrupted": "\(summary.interrupted)",
                "unreadable": "\(summary.unreadable)",
            ])
        return summary
    }

    /// After SIGTERM: the grace, then SIGTERM to what still runs, SIGKILL
    /// `killDelay` later, and one more second for it to be reaped; then drain
    /// exits whatever is left (a process stuck in the kernel ignores SIGKILL).
    private var hardStopDeadline: ContinuousClock.Instant? {
        stopDeadline.map { $0 + options.killDelay + .seconds(1) }
    }

    private var isFinished: Bool {
        let idle = jobs.isEmpty && forwarder?.isIdle ?? true
        if stopping { return idle || hardStopDeadline.map { $0 <= clock.now } == true }
        if options.follow { return false }
        return idle && queue.isEmpty && retryAt.isEmpty && heldElsewhere.isEmpty
    }

    // MARK: finding deliveries

    private func scan() throws(SystemError) {
        for place in [Place.new, .cur] {
            for entry in try spool.entries(in: place) { enqueue(entry) }
        }
    }

    private func notice(_ event: DirectoryWatcher.Event) {
        guard let entry = EntryName(envelopeFile: event.name) else { return }
        let arrived =
            event.directory == spool.new
            && (event.has(DirectoryWatcher.Change.movedIn) || event.has(DirectoryWatcher.Change.closedAfterWriting))
        // Anything else matters only for an entry held elsewhere: its holder may be gone.
        if arrived || heldElsewhere[entry] != nil { enqueue(entry) }
    }

    private func enqueue(_ entry: EntryName) {
        guard !stopping, !running.contains(entry), retryAt[entry] == nil else { return }
        queue.insert(entry)
    }

    private func startWhatIsDue() {
        while jobs.count + (forwarder?.inFlight ?? 0) < options.concurrency, forwarder?.mayStart() ?? true,
            let entry = queue.popFirst()
        {
            if let kept = keptClaims.removeValue(forKey: entry) {
                start(kept)
                continue
            }
            let held = heldElsewhere.removeValue(forKey: entry)
            do {
                switch try spool.acquire(entry, reusing: held) {
                case .gone:
                    unreadable[entry] = nil
                    forgetHeld(entry)
                case .busy(let fd):
                    unreadable[entry] = nil  // another process could open it: theirs to run
                    heldElsewhere[entry] = fd
                    if heldSince[entry] == nil { heldSince[entry] = clock.now }
                case .claimed(let claim):
                    forgetHeld(entry)
                    start(claim)
                }
            } catch {
                couldNotRead(entry, error)
            }
        }
    }

    /// Says once which processes hold an entry drain has waited for since
    /// `rescanInterval`: another drain's command, or a process a command left
    /// running with its fd 3.
    private func reportLongHeld(now: ContinuousClock.Instant) {
        for (entry, since) in heldSince where now - since >= options.rescanInterval && !reportedHeld.contains(entry) {
            guard let fd = heldElsewhere[entry] else { continue }
            reportedHeld.insert(entry)
            let holders = processesHolding(fd)
            logger.notice(
                "delivery held by another process; it runs once that process closes it",
                metadata: [
                    "id": "\(entry)", "held_for": "\((now - since).shortDescription)",
                    "holders": "\(holders.isEmpty ? "other drains" : holders.map(String.init).joined(separator: ","))",
                ])
        }
    }

    private func forgetHeld(_ entry: EntryName) {
        heldSince[entry] = nil
        reportedHeld.remove(entry)
    }

    /// A delivery drain may not open or read (permissions): left where it is,
    /// tried again at each rescan (`--follow`); drain exits non-zero if it
    /// is still unread when drain ends.
    private func couldNotRead(_ entry: EntryName, _ error: any Error) {
        let detail = "\(error)"
        guard unreadable.updateValue(detail, forKey: entry) != detail else { return }
        logger.error(
            "cannot read delivery; left where it is",
            metadata: [
                "id": "\(entry)", "detail": "\(detail)",
                "retry":
                    "\(options.follow ? "at the next rescan, within \(options.rescanInterval.shortDescription)" : "on the next run")",
            ])
    }

    private func releaseKeptClaims() {
        for claim in keptClaims.values { claim.release() }
        keptClaims.removeAll()
    }

    /// Removes what a crash or a moved spool left in `tmp/` (see `Spool.removeStaleStaged`).
    private func sweepStaleStaged() {
        do {
            let removed = try Spool(root: spool.root).removeStaleStaged()
            if !removed.isEmpty { logger.sweptStaleStaged(spool: spool.root, removed: removed, error: nil) }
        } catch {
            logger.sweptStaleStaged(spool: spool.root, removed: [], error: error)
        }
    }

    // MARK: running a command

    private func start(_ claim: Claim) {
        let attempt = claim.failedAttempts + 1
        if claim.failedAttempts >= options.maxAttempts, let record = claim.record {
            // Its last attempt failed before a crash let it reach failed/.
            giveUp(claim, record)
            return
        }
        if let next = claim.record?.nextAttemptAt, next > Date() {
            retryAt[claim.entry] = next
            claim.release()
            return
        }
        let envelope: StoredEnvelope
        do {
            envelope = try StoredEnvelope(decoding: claim.readEnvelope())
        } catch let error as EnvelopeReadError {
            // It will never read better: no point in retrying.
            giveUp(
                claim,
                AttemptRecord(
                    attempts: attempt, lastAttemptAt: Date(), nextAttemptAt: nil,
                    outcome: "envelope unreadable: \(error)"))
            return
        } catch {
            claim.release()
            couldNotRead(claim.entry, error)
            return
        }
        unreadable[claim.entry] = nil
        if let forwarder {
            forwarder.start(claim, envelope: envelope, attempt: attempt)
            running.insert(claim.entry)
            return
        }
        let environment =
            baseEnvironment + [
                "HOOKGUARD_ID=\(envelope.id)",
                "HOOKGUARD_EVENT=\(envelope.event ?? "")",
                "HOOKGUARD_SCHEME=\(envelope.scheme)",
                "HOOKGUARD_DELIVERY_ID=\(envelope.deliveryID ?? "")",
                "HOOKGUARD_ENVELOPE=\(claim.envelopePath)",
                "HOOKGUARD_ATTEMPT=\(attempt)",
            ]
        let process: ChildProcess
        do {
            process = try ChildProcess.spawn(
                executable: options.executable, arguments: options.arguments, environment: environment,
                inherit: claim.fd)
        } catch {
            failed(
                claim, attempt: attempt, outcome: "could not start: \(error)", status: nil, timedOut: false, stderr: "")
            return
        }
        let now = clock.now
        let job = RunningCommand(
            claim: claim, process: process, attempt: attempt, body: envelope.body, started: now,
            deadline: options.timeout.map { now + $0 })
        jobs[process.pid] = job
        running.insert(claim.entry)
        job.writeInput()
        logger.debug("started", metadata: ["id": "\(envelope.id)", "attempt": "\(attempt)", "pid": "\(process.pid)"])
    }

    private func finish(_ job: RunningCommand, _ status: ExitStatus) {
        running.remove(job.claim.entry)
        job.closeInput()
        job.readErrors()
        job.closeErrors()
        let metadata: Logger.Metadata = [
            "id": "\(job.claim.entry)", "attempt": "\(job.attempt)",
            "duration_ms": "\(WebhookHandler.milliseconds(UInt64(max(0, (clock.now - job.started).seconds) * 1e9)))",
        ]
        if status.succeeded && !job.timedOut {
            do {
                try job.claim.complete()
                summary.delivered += 1
                logger.info("delivered", metadata: metadata)
            } catch {
                logger.error(
                    "command succeeded but the delivery could not be removed; it will run again",
                    metadata: metadata.merging(["detail": "\(error)"]) { $1 })
            }
            return
        }
        if job.interrupted && !job.timedOut {
            job.claim.release()
            summary.interrupted += 1
            logger.warning(
                "command stopped by shutdown; the delivery stays in cur/ for the next run",
                metadata: metadata.merging(["status": "\(status)"]) { $1 })
            return
        }
        let outcome = job.timedOut ? "timed out after \(options.timeout?.shortDescription ?? "?")" : status.description
        failed(
            job.claim, attempt: job.attempt, outcome: outcome, status: status, timedOut: job.timedOut,
            stderr: job.stderrTail.text)
    }

    /// A forwarded delivery's request ended: `finish(_:_:)`'s counterpart for `--to-url`.
    private func finish(_ forwarded: HTTPForwarder.Finished) {
        let claim = forwarded.claim
        running.remove(claim.entry)
        var metadata: Logger.Metadata = [
            "id": "\(claim.entry)", "attempt": "\(forwarded.attempt)",
            "duration_ms":
                "\(WebhookHandler.milliseconds(UInt64(max(0, (clock.now - forwarded.started).seconds) * 1e9)))",
        ]
        var record = AttemptRecord(
            attempts: forwarded.attempt, lastAttemptAt: Date(), nextAttemptAt: nil,
            outcome: forwarded.outcome)
        var retryAfter: Duration? = nil
        switch forwarded.result {
        case .success(let response):
            metadata["status"] = "\(response.status)"
            record.httpStatus = response.status
            record.responseHead = String(decoding: response.bodyHead, as: UTF8.self)
            record.timedOut = false
            retryAfter = response.retryAfter
        case .failure(let error):
            record.timedOut = error.kind == .timedOut
        }
        switch forwarded.verdict {
        case .delivered?:
            do {
                try claim.complete()
                summary.delivered += 1
                logger.info("delivered", metadata: metadata)
            } catch {
                logger.error(
                    "delivered but the delivery could not be removed; it will be sent again",
                    metadata: metadata.merging(["detail": "\(error)"]) { $1 })
            }
        case nil:
            claim.release()
            summary.interrupted += 1
            logger.warning(
                "request stopped by shutdown; the delivery stays in cur/ for the next run", metadata: metadata)
        case .refused?:
            logger.warning(
                "the service refused the delivery",
                metadata: metadata.merging(["outcome": "\(forwarded.outcome)"]) { $1 })
            giveUp(claim, record)
        case .retry?:
            retryLater(claim, record, atLeast: retryAfter)
        }
    }

    private func failed(
        _ claim: Claim, attempt: Int, outcome: String, status: ExitStatus?, timedOut: Bool, stderr: String
    ) {
        var record = AttemptRecord(
            attempts: attempt, lastAttemptAt: Date(), nextAttemptAt: nil, outcome: outcome,
            timedOut: timedOut, stderrTail: stderr)
        switch status {
        case .exited(let code)?: record.exitStatus = Int(code)
        case .signaled(let signal)?: record.signal = Int(signal)
        case nil: break
        }
        retryLater(claim, record, commandRan: status != nil)
    }

    /// Records a failed attempt and schedules the next one after the backoff
    /// (or `atLeast`, when longer), or gives up after the last attempt.
    private func retryLater(
        _ claim: Claim, _ failed: AttemptRecord, atLeast minimum: Duration? = nil, commandRan: Bool = false
    ) {
        var record = failed
        let (attempt, outcome) = (record.attempts, record.outcome)
        guard attempt < options.maxAttempts else {
            giveUp(claim, record)
            return
        }
        let delay = min(max(options.backoff.delay(afterFailure: attempt), minimum ?? .zero), options.backoff.cap)
        record.nextAttemptAt = record.lastAttemptAt.addingTimeInterval(delay.seconds)
        // A command that ran may have left a process (a setsid child) holding
        // fd 3, and with it the delivery's lock, for as long as it lives.
        let holders = commandRan && !stopping ? processesHolding(claim.fd) : []
        do {
            if holders.isEmpty {
                try claim.recordFailure(record)
            } else {
                keptClaims[claim.entry] = try claim.recordFailureKeepingHold(record)
                logger.warning(
                    "the command left processes holding the delivery (its fd 3); drain keeps its claim and retries on schedule",
                    metadata: [
                        "id": "\(claim.entry)", "holders": "\(holders.map(String.init).joined(separator: ","))",
                    ])
            }
            summary.failedAttempts += 1
            if !stopping { retryAt[claim.entry] = record.nextAttemptAt }
            logger.warning(
                "attempt failed; will retry",
                metadata: [
                    "id": "\(claim.entry)", "attempt": "\(attempt)", "outcome": "\(outcome)",
                    "retry_in": "\(delay.shortDescription)",
                ])
        } catch {
            logger.error(
                "attempt failed and could not be recorded; the delivery stays in cur/",
                metadata: ["id": "\(claim.entry)", "outcome": "\(outcome)", "detail": "\(error)"])
        }
    }

    private func giveUp(_ claim: Claim, _ record: AttemptRecord) {
        do {
            try claim.giveUp(record)
            summary.movedToFailed += 1
            logger.error(
                "gave up; moved to failed/",
                metadata: [
                    "id": "\(claim.entry)", "attempts": "\(record.attempts)", "outcome": "\(record.outcome)",
                ])
        } catch {
            logger.error(
                "gave up but could not move the delivery to failed/; it stays in cur/",
                metadata: ["id": "\(claim.entry)", "outcome": "\(record.outcome)", "detail": "\(error)"])
        }
    }

    // MARK: time and signals

    private func beginStop(_ signal: Int32) {
        let name = signal == Signal.interrupt ? "SIGINT" : "SIGTERM"
        if stopping {
            logger.notice("\(name) again: stopping the running commands now")
            stopDeadline = clock.now
            return
        }
        stopping = true
        stopDeadline = clock.now + options.grace
        queue.removeAll()
        retryAt.removeAll()
        for fd in heldElsewhere.values { Sys.closeIgnoringError(fd) }
        heldElsewhere.removeAll()
        releaseKeptClaims()
        heldSince.removeAll()
        reportedHeld.removeAll()
        nextRescan = nil
        logger.notice(
            "\(name): claiming no more deliveries",
            metadata: [
                "running": "\(jobs.count)", "grace": "\(options.grace.shortDescription)",
            ])
    }

    private func handleTimers() {
        let now = clock.now
        for job in jobs.values {
            if let deadline = job.deadline, deadline <= now, !job.timedOut, !job.interrupted {
                job.timedOut = true
                job.terminate(now: now, killDelay: options.killDelay)
                logger.warning(
                    "command timed out; stopping it",
                    metadata: [
                        "id": "\(job.claim.entry)", "timeout": "\(options.timeout?.shortDescription ?? "")",
                    ])
            }
            if let deadline = stopDeadline, deadline <= now, !job.interrupted {
                job.interrupted = true
                if !job.timedOut { job.terminate(now: now, killDelay: options.killDelay) }
            }
            if let killAt = job.killAt, killAt <= now {
                job.process.signalGroup(Signal.kill)
                job.killAt = nil
            }
        }
        reportLongHeld(now: now)
        if let deadline = stopDeadline, deadline <= now { forwarder?.abortTransfers() }
        let date = Date()
        for (entry, due) in retryAt where due <= date {
            retryAt[entry] = nil
            enqueue(entry)
        }
    }

    private func nextWakeMilliseconds() -> Int32 {
        let now = clock.now
        var wait: Duration? = nil
        func consider(_ candidate: Duration) { wait = min(wait ?? candidate, candidate) }
        for job in jobs.values {
            if let deadline = job.deadline, !job.timedOut { consider(deadline - now) }
            if let killAt = job.killAt { consider(killAt - now) }
        }
        if let stopDeadline, !jobs.isEmpty, jobs.values.contains(where: { !$0.interrupted }) {
            consider(stopDeadline - now)
        }
        if let hardStopDeadline, !jobs.isEmpty { consider(hardStopDeadline - now) }
        if let nextRescan { consider(nextRescan - now) }
        for (entry, since) in heldSince where !reportedHeld.contains(entry) && heldElsewhere[entry] != nil {
            consider(since + options.rescanInterval - now)
        }
        if !retryAt.isEmpty, let due = retryAt.values.min() { consider(.seconds(due.timeIntervalSinceNow)) }
        if let forwarder {
            if let reopens = forwarder.reopensAt, !queue.isEmpty { consider(reopens - now) }
            if let stopDeadline, !forwarder.isIdle { consider(max(.zero, stopDeadline - now)) }
        }
        // A child whose SIGCHLD went astray is still reaped within a second.
        if !jobs.isEmpty { consider(.seconds(1)) }
        guard let wait else { return -1 }
        return Int32(max(0, min(wait.seconds * 1000, 3_600_000)).rounded(.up))
    }
}
