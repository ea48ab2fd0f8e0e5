import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct URLCircuitBreakerTests {
    let start = ContinuousClock.now
    let settings = URLCircuitBreaker.Settings(failures: 3, pause: .seconds(2), maxPause: .seconds(5))

    @Test func opensAfterFailuresInARowAndNotBefore() {
        var breaker = URLCircuitBreaker(settings)
        let changed1 = breaker.recordFailure(now: start)
        #expect(!changed1)
        let changed2 = breaker.recordFailure(now: start)
        #expect(!changed2)
        #expect(breaker.allowsRequest(now: start))
        let changed3 = breaker.recordFailure(now: start)
        #expect(changed3)
        #expect(breaker.state == .open(until: start + .seconds(2)))
        #expect(!breaker.allowsRequest(now: start + .seconds(1)))
        #expect(breaker.reopensAt == start + .seconds(2))
    }

    @Test func aSuccessInBetweenResetsTheCount() {
        var breaker = URLCircuitBreaker(settings)
        breaker.recordFailure(now: start)
        breaker.recordFailure(now: start)
        breaker.recordSuccess()
        breaker.recordFailure(now: start)
        breaker.recordFailure(now: start)
        #expect(breaker.state == .closed)
        #expect(breaker.consecutiveFailures == 2)
    }

    @Test func oneProbeAfterThePauseThenClosedOnSuccess() {
        var breaker = URLCircuitBreaker(settings)
        for _ in 0..<3 { breaker.recordFailure(now: start) }
        let later = start + .seconds(2)
        #expect(breaker.allowsRequest(now: later))
        breaker.requestStarted(now: later)
        #expect(breaker.state == .probing(inFlight: true))
        #expect(!breaker.allowsRequest(now: later), "only one probe at a time")
        let changed4 = breaker.recordSuccess()
        #expect(changed4)
        #expect(breaker.state == .closed)
        #expect(breaker.allowsRequest(now: later))
    }

    @Test func aFailedProbeOpensAgainForTwiceAsLongUpToTheCap() {
        var breaker = URLCircuitBreaker(settings)
        for _ in 0..<3 { breaker.recordFailure(now: start) }
        var now = start
        for expected in [4, 5, 5] as [Int64] {
            now = breaker.reopensAt!
            breaker.requestStarted(now: now)
            let changed5 = breaker.recordFailure(now: now)
            #expect(changed5)
            #expect(breaker.state == .open(until: now + .seconds(expected)))
        }
    }

    @Test func lateFailuresWhileOpenDoNotExtendThePause() {
        var breaker = URLCircuitBreaker(settings)
        for _ in 0..<3 { breaker.recordFailure(now: start) }
        let changed6 = breaker.recordFailure(now: start + .seconds(1))
        #expect(!changed6)
        #expect(breaker.reopensAt == start + .seconds(2))
    }
}

@Suite struct HTTPForwardingTests {
    let forwarding = HTTPForwarding(
        endpoint: try! HTTPEndpoint(parsing: "http://127.0.0.1:1/hook"),
        connection: HTTPConnection.Options(timeout: .seconds(1), connectTimeout: .seconds(1)))

    @Test(arguments: [
        (200, ForwardVerdict.delivered), (204, .delivered), (299, .delivered),
        (408, .retry), (429, .retry), (500, .retry), (503, .retry), (599, .retry),
        (400, .refused), (401, .refused), (404, .refused), (422, .refused),
        (301, .retry), (100, .retry),
    ])
    func verdictPerStatus(status: Int, expected: ForwardVerdict) {
        #expect(forwarding.verdict(status: status) == expected)
    }

    @Test func clientErrorsAreRetriedWhenAsked() {
        var retrying = forwarding
        retrying.retryClientErrors = true
        #expect(retrying.verdict(status: 400) == .retry)
        #expect(retrying.verdict(status: 200) == .delivered)
    }

