import FastCGI
import Logging
import Metrics
import Posix

/// The circuit breakers of every destination this process forwards to, by
/// name (`unix:/run/reader.sock`, `nats://10.0.0.5:4222`). Each transition is
/// logged and exported as `hookguard_destination_up{destination}`.
final class DestinationBreakers: Sendable {
    /// How long a request waits for a place once the in-flight limit is
    /// reached, unless the destination keeps finishing requests: a stuck one
    /// frees none, so its waiters give up after this.
    static let placeWaitNanoseconds: UInt64 = 25_000_000
    /// The longest wait for a place on a destination that keeps finishing requests (busy, not stuck).
    static let busyPlaceWaitNanoseconds: UInt64 = 250_000_000

    private let breakers = Locked<[DestinationName: CircuitBreaker]>([:])
    private let workers: Int
    private let logger: Logger
    private let clock: @Sendable () -> UInt64

    init(workers: Int, logger: Logger, clock: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.workers = workers
        self.logger = logger
        self.clock = clock
    }

    /// A place on `destination`, or why there is none. Not waiting at all
    /// for a destination that is down; when its places are taken, waiting
    /// `placeWaitNanoseconds`, or up to `busyPlaceWaitNanoseconds` while its
    /// requests keep finishing.
    func admit(_ destination: DestinationName, policy: BreakerPolicy) -> Result<
        CircuitBreaker.Pass, CircuitBreaker.Refusal
    > {
        let limit = policy.inFlightLimit(workers: workers)
        let started = clock()
        while true {
            let now = clock()
            let (created, lastFinished, (result, transition)) = breakers.withLock { all in
                let created = all[destination] == nil
                let admitted = all[destination, default: CircuitBreaker()].admit(now: now, policy: policy, limit: limit)
                return (created, all[destination]?.lastFinishedNanoseconds ?? 0, admitted)
            }
            if created { Self.gauge(destination).record(1) }
            if let transition { report(transition, destination, detail: "back-off over; this request is the probe") }
            guard case .failure(.saturated) = result else { return result }
            let waited = now - started
            let busy = now < lastFinished + Self.placeWaitNanoseconds
            guard waited < Self.placeWaitNanoseconds || (busy && waited < Self.busyPlaceWaitNanoseconds) else {
                return result
            }
            Sys.sleep(seconds: 0.001)
        }
    }

    /// Hands back a place `admit` gave; `failure` says why the hand-over failed.
    func finish(_ destination: DestinationName, _ pass: CircuitBreaker.Pass, policy: BreakerPolicy, failure: String?) {
        let now = clock()
        let transition = breakers.withLock { all in
            all[destination]?.finish(pass, succeeded: failure == nil, now: now, policy: policy)
        }
        guard let transition else { return }
        let detail =
            switch transition {
            case .down where pass.isProbe:
                "probe failed: \(failure ?? ""); next probe in \(policy.backoffMilliseconds) ms"
            case .down:
                "\(policy.failures) consecutive failures, the last: \(failure ?? ""); next probe in \(policy.backoffMilliseconds) ms"
            default: "probe succeeded"
            }
        report(transition, destination, detail: detail)
    }

    /// Whether `destination` takes deliveries now (tests).
    func isUp(_ destination: DestinationName) -> Bool {
        breakers.withLock { $0[destination]?.isUp ?? true }
    }

    private func report(_ transition: CircuitBreaker.Transition, _ destination: DestinationName, detail: String) {
        let metadata: Logger.Metadata = [
            "state": .string(transition.rawValue), "destination": .string(destination.description),
            "detail": .string(detail),
        ]
        switch transition {
        case .down:
            Self.gauge(destination).record(0)
            logger.error("destination", metadata: metadata, source: "Receiver")
        case .probing:
            logger.notice("destination", metadata: metadata, source: "Receiver")
        case .up:
            Self.gauge(destination).record(1)
            logger.notice("destination", metadata: metadata, source: "Receiver")
        }
    }

    private static func gauge(_ destination: DestinationName) -> Gauge {
        Gauge(label: "hookguard_destination_up", dimensions: [("destination", destination.description)])
    }
}

extension CircuitBreaker.Refusal: CustomStringConvertible {
    package var description: String {
        switch self {
        case .down(let left):
            "cut off: down after repeated failures, next probe in \((left + 999_999) / 1_000_000) ms"
        case .saturated(let limit):
            "cut off: \(limit) deliveries already waiting on it (HOOKGUARD_BREAKER_MAX_IN_FLIGHT)"
        }
    }
}
