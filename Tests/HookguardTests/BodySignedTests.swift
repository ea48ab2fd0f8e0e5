import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

struct BodySignedVector: Decodable, CustomTestStringConvertible {
    var scheme: String, secret: String, now: Int, body: String, note: String
    var testDescription: String { "\(scheme): \(note)" }
}

/// Vectors/make_bodysigned.py: Mailgun deliveries signed with Python's hmac,
/// Adyen notifications from Adyen's docs and its PyPI library.
private let allVectors = (try? loadVectors("bodysigned", as: [BodySignedVector].self)) ?? []
private let vectors = allVectors.filter { $0.scheme == "mailgun" }
private let adyenVectors = allVectors.filter { $0.scheme == "adyen" }

@Suite struct BodySignedTests {
    @Test func vectorsLoaded() {
        #expect(vectors.count == 2)
        #expect(adyenVectors.count == 2)
    }

    @Test(arguments: vectors)
    func genuineForgedTamperedStale(_ vector: BodySignedVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        let body = Array(vector.body.utf8)
        let key = [Secret(vector.secret)]
        try SignatureVerifier.verify(scheme, keys: key, params: params([:]), body: body, now: vector.now)
        try SignatureVerifier.verify(
            scheme, keys: [Secret("old"), Secret(vector.secret)], params: params([:]), body: body, now: vector.now)
        let mismatch = VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("other")], params: params([:]), body: body, now: vector.now)
        }
        // Another token with the same signature: the token is signed.
        let otherToken = vector.body.replacingOccurrences(of: "a8ce0edb", with: "b8ce0edb")
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: key, params: params([:]), body: Array(otherToken.utf8), now: vector.now)
        }
        #expect(
            throws: VerificationError.refused(
                .stale(header: "signature.timestamp (JSON body)", seconds: 301, tolerance: 300))
        ) {
            try SignatureVerifier.verify(scheme, keys: key, params: params([:]), body: body, now: vector.now + 301)
        }
    }

    @Test func missingAndMalformed() {
        let scheme = Scheme.presets["mailgun"]!
        let cases: [(String, SignatureFailure)] = [
            ("not json", .missing(header: "signature.signature (JSON body)")),
            (#"{"event-data":{}}"#, .missing(header: "signature.signature (JSON body)")),
            (#"{"signature":{"token":"t","signature":"00"}}"#, .missing(header: "signature.timestamp (JSON body)")),
            (#"{"signature":{"timestamp":"1","signature":"00"}}"#, .missing(header: "signature.token (JSON body)")),
            (
                #"{"signature":{"timestamp":"soon","token":"t","signature":"00"}}"#,
                .malformed(
                    header: "signature.timestamp (JSON body)", problem: "the timestamp is not a Unix time in seconds")
            ),
            (
                #"{"signature":{"timestamp":"1","token":"t","signature":"zz"}}"#,
                .malformed(header: "signature.signature (JSON body)", problem: "not valid hex")
            ),
        ]
        for (body, failure) in cases {
            #expect(throws: VerificationError.refused(failure), "\(body)") {
                try SignatureVerifier.verify(
                    scheme, keys: [Secret("k")], params: params([:]), body: Array(body.utf8), now: 1)
            }
        }
        #expect(throws: Scheme.KeyError.self) {
            try SignatureSigner.headers(scheme, secret: Secret("k"), body: [], timestamp: 0, id: nil)
        }
    }
}

@Suite struct AdyenTests {
    let scheme = Scheme.presets["adyen"]!

    func key(_ hex: String) throws -> Secret { try scheme.key(from: Secret(hex)) }

    func verify(_ body: String, keys: [Secret]) throws(VerificationError) {
        try SignatureVerifier.verify(scheme, keys: keys, params: params([:]), body: Array(body.utf8), now: 0)
    }

    static func place(_ index: Int) -> String {
        "notificationItems[\(index)].NotificationRequestItem.additionalData.hmacSignature"
    }

