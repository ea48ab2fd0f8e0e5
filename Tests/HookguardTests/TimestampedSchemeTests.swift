import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

struct StampedVector: Decodable, CustomTestStringConvertible {
    var scheme: String, secret: String, now: Int, body: String, headers: [String: String], signer: Bool, note: String
    var testDescription: String { "\(scheme): \(note)" }

    var request: RequestParams {
        params(Dictionary(uniqueKeysWithValues: headers.map { (HeaderName($0.key).parameter, $0.value) }))
    }
}

private let timestampedVectors = (try? loadVectors("timestamped", as: [StampedVector].self)) ?? []
/// Vectors/make_catalog.py: the presets of issue 16, from Tests/integration/senders.py.
private let catalogVectors = (try? loadVectors("catalog", as: [StampedVector].self)) ?? []
private let stampedVectors = timestampedVectors + catalogVectors

/// Verifies `body` under a preset with `secret` (turned into the scheme's key).
private func check(
    _ name: String, secret: String, _ headers: [String: String], body: String, now: Int,
    tolerance: Int = SignatureVerifier.defaultTolerance
) throws {
    let scheme = try #require(Scheme.presets[name])
    try SignatureVerifier.verify(
        scheme, keys: [try scheme.key(from: Secret(secret))],
        params: params(Dictionary(uniqueKeysWithValues: headers.map { (HeaderName($0.key).parameter, $0.value) })),
        body: Array(body.utf8), now: now, tolerance: tolerance)
}

/// The header lines `SignatureSigner` writes, as a dictionary.
private func signed(_ name: String, secret: String, body: String, timestamp: Int, id: String? = nil) throws -> [String:
    String]
{
    let scheme = try #require(Scheme.presets[name])
    let lines = try SignatureSigner.headers(
        scheme, secret: Secret(secret), body: Array(body.utf8), timestamp: timestamp, id: id)
    return Dictionary(uniqueKeysWithValues: lines.map { ($0.name, $0.value) })
}

/// Vectors from Vectors/make_timestamped.py (Python's hmac, from each sender's
/// published description) and the senders' own published examples.
@Suite struct TimestampedSchemeTests {
    @Test func vectorsLoaded() {
        #expect(timestampedVectors.count == 11)
        #expect(catalogVectors.count == 38)
    }

