import HookguardTesting
import Logging
import Synchronization
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// The breaker's transitions, with the time given by the test.
@Suite struct CircuitBreakerTests {
    let policy = BreakerPolicy(failures: 3, backoffMilliseconds: 100)
    let ms: UInt64 = 1_000_000

    /// Admits one request at `now` and ends it as `succeeded` says.
    @discardableResult
    func attempt(
        _ breaker: inout CircuitBreaker, at now: UInt64, succeeded: Bool
    ) -> [CircuitBreaker.Transition] {
        let (admitted, entered) = breaker.admit(now: now, policy: policy, limit: 4)
        guard case .success(let pass) = admitted else { return [] }
        let left = breaker.finish(pass, succeeded: succeeded, now: now, policy: policy)
        return [entered, left].compactMap { $0 }
    }

    @Test func consecutiveFailuresOpenIt() {
        var breaker = CircuitBreaker()
        #expect(attempt(&breaker, at: 0, succeeded: false) == [])
        #expect(attempt(&breaker, at: 1, succeeded: false) == [])
        #expect(breaker.state == .closed(consecutiveFailures: 2))
        #expect(attempt(&breaker, at: 2, succeeded: false) == [.down])
        #expect(breaker.state == .open(untilNanoseconds: 2 + 100 * ms))
        #expect(!breaker.isUp)
        #expect(breaker.inFlight == 0)
    }

    @Test func aSuccessResetsTheCount() {
        var breaker = CircuitBreaker()
        attempt(&breaker, at: 0, succeeded: false)
        attempt(&breaker, at: 0, succeeded: false)
        attempt(&breaker, at: 0, succeeded: true)
        #expect(breaker.state == .closed(consecutiveFailures: 0))
        attempt(&breaker, at: 0, succeeded: false)
        attempt(&breaker, at: 0, succeeded: false)
        #expect(breaker.isUp)
    }

    @Test func openRefusesUntilTheBackOffEndsThenLetsOneProbeThrough() {
        var breaker = CircuitBreaker()
        for _ in 0..<3 { attempt(&breaker, at: 0, succeeded: false) }
        let (early, none) = breaker.admit(now: 40 * ms, policy: policy, limit: 4)
        #expect(early == .failure(.down(retryInNanoseconds: 60 * ms)))
        #expect(none == nil)

        let (probe, probing) = breaker.admit(now: 100 * ms, policy: policy, limit: 4)
        #expect(probe == .success(CircuitBreaker.Pass(isProbe: true)))
        #expect(probing == .probing)
        #expect(breaker.state == .halfOpen)
        // While the probe is out, everyone else is refused without waiting.
        let (other, _) = breaker.admit(now: 101 * ms, policy: policy, limit: 4)
        guard case .failure(.down) = other else {
            Issue.record("a second request went through a half-open breaker: \(other)")
            return
        }
        #expect(breaker.inFlight == 1)
    }

    @Test func aSucceedingProbeClosesIt() throws {
        var breaker = CircuitBreaker()
        for _ in 0..<3 { attempt(&breaker, at: 0, succeeded: false) }
        let pass = try breaker.admit(now: 100 * ms, policy: policy, limit: 4).0.get()
        #expect(breaker.finish(pass, succeeded: true, now: 150 * ms, policy: policy) == .up)
        #expect(breaker.state == .closed(consecutiveFailures: 0))
        #expect(breaker.isUp && breaker.inFlight == 0)
    }

    @Test func aFailingProbeOpensItForAnotherBackOff() throws {
        var breaker = CircuitBreaker()
        for _ in 0..<3 { attempt(&breaker, at: 0, succeeded: false) }
        let pass = try breaker.admit(now: 100 * ms, policy: policy, limit: 4).0.get()
        #expect(breaker.finish(pass, succeeded: false, now: 150 * ms, policy: policy) == .down)
        #expect(breaker.state == .open(untilNanoseconds: 250 * ms))
        #expect(breaker.admit(now: 249 * ms, policy: policy, limit: 4).0 == .failure(.down(retryInNanoseconds: 1 * ms)))
        #expect(breaker.admit(now: 250 * ms, policy: policy, limit: 4).1 == .probing)
    }

    @Test func requestsStartedBeforeItOpenedDoNotDecideIt() throws {
        var breaker = CircuitBreaker()
        let slowSuccess = try breaker.admit(now: 0, policy: policy, limit: 8).0.get()
        let slowFailure = try breaker.admit(now: 0, policy: policy, limit: 8).0.get()
        for _ in 0..<3 { attempt(&breaker, at: 0, succeeded: false) }
        #expect(breaker.finish(slowSuccess, succeeded: true, now: 10 * ms, policy: policy) == nil)
        #expect(!breaker.isUp, "a late success of an old request reopened a destination just found down")
        let probe = try breaker.admit(now: 100 * ms, policy: policy, limit: 8).0.get()
        #expect(breaker.finish(slowFailure, succeeded: false, now: 101 * ms, policy: policy) == nil)
        #expect(breaker.state == .halfOpen)
        #expect(breaker.finish(probe, succeeded: true, now: 102 * ms, policy: policy) == .up)
        #expect(breaker.inFlight == 0)
    }