    private func envelope(headers: [(String, String)]) throws -> StoredEnvelope {
        var json =
            #"{"id":"0190f0e0-0000-7000-8000-000000000001","received_at":"2026-11-30T00:00:00.000Z","scheme":"github","event":"push","delivery_id":"d-1","headers":{"#
        json += headers.map { #""\#($0.0)":"\#($0.1)""# }.joined(separator: ",")
        json += #"},"body":"{}"}"#
        return try StoredEnvelope(decoding: Array(json.utf8))
    }

    @Test func senderHeadersWithoutHopByHopOrForgedOnesThenOurs() throws {
        let stored = try envelope(headers: [
            ("content-type", "application/json"), ("x-github-event", "push"), ("connection", "close"),
            ("host", "example.com"), ("content-length", "2"), ("transfer-encoding", "chunked"),
            ("hookguard-attempt", "99"), ("user-agent", "GitHub-Hookshot/1"),
        ])
        let headers = try forwarding.requestHeaders(for: stored, attempt: 3, now: 0)
        #expect(
            headers.map(\.name) == [
                "content-type", "user-agent", "x-github-event", "Hookguard-Id", "Hookguard-Scheme", "Hookguard-Event",
                "Hookguard-Delivery-Id", "Hookguard-Attempt", "Hookguard-Received-At",
            ])
        #expect(headers.first { $0.name == "Hookguard-Attempt" }?.value == "3")
        #expect(headers.first { $0.name == "Hookguard-Delivery-Id" }?.value == "d-1")
    }

    @Test func keepAndDropNarrowAndExtraHeadersReplaceByName() throws {
        var narrowed = forwarding
        narrowed.headers = ForwardedHeaders(
            keep: ["Content-Type", "X-GitHub-Event"], drop: ["x-github-event"],
            extra: [("Authorization", "Bearer t"), ("Content-Type", "text/plain")])
        let stored = try envelope(headers: [
            ("content-type", "application/json"), ("x-github-event", "push"), ("user-agent", "u"),
        ])
        let headers = try narrowed.requestHeaders(for: stored, attempt: 1, now: 0)
        #expect(!headers.contains { $0.name == "user-agent" || $0.name == "x-github-event" })
        #expect(headers.filter { $0.name.lowercased() == "content-type" }.map(\.value) == ["text/plain"])
        #expect(headers.contains { $0 == ("Authorization", "Bearer t") })
    }

    @Test func headerLinesThatCouldSplitAreNeverSent() {
        #expect(!ForwardedHeaders.isValid(name: "X-A", value: "a\r\nX-B: b"))
        #expect(!ForwardedHeaders.isValid(name: "X A", value: "a"))
        #expect(!ForwardedHeaders.isValid(name: "", value: "a"))
        #expect(ForwardedHeaders.isValid(name: "X-Hub-Signature-256", value: ""))
    }

    @Test func endpoints() throws {
        let unix = try HTTPEndpoint(parsing: "unix:/run/app.sock:/hooks/in")
        #expect(unix.unixSocket == "/run/app.sock")
        #expect(unix.url == "http://localhost/hooks/in")
        #expect(try HTTPEndpoint(parsing: "https://a.example/x").unixSocket == nil)
        #expect(throws: HTTPEndpointError.self) { try HTTPEndpoint(parsing: "ftp://a/b") }
        #expect(throws: HTTPEndpointError.self) { try HTTPEndpoint(parsing: "unix:/run/app.sock") }
        #expect(throws: HTTPEndpointError.self) { try HTTPEndpoint(parsing: "http://a/b c") }
    }

    @Test func retryAfterInSecondsOrAsAnHTTPDate() {
        #expect(HTTPConnection.retryAfter("1", now: 0) == .seconds(1))
        #expect(HTTPConnection.retryAfter(" 120 ", now: 0) == .seconds(120))
        // RFC 9110's example date is 784111777 seconds after the epoch.
        #expect(HTTPConnection.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_770) == .seconds(7))
        #expect(HTTPConnection.retryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now: 784_111_800) == .zero)
        #expect(HTTPConnection.retryAfter("soon", now: 0) == nil)
    }
}
