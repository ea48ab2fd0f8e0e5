import Foundation
import Testing
@testable import HookguardCore

struct BodySignedVector: Decodable, CustomTestStringConvertible {
    var scheme: String, secret: String, now: Int, body: String, note: String
    var testDescription: String { "\(scheme): \(note)" }
}

/// Vectors/make_bodysigned.py: Mailgun deliveries signed with Python's hmac.
private let vectors = (try? loadVectors("bodysigned", as: [BodySignedVector].self)) ?? []

@Suite struct BodySignedTests {
    @Test func vectorsLoaded() { #expect(vectors.count == 2) }

    @Test(arguments: vectors)
    func genuineForgedTamperedStale(_ vector: BodySignedVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        let body = Array(vector.body.utf8)
        let key = [Secret(vector.secret)]
        try SignatureVerifier.verify(scheme, keys: key, params: params([:]), body: body, now: vector.now)
        try SignatureVerifier.verify(scheme, keys: [Secret("old"), Secret(vector.secret)], params: params([:]), body: body, now: vector.now)
        let mismatch = VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(scheme, keys: [Secret("other")], params: params([:]), body: body, now: vector.now)
        }
        // Another token with the same signature: the token is signed.
        let otherToken = vector.body.replacingOccurrences(of: "a8ce0edb", with: "b8ce0edb")
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(scheme, keys: key, params: params([:]), body: Array(otherToken.utf8), now: vector.now)
        }
        #expect(throws: VerificationError.refused(.stale(header: "signature.timestamp (JSON body)", seconds: 301, tolerance: 300))) {
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
            (#"{"signature":{"timestamp":"soon","token":"t","signature":"00"}}"#,
             .malformed(header: "signature.timestamp (JSON body)", problem: "the timestamp is not a Unix time in seconds")),
            (#"{"signature":{"timestamp":"1","token":"t","signature":"zz"}}"#,
             .malformed(header: "signature.signature (JSON body)", problem: "not valid hex")),
        ]
        for (body, failure) in cases {
            #expect(throws: VerificationError.refused(failure), "\(body)") {
                try SignatureVerifier.verify(scheme, keys: [Secret("k")], params: params([:]), body: Array(body.utf8), now: 1)
            }
        }
        #expect(throws: Scheme.KeyError.self) {
            try SignatureSigner.headers(scheme, secret: Secret("k"), body: [], timestamp: 0, id: nil)
        }
    }
}