    @Test func theInFlightLimitRefusesWithoutWaitingAndFreesOnFinish() throws {
        var breaker = CircuitBreaker()
        let first = try breaker.admit(now: 0, policy: policy, limit: 2).0.get()
        _ = try breaker.admit(now: 0, policy: policy, limit: 2).0.get()
        #expect(breaker.admit(now: 0, policy: policy, limit: 2).0 == .failure(.saturated(limit: 2)))
        _ = breaker.finish(first, succeeded: true, now: 1, policy: policy)
        #expect(breaker.admit(now: 1, policy: policy, limit: 2).0 == .success(CircuitBreaker.Pass(isProbe: false)))
        #expect(breaker.isUp, "saturation is not a failure")
    }

    @Test func theLimitIsAboutHalfTheWorkersAndNeverAll() {
        #expect(BreakerPolicy().inFlightLimit(workers: 8) == 4)
        #expect(BreakerPolicy().inFlightLimit(workers: 1) == 1)
        #expect(BreakerPolicy().inFlightLimit(workers: 3) == 1)
        #expect(BreakerPolicy(maxInFlight: 6).inFlightLimit(workers: 8) == 6)
        #expect(BreakerPolicy(maxInFlight: 20).inFlightLimit(workers: 8) == 7)
    }
}

/// The registry every request goes through: transitions logged, the wait for a place bounded.
@Suite struct DestinationBreakersTests {
    final class Clock: Sendable {
        let now = Atomic<UInt64>(1_000_000_000)
        func advance(milliseconds: UInt64) { now.add(milliseconds * 1_000_000, ordering: .relaxed) }
    }

    @Test func transitionsAreLoggedDownProbingUp() throws {
        let log = CapturedLog()
        let clock = Clock()
        let breakers = DestinationBreakers(
            workers: 4, logger: log.logger(), clock: { clock.now.load(ordering: .relaxed) })
        let policy = BreakerPolicy(failures: 2, backoffMilliseconds: 50)
        for _ in 0..<2 {
            let pass = try breakers.admit(.socket(path: "/run/r.sock"), policy: policy).get()
            breakers.finish(
                .socket(path: "/run/r.sock"), pass, policy: policy,
                failure: "socket /run/r.sock: no acknowledgement within the timeout")
        }
        #expect(!breakers.isUp(.socket(path: "/run/r.sock")))
        #expect(breakers.isUp(.nats(url: "nats://127.0.0.1:4222")), "one destination's breaker is not another's")
        guard case .failure(.down) = breakers.admit(.socket(path: "/run/r.sock"), policy: policy) else {
            Issue.record("an open breaker let a request through")
            return
        }
        clock.advance(milliseconds: 50)
        let probe = try breakers.admit(.socket(path: "/run/r.sock"), policy: policy).get()
        #expect(probe.isProbe)
        breakers.finish(.socket(path: "/run/r.sock"), probe, policy: policy, failure: nil)
        #expect(breakers.isUp(.socket(path: "/run/r.sock")))
        let lines = log.lines.filter { $0.contains(" destination ") }
        #expect(
            lines.map { $0.split(separator: " ").first { $0.hasPrefix("state=") } } == [
                "state=down", "state=probing", "state=up",
            ])
        #expect(lines.allSatisfy { $0.contains("destination=unix:/run/r.sock") })
        #expect(lines.first?.hasPrefix("error destination ") == true)
        #expect(lines.first?.contains("no acknowledgement within the timeout") == true)
    }

    @Test func aFullDestinationIsRefusedAfterABoundedWait() throws {
        let breakers = DestinationBreakers(workers: 4, logger: CapturedLog().logger())
        let policy = BreakerPolicy()
        _ = try breakers.admit(.socket(path: "/run/hung.sock"), policy: policy).get()
        _ = try breakers.admit(.socket(path: "/run/hung.sock"), policy: policy).get()
        let started = ContinuousClock.now
        #expect(breakers.admit(.socket(path: "/run/hung.sock"), policy: policy) == .failure(.saturated(limit: 2)))
        #expect(ContinuousClock.now - started < .seconds(1))
        #expect(try breakers.admit(.socket(path: "/run/other.sock"), policy: policy).get().isProbe == false)
    }
}