    @Test(arguments: adyenVectors)
    func genuineAndForged(_ vector: BodySignedVector) throws {
        try verify(vector.body, keys: [try key(vector.secret)])
        // The hex key in either case.
        try verify(vector.body, keys: [try key(vector.secret.lowercased())])
        try verify(vector.body, keys: [try key(vector.secret.uppercased())])
        // Rotation: the right key second.
        try verify(vector.body, keys: [try key("00112233"), try key(vector.secret)])
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(0)))) {
            try verify(vector.body, keys: [try key("00112233")])
        }
        // The hex text's bytes as the key (a key not decoded) do not verify.
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(0)))) {
            try verify(vector.body, keys: [Secret(vector.secret)])
        }
    }

    @Test func tamperedItem() throws {
        let vector = adyenVectors[0]
        let keys = [try key(vector.secret)]
        for (from, to) in [
            ("1130", "1131"), ("\"EUR\"", "\"USD\""), ("AUTHORISATION", "CAPTURE"),
            ("\"success\": \"true\"", "\"success\": \"false\""),
            ("TestMerchant", "OtherMerchant"), ("\"7914073381342284\"", "\"7914073381342285\""),
        ] {
            let body = vector.body.replacingOccurrences(of: from, with: to)
            #expect(body != vector.body)
            #expect(throws: VerificationError.refused(.mismatch(header: Self.place(0))), "\(from) → \(to)") {
                try verify(body, keys: keys)
            }
        }
        // A field the signature does not cover (live, additionalData's others) may change.
        try verify(vector.body.replacingOccurrences(of: "\"live\": \"false\"", with: "\"live\": \"true\""), keys: keys)
    }

    @Test func secondItemBad() throws {
        let vector = adyenVectors[1]
        let keys = [try key(vector.secret)]
        try verify(vector.body, keys: keys)
        // The refund's amount changed: the first item still verifies, the delivery does not.
        let tampered = vector.body.replacingOccurrences(of: "\"value\": 500", with: "\"value\": 5000")
        #expect(tampered != vector.body)
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(1)))) {
            try verify(tampered, keys: keys)
        }
        // The second item carrying the first one's signature.
        let signatures = vector.body.matches(of: /"hmacSignature": "([^"]+)"/).map { String($0.1) }
        try #require(signatures.count == 2)
        let swapped = vector.body.replacingOccurrences(of: signatures[1], with: signatures[0])
        #expect(swapped != vector.body)
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(1)))) { try verify(swapped, keys: keys) }
    }

    @Test func itemsSignedUnderEitherKeyOfTheLocation() throws {
        // Item 0 is Adyen's documented example (docs key), item 1 the second vector's refund (its key).
        let docs = adyenVectors[0]
        let second = adyenVectors[1]
        let item0 = try #require(docs.body.firstMatch(of: /\{"NotificationRequestItem": .*\}\}\]/)).0.dropLast()
        let item1 = try #require(second.body.firstMatch(of: /, (\{"NotificationRequestItem": .*)\]\}$/)?.1)
        let body = #"{"notificationItems": ["# + item0 + ", " + item1 + "]}"
        try verify(body, keys: [try key(docs.secret), try key(second.secret)])
        try verify(body, keys: [try key(second.secret), try key(docs.secret)])
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(1)))) {
            try verify(body, keys: [try key(docs.secret)])
        }
        #expect(throws: VerificationError.refused(.mismatch(header: Self.place(0)))) {
            try verify(body, keys: [try key(second.secret)])
        }
    }

    @Test func missingAndMalformed() {
        let list = "notificationItems (JSON body)"
        let cases: [(String, SignatureFailure)] = [
            ("not json", .missing(header: list)),
            (#"{"live":"false"}"#, .missing(header: list)),
            (#"{"notificationItems":[]}"#, .malformed(header: list, problem: "no items: nothing is signed")),
            (#"{"notificationItems":[{"Other":{}}]}"#, .missing(header: Self.place(0))),
            (
                #"{"notificationItems":[{"NotificationRequestItem":{"pspReference":"1"}}]}"#,
                .missing(header: Self.place(0))
            ),
            (
                #"{"notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":""}}}]}"#,
                .missing(header: Self.place(0))
            ),
            (
                #"{"notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"%%%"}}}]}"#,
                .malformed(header: Self.place(0), problem: "not valid base64")
            ),
            (
                #"{"notificationItems":[{"NotificationRequestItem":{"additionalData":{"hmacSignature":"AAAA"}}}]}"#,
                .malformed(header: Self.place(0), problem: "3 bytes where sha256 gives 32")
            ),
        ]
        for (body, failure) in cases {
            #expect(throws: VerificationError.refused(failure), "\(body)") {
                try verify(body, keys: [Secret(bytes: [1, 2, 3])])
            }
        }
        // A good first item does not excuse a second without a signature.
        let second = adyenVectors[0].body.replacingOccurrences(
            of: "}}]}", with: #"}}, {"NotificationRequestItem": {"pspReference": "2"}}]}"#)
        #expect(throws: VerificationError.refused(.missing(header: Self.place(1)))) {
            try verify(second, keys: [try key(adyenVectors[0].secret)])
        }
    }

    @Test func keyMustBeHex() {
        for bad in ["", "abc", "not-hex!", "0g"] {
            #expect(throws: Scheme.KeyError.self, "\(bad)") { try key(bad) }
        }
        #expect(throws: Scheme.KeyError.self) {
            try SignatureSigner.headers(scheme, secret: Secret("00ff"), body: [], timestamp: 0, id: nil)
        }
    }

    @Test func acceptedWithAdyensBody() {
        let id = DeliveryID.next(milliseconds: 0)
        let response = Outcome.accepted(id, .spool).response(acceptedBody: scheme.acceptedBody)
        #expect(response.status == 200)
        #expect(response.body == Array("[accepted]".utf8))
        // Other schemes keep the id; refusals are unchanged.
        #expect(Outcome.accepted(id, .spool).response(acceptedBody: nil) == Outcome.accepted(id, .spool).response)
        let refused = Outcome.rejected(.mismatch(header: "h"), status: 401)
        #expect(refused.response(acceptedBody: "[accepted]") == refused.response)
    }
}
