import FastCGI
import Posix

/// How a location wants its forwarding destination (socket reader or
/// JetStream) cut off when it fails: `HOOKGUARD_BREAKER_*`.
package struct BreakerPolicy: Sendable, Equatable {
    package static let defaultFailures = 3
    package static let defaultBackoffMilliseconds = 5000

    /// Consecutive failed hand-overs (errors or timeouts) that mark the destination down.
    package var failures: Int
    /// How long a destination stays down before one probe request tests it again.
    package var backoffMilliseconds: Int
    /// Requests that may be waiting on the destination at once; nil: half the workers.
    package var maxInFlight: Int?

    package init(
        failures: Int = BreakerPolicy.defaultFailures,
        backoffMilliseconds: Int = BreakerPolicy.defaultBackoffMilliseconds, maxInFlight: Int? = nil
    ) {
        self.failures = failures
        self.backoffMilliseconds = backoffMilliseconds
        self.maxInFlight = maxInFlight
    }

    /// The in-flight limit for a process with `workers` workers: never all of them,
    /// so a hung destination always leaves workers for the locations that do not use it.
    package func inFlightLimit(workers: Int) -> Int {
        max(1, min(maxInFlight ?? workers / 2, max(1, workers - 1)))
    }
}

/// One destination's circuit breaker and in-flight count, as a value: the
/// caller supplies the time, so its transitions are tested without waiting.
///
/// closed (up) → `failures` consecutive failures → open (down) for the
/// back-off → the next request is the one probe (half-open) → its success
/// closes the breaker, its failure opens it for another back-off.
package struct CircuitBreaker: Sendable, Equatable {
    package enum State: Sendable, Equatable {
        case closed(consecutiveFailures: Int)
        case open(untilNanoseconds: UInt64)
        case halfOpen
    }

    /// A logged, exported change of state.
    package enum Transition: String, Sendable, Equatable {
        case down, probing, up
    }

    /// Why a request was not let through.
    package enum Refusal: Sendable, Equatable, Error {
        /// The destination is down (or its probe is in flight); back up in about this long.
        case down(retryInNanoseconds: UInt64)
        /// `limit` requests are waiting on it already.
        case saturated(limit: Int)
    }

    /// A request let through; hand it back to `finish`.
    package struct Pass: Sendable, Equatable {
        package let isProbe: Bool
    }

    package private(set) var state: State = .closed(consecutiveFailures: 0)
    package private(set) var inFlight = 0
    /// When a request let through last ended: a destination whose requests
    /// keep ending is busy, not stuck.
    package private(set) var lastFinishedNanoseconds: UInt64 = 0

    package init() {}

    package mutating func admit(
        now: UInt64, policy: BreakerPolicy, limit: Int
    ) -> (Result<Pass, Refusal>, Transition?) {
        switch state {
        case .closed:
            guard inFlight < limit else { return (.failure(.saturated(limit: limit)), nil) }
            inFlight += 1
            return (.success(Pass(isProbe: false)), nil)
        case .open(let until) where now < until:
            return (.failure(.down(retryInNanoseconds: until - now)), nil)
        case .open:
            state = .halfOpen
            inFlight += 1
            return (.success(Pass(isProbe: true)), .probing)
        case .halfOpen:
            return (.failure(.down(retryInNanoseconds: Self.nanoseconds(policy.backoffMilliseconds))), nil)
        }
    }

    /// Records how a request let through by `admit` ended. Only the probe
    /// decides a half-open breaker; requests that started before the
    /// destination went down change nothing once it is down.
    package mutating func finish(_ pass: Pass, succeeded: Bool, now: UInt64, policy: BreakerPolicy) -> Transition? {
        inFlight -= 1
        lastFinishedNanoseconds = now
        switch state {
        case .halfOpen where pass.isProbe:
            if succeeded {
                state = .closed(consecutiveFailures: 0)
                return .up
            }
            state = .open(untilNanoseconds: now + Self.nanoseconds(policy.backoffMilliseconds))
            return .down
        case .closed(let failures):
            if succeeded {
                state = .closed(consecutiveFailures: 0)
                return nil
            }
            if failures + 1 >= policy.failures {
                state = .open(untilNanoseconds: now + Self.nanoseconds(policy.backoffMilliseconds))
                return .down
            }
            state = .closed(consecutiveFailures: failures + 1)
            return nil
        case .open, .halfOpen:
            return nil
        }
    }

    package var isUp: Bool {
        if case .closed = state { return true }
        return false
    }

    private static func nanoseconds(_ milliseconds: Int) -> UInt64 { UInt64(max(0, milliseconds)) * 1_000_000 }
}
