import FastCGI
import Posix
import Receiver

/// Cuts a failing upstream off instead of hammering it: after `failures`
/// failures in a row it opens (no request goes out) for `pause`; then one
/// probe goes out; its success closes the breaker, its failure opens it again
/// for twice as long (at most `maxPause`). A value: the caller owns it and
/// feeds it results on one thread. `drain --to-url`'s, one per URL; serve's
/// destinations have `CircuitBreaker` (Delivery/), a fixed back-off and an in-flight limit.
package struct URLCircuitBreaker: Sendable, Equatable {
    package struct Settings: Sendable, Equatable {
        package var failures: Int
        package var pause: Duration
        package var maxPause: Duration

        package init(failures: Int = 5, pause: Duration = .seconds(5), maxPause: Duration = .seconds(300)) {
            self.failures = failures
            self.pause = pause
            self.maxPause = maxPause
        }
    }

    package enum State: Sendable, Equatable {
        case closed
        /// No request until then.
        case open(until: ContinuousClock.Instant)
        /// One probe is out (or may go out); the rest wait for its result.
        case probing(inFlight: Bool)
    }

    package let settings: Settings
    package private(set) var state: State = .closed
    package private(set) var consecutiveFailures = 0
    /// Times it opened since it last closed: the pause doubles with each.
    private var openings = 0

    package init(_ settings: Settings) {
        self.settings = settings
    }

    /// Whether a request may go out now. When it may while open or probing,
    /// that request is the probe: call `requestStarted` as it goes out.
    package func allowsRequest(now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .closed: true
        case .open(let until): now >= until
        case .probing(let inFlight): !inFlight
        }
    }

    /// A request went out (after `allowsRequest` said it may).
    package mutating func requestStarted(now: ContinuousClock.Instant) {
        switch state {
        case .closed: break
        case .open, .probing: state = .probing(inFlight: true)
        }
    }

    /// The upstream answered as a working service does (any answer but the
    /// retryable ones). Returns whether this changed the state.
    @discardableResult
    package mutating func recordSuccess() -> Bool {
        consecutiveFailures = 0
        openings = 0
        defer { state = .closed }
        return state != .closed
    }

    /// A timeout, a connection error, 408, 429 or 5xx. Returns whether this changed the state.
    @discardableResult
    package mutating func recordFailure(now: ContinuousClock.Instant) -> Bool {
        consecutiveFailures += 1
        switch state {
        case .open:
            return false  // answers to requests sent before it opened
        case .probing:
            break
        case .closed:
            guard consecutiveFailures >= settings.failures else { return false }
        }
        openings += 1
        state = .open(until: now + currentPause)
        return true
    }

    /// The pause the last opening started (or the next one would).
    package var currentPause: Duration {
        Backoff(base: settings.pause, cap: settings.maxPause).delay(afterFailure: max(1, openings))
    }

    /// When it next lets a request out, if it is open.
    package var reopensAt: ContinuousClock.Instant? {
        if case .open(let until) = state { return until }
        return nil
    }

    /// `closed`, `open` or `probing`, for logs and `hookguard spool`.
    package var stateName: String {
        switch state {
        case .closed: "closed"
        case .open: "open"
        case .probing: "probing"
        }
    }
}