    @Test func standardWebhooksPublishedExample() throws {
        // The example in the Standard Webhooks spec (github.com/standard-webhooks/standard-webhooks,
        // spec/standard-webhooks.md) and Svix's "Verifying Webhooks Manually".
        let headers = [
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ]
        try check(
            "standard-webhooks", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers,
            body: "{\"test\": 2432232314}", now: 1_614_265_330)
        #expect(
            try signed(
                "standard-webhooks", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                body: "{\"test\": 2432232314}", timestamp: 1_614_265_330, id: "msg_p5jXN8AQM9LWM0D4loKWxJek")
                == headers)
    }

    @Test func slackPublishedExample() throws {
        // docs.slack.dev, "Verifying requests from Slack": the documented slash-command example.
        let body =
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            + "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            + "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            + "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        let headers = [
            "X-Slack-Request-Timestamp": "1531420618",
            "X-Slack-Signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ]
        try check("slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", headers, body: body, now: 1_531_420_618)
        #expect(
            try signed("slack", secret: "8f742231b10e8888abcd99yyyzzz85a5", body: body, timestamp: 1_531_420_618)
                == headers)
    }

    @Test(arguments: stampedVectors)
    func genuineForgedAndSigned(_ vector: StampedVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        try check(vector.scheme, secret: vector.secret, vector.headers, body: vector.body, now: vector.now)

        #expect(throws: VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))) {
            try check(
                vector.scheme, secret: "whsec_" + Data("another key".utf8).base64EncodedString(),
                vector.headers, body: vector.body, now: vector.now)
        }
        if scheme.encoding != .token {
            #expect(throws: VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))) {
                try check(
                    vector.scheme, secret: vector.secret, vector.headers, body: vector.body + " ", now: vector.now)
            }
        }
        if vector.signer {
            let id = scheme.idHeader.flatMap { vector.headers[$0.display] }
            // Header names compare without case, as HTTP compares them.
            let lines = try signed(
                vector.scheme, secret: vector.secret, body: vector.body, timestamp: vector.now, id: id)
            #expect(
                Dictionary(uniqueKeysWithValues: lines.map { ($0.key.lowercased(), $0.value) })
                    == Dictionary(uniqueKeysWithValues: vector.headers.map { ($0.key.lowercased(), $0.value) }))
        }
    }

    /// Each timestamped preset, signed at `stamp`, checked at other moments.
    static let stamped = Scheme.catalog.filter {
        $0.isTimestamped && $0.publicKey == nil && !$0.isURLBound && $0.bodySignature == nil
    }.map(\.name)

    @Test(arguments: stamped)
    func staleAndFutureTimestamps(_ name: String) throws {
        let scheme = try #require(Scheme.presets[name])
        let secret = "whsec_" + Data("k".utf8 + Array(repeating: 7, count: 31)).base64EncodedString()
        let stamp = 1_700_000_000
        let headers = try signed(name, secret: secret, body: "{}", timestamp: stamp, id: "msg_1")
        let where_ = scheme.timestamp.map { source -> String in
            if case .header(let header) = source { return header.display }
            return scheme.signatureHeader.display
        }!

        // The sender's own tolerance, either way.
        let t = scheme.tolerance
        for now in [stamp, stamp + t, stamp - t] {
            try check(name, secret: secret, headers, body: "{}", now: now, tolerance: t)
        }
        #expect(throws: VerificationError.refused(.stale(header: where_, seconds: t + 1, tolerance: t))) {
            try check(name, secret: secret, headers, body: "{}", now: stamp + t + 1, tolerance: t)
        }
        #expect(throws: VerificationError.refused(.future(header: where_, seconds: t + 1, tolerance: t))) {
            try check(name, secret: secret, headers, body: "{}", now: stamp - t - 1, tolerance: t)
        }
        // HOOKGUARD_TOLERANCE: wider and narrower than the default.
        try check(name, secret: secret, headers, body: "{}", now: stamp + 3600, tolerance: 3600)
        #expect(throws: VerificationError.refused(.stale(header: where_, seconds: 1, tolerance: 0))) {
            try check(name, secret: secret, headers, body: "{}", now: stamp + 1, tolerance: 0)
        }
        // A forged signature with a stale timestamp is reported as forged, not as stale.
        #expect(throws: VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))) {
            try check(name, secret: secret, headers, body: "{\"forged\":1}", now: stamp + 10_000)
        }
    }

    @Test func staleAndFutureTextsSayWhich() {
        let stale = SignatureFailure.stale(header: "X-Slack-Request-Timestamp", seconds: 400, tolerance: 300)
        let future = SignatureFailure.future(header: "X-Slack-Request-Timestamp", seconds: 400, tolerance: 300)
        #expect(stale.reasonCode == "signature-stale" && "\(stale)".contains("stale"))
        #expect(future.reasonCode == "signature-future" && "\(future)".contains("future"))
    }

    static let secret = "whsec_" + Data(Array(repeating: UInt8(9), count: 32)).base64EncodedString()

    /// Every malformed form of each preset's headers, and the failure it must give.
    static let malformed: [(String, [String: String], SignatureFailure)] = {
        let sig = "v1," + Data(Array(repeating: UInt8(1), count: 32)).base64EncodedString()
        let hex = String(repeating: "ab", count: 32)
        let sw: [String: String] = ["webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": sig]
        func sw_(_ change: [String: String?]) -> [String: String] {
            var h = sw
            for (k, v) in change { h[k] = v }
            return h
        }
        let swHeader = "webhook-signature"
        return [
            ("standard-webhooks", sw_(["webhook-signature": nil]), .missing(header: "webhook-signature")),
            ("standard-webhooks", sw_(["webhook-id": nil]), .missing(header: "webhook-id")),
            ("standard-webhooks", sw_(["webhook-timestamp": nil]), .missing(header: "webhook-timestamp")),
            (
                "standard-webhooks", sw_(["webhook-timestamp": "2023-11-14T22:13:20Z"]),
                .malformed(header: "webhook-timestamp", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                "standard-webhooks", sw_(["webhook-timestamp": "-1700000000"]),
                .malformed(header: "webhook-timestamp", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                "standard-webhooks", sw_(["webhook-signature": String(sig.dropFirst(3))]),
                .malformed(header: swHeader, problem: "no entry starting with \"v1,\"")
            ),
            (
                "standard-webhooks", sw_(["webhook-signature": "v2," + sig.dropFirst(3) + " v1a,AAAA"]),
                .malformed(header: swHeader, problem: "no entry starting with \"v1,\"")
            ),
            (
                "standard-webhooks", sw_(["webhook-signature": "v1,***"]),
                .malformed(header: swHeader, problem: "not valid base64")
            ),
            (
                "standard-webhooks", sw_(["webhook-signature": "v1,AAAA v1,%%%%"]),
                .malformed(header: swHeader, problem: "3 bytes where sha256 gives 32")
            ),
            (
                "standard-webhooks", sw_(["webhook-signature": "v1,\(hex)"]),
                .malformed(
                    header: swHeader,
                    problem: "48 bytes where sha256 gives 32; it looks like hex, and this scheme sends base64")
            ),
            (
                "stripe", ["Stripe-Signature": "v1=\(hex)"],
                .malformed(header: "Stripe-Signature", problem: "no \"t=\" timestamp")
            ),
            (
                "stripe", ["Stripe-Signature": "t=soon,v1=\(hex)"],
                .malformed(header: "Stripe-Signature", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                "stripe", ["Stripe-Signature": "t=1700000000,v0=\(hex)"],
                .malformed(header: "Stripe-Signature", problem: "no entry starting with \"v1=\"")
            ),
            (
                "stripe", ["Stripe-Signature": "t=1700000000,v1=zz"],
                .malformed(header: "Stripe-Signature", problem: "not valid hex")
            ),
            (
                "stripe", ["Stripe-Signature": "t=1700000000,v1=abcd"],
                .malformed(header: "Stripe-Signature", problem: "2 bytes where sha256 gives 32")
            ),
            ("stripe", ["Stripe-Signature": ""], .missing(header: "Stripe-Signature")),
            ("slack", ["X-Slack-Signature": "v0=\(hex)"], .missing(header: "X-Slack-Request-Timestamp")),
            ("slack", ["X-Slack-Request-Timestamp": "1700000000"], .missing(header: "X-Slack-Signature")),
            (
                "slack", ["X-Slack-Request-Timestamp": "now", "X-Slack-Signature": "v0=\(hex)"],
                .malformed(header: "X-Slack-Request-Timestamp", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                "slack", ["X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": hex],
                .malformed(header: "X-Slack-Signature", problem: "expected the prefix \"v0=\"")
            ),
            (
                "slack", ["X-Slack-Request-Timestamp": "1700000000", "X-Slack-Signature": "v0=xyz"],
                .malformed(header: "X-Slack-Signature", problem: "not valid hex")
            ),
            ("tito-timestamp", ["X-Tito-Signature": hex], .missing(header: "X-Tito-Timestamp")),
            (
                "tito-timestamp", ["X-Tito-Timestamp": "1700000000.5", "X-Tito-Signature": hex],
                .malformed(header: "X-Tito-Timestamp", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                "tito-timestamp", ["X-Tito-Timestamp": "1700000000", "X-Tito-Signature": String(sig.dropFirst(3))],
                .malformed(
                    header: "X-Tito-Signature",
                    problem: "not valid hex; it looks like base64, and this scheme sends hex")
            ),
            ("shopify", [:], .missing(header: "X-Shopify-Hmac-Sha256")),
            (
                "shopify", ["X-Shopify-Hmac-Sha256": "%%%"],
                .malformed(header: "X-Shopify-Hmac-Sha256", problem: "not valid base64")
            ),
            (
                "shopify", ["X-Shopify-Hmac-Sha256": hex],
                .malformed(
                    header: "X-Shopify-Hmac-Sha256",
                    problem: "48 bytes where sha256 gives 32; it looks like hex, and this scheme sends base64")
            ),
            ("gitlab", [:], .missing(header: "X-Gitlab-Token")),
            ("gitlab", ["X-Gitlab-Token": ""], .missing(header: "X-Gitlab-Token")),
        ]
    }()

    @Test func malformedHeaderForms() {
        for (name, headers, failure) in Self.malformed {
            #expect(throws: VerificationError.refused(failure), "\(name) \(headers)") {
                try check(name, secret: Self.secret, headers, body: "{}", now: 1_700_000_000)
            }
        }
    }

    @Test func oneValidSignatureAmongSeveral() throws {
        let stamp = 1_700_000_000
        let good = try signed("standard-webhooks", secret: Self.secret, body: "{}", timestamp: stamp, id: "m")
        let other = "whsec_" + Data(Array(repeating: UInt8(3), count: 32)).base64EncodedString()
        let bad = try signed("standard-webhooks", secret: other, body: "{}", timestamp: stamp, id: "m")
        var headers = good
        headers["webhook-signature"] = "v1,%%% \(bad["webhook-signature"]!) v1a,xyz \(good["webhook-signature"]!)"
        try check("standard-webhooks", secret: Self.secret, headers, body: "{}", now: stamp)
        headers["webhook-signature"] = "\(bad["webhook-signature"]!) v1,%%%"
        #expect(throws: VerificationError.refused(.mismatch(header: "webhook-signature"))) {
            try check("standard-webhooks", secret: Self.secret, headers, body: "{}", now: stamp)
        }

        let stripeGood = try signed("stripe", secret: "whsec_s", body: "{}", timestamp: stamp)["Stripe-Signature"]!
        let stripeBad = try signed("stripe", secret: "whsec_t", body: "{}", timestamp: stamp)["Stripe-Signature"]!
        let v1 = { (value: String) in value.split(separator: ",")[1] }
        try check(
            "stripe", secret: "whsec_s", ["Stripe-Signature": "t=\(stamp),\(v1(stripeBad)),v1=zz,\(v1(stripeGood))"],
            body: "{}", now: stamp)
        // The signature's timestamp is part of what is signed: moving it breaks the signature.
        #expect(throws: VerificationError.refused(.mismatch(header: "Stripe-Signature"))) {
            try check(
                "stripe", secret: "whsec_s", ["Stripe-Signature": "t=\(stamp + 1),\(v1(stripeGood))"],
                body: "{}", now: stamp)
        }
    }

    @Test func stripeKeyIsTheWholeSecretAndStandardWebhooksKeyIsDecoded() throws {
        let stripe = try #require(Scheme.presets["stripe"])
        #expect(try stripe.key(from: Secret("whsec_abc")).bytes == Array("whsec_abc".utf8))
        let standard = try #require(Scheme.presets["standard-webhooks"])
        #expect(try standard.key(from: Secret("whsec_AQID")).bytes == [1, 2, 3])
        #expect(try standard.key(from: Secret("AQID")).bytes == [1, 2, 3])
        #expect(throws: Scheme.KeyError.self) { try standard.key(from: Secret("whsec_not base64!")) }
        #expect(throws: Scheme.KeyError.self) { try standard.key(from: Secret("whsec_")) }
    }

    @Test func gitlabTokenIsComparedWhole() throws {
        try check("gitlab", secret: "s3cret token", ["X-Gitlab-Token": "s3cret token"], body: "", now: 0)
        for wrong in ["s3cret toke", "s3cret token!", "S3cret token", "x"] {
            #expect(throws: VerificationError.refused(.mismatch(header: "X-Gitlab-Token"))) {
                try check("gitlab", secret: "s3cret token", ["X-Gitlab-Token": wrong], body: "", now: 0)
            }
        }
        #expect(try MessageAuthentication.tokenEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(try !MessageAuthentication.tokenEquals(Array("abc".utf8), Array("abcd".utf8)))
        #expect(try !MessageAuthentication.tokenEquals([], Array("abc".utf8)))
    }

    @Test func sha256MatchesTheStandardVector() throws {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        #expect(
            try MessageAuthentication.sha256(Array("abc".utf8)).hexString
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func customTokenAndIdHeader() throws {
        let config = try LocationConfig(
            params: params([
                "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "Authorization",
                "HOOKGUARD_ENCODING": "token", "HOOKGUARD_PREFIX": "Bearer ", "HOOKGUARD_ID_HEADER": "X-Request-Id",
                "HOOKGUARD_SECRET": "tok-123", "HOOKGUARD_SPOOL": "/tmp/x", "HOOKGUARD_DEDUPE": "60",
            ]))
        #expect(config.scheme.idHeader?.display == "X-Request-Id")
        #expect(config.dedupeWindow == 60)
        try SignatureVerifier.verify(
            config.scheme, keys: [Secret("tok-123")], params: params(["HTTP_AUTHORIZATION": "Bearer tok-123"]),
            body: [], now: 0)
        #expect(throws: VerificationError.refused(.mismatch(header: "Authorization"))) {
            try SignatureVerifier.verify(
                config.scheme, keys: [Secret("tok-123")], params: params(["HTTP_AUTHORIZATION": "Bearer tok-124"]),
                body: [], now: 0)
        }
        #expect(config.scheme.signature(of: [], secret: Secret("tok-123")) == "Bearer tok-123")
    }

    @Test func toleranceAndDedupeParameters() throws {
        let base = ["HOOKGUARD_SCHEME": "stripe", "HOOKGUARD_SECRET": "whsec_x", "HOOKGUARD_SPOOL": "/tmp/x"]
        #expect(try LocationConfig(params: params(base)).tolerance == 300)
        #expect(try LocationConfig(params: params(base.merging(["HOOKGUARD_TOLERANCE": "30"]) { $1 })).tolerance == 30)
        let cases: [([String: String], Parameter, String)] = [
            (["HOOKGUARD_TOLERANCE": "-1"], .tolerance, "not a number of seconds"),
            (["HOOKGUARD_TOLERANCE": "5m"], .tolerance, "not a number of seconds"),
            (["HOOKGUARD_DEDUPE": "3600"], .dedupe, "stripe sends no delivery id header"),
            (["HOOKGUARD_SCHEME": "github", "HOOKGUARD_DEDUPE": "0"], .dedupe, "not a positive number"),
        ]
        for (extra, parameter, words) in cases {
            #expect {
                _ = try LocationConfig(params: params(base.merging(extra) { $1 }))
            } throws: { error in
                guard let error = error as? ConfigError else { return false }
                return error.parameter == parameter && error.problem.contains(words)
            }
        }
        let github = try LocationConfig(
            params: params(base.merging(["HOOKGUARD_SCHEME": "github", "HOOKGUARD_DEDUPE": "86400"]) { $1 }))
        #expect(github.dedupeWindow == 86400)
    }
}
