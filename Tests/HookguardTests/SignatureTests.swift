import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

struct SchemeVector: Decodable, CustomTestStringConvertible {
    var scheme: String, header: String, secret: String, body: String, value: String, note: String
    var testDescription: String { "\(scheme) \(value.prefix(16))…" }
}

struct CustomVector: Decodable, CustomTestStringConvertible {
    var algorithm: String, encoding: String, prefix: String, secret: String, body: String, value: String
    var testDescription: String { "custom \(algorithm)/\(encoding)" }
}

private let schemeVectors = (try? loadVectors("schemes", as: [SchemeVector].self)) ?? []
private let customVectors = (try? loadVectors("custom", as: [CustomVector].self)) ?? []

/// Vectors computed with Python's hmac module (Vectors/schemes.json, custom.json),
/// independently of hookguard's code, plus GitHub's published test values.
@Suite struct SignatureTests {
    @Test func vectorsLoaded() {
        #expect(schemeVectors.count == 29)
        #expect(customVectors.count == 8)
    }

    @Test func githubPublishedVector() throws {
        // docs.github.com, "Validating webhook deliveries": test values.
        let scheme = try #require(Scheme.presets["github"])
        let request = params([
            "HTTP_X_HUB_SIGNATURE_256":
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        ])
        try SignatureVerifier.verify(
            scheme, keys: [Secret("It's a Secret to Everybody")], params: request,
            body: Array("Hello, World!".utf8), now: 0)
        #expect(
            scheme.signature(of: Array("Hello, World!".utf8), secret: Secret("It's a Secret to Everybody"))
                == "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
    }

    @Test(arguments: schemeVectors)
    func presetAcceptsGenuineAndRefusesForged(_ vector: SchemeVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        #expect(scheme.signatureHeader.display == vector.header)
        let header = scheme.signatureHeader.parameter
        let body = Array(vector.body.utf8)
        try SignatureVerifier.verify(
            scheme, keys: [Secret(vector.secret)], params: params([header: vector.value]), body: body, now: 0)

        #expect(throws: VerificationError.refused(.mismatch(header: vector.header))) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret(vector.secret + "x")], params: params([header: vector.value]), body: body, now: 0)
        }
        #expect(throws: VerificationError.refused(.mismatch(header: vector.header))) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret(vector.secret)], params: params([header: vector.value]), body: body + [0x20],
                now: 0)
        }
    }

    @Test(arguments: customVectors)
    func customScheme(_ vector: CustomVector) throws {
        let config = try LocationConfig(
            params: params([
                "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-My-Sig",
                "HOOKGUARD_ALGORITHM": vector.algorithm, "HOOKGUARD_ENCODING": vector.encoding,
                "HOOKGUARD_PREFIX": vector.prefix, "HOOKGUARD_SECRET": vector.secret, "HOOKGUARD_SPOOL": "/tmp/x",
            ]))
        let request = params(["HTTP_X_MY_SIG": vector.value])
        try SignatureVerifier.verify(
            config.scheme, keys: [Secret(vector.secret)], params: request, body: Array(vector.body.utf8), now: 0)
        #expect(config.scheme.signature(of: Array(vector.body.utf8), secret: Secret(vector.secret)) == vector.value)
    }

    @Test func hexIsCaseInsensitiveAndTrimmed() throws {
        let scheme = Scheme.presets["github"]!
        let body = Array("Hello, World!".utf8)
        let upper = "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17 "
        try SignatureVerifier.verify(
            scheme, keys: [Secret("It's a Secret to Everybody")],
            params: params(["HTTP_X_HUB_SIGNATURE_256": upper]), body: body, now: 0)
    }

    @Test func anyOfSeveralSecretsMatches() throws {
        let scheme = Scheme.presets["x-signature"]!
        let body = Array("{}".utf8)
        let value = scheme.signature(of: body, secret: Secret("new"))
        try SignatureVerifier.verify(
            scheme, keys: [Secret("old"), Secret("new")], params: params(["HTTP_X_SIGNATURE": value]), body: body,
            now: 0)
    }

    @Test func missingAndMalformedHeaders() {
        let scheme = Scheme.presets["ticketspot"]!
        let secrets = [Secret("k")]
        let body = Array("{}".utf8)
        let cases: [(String?, SignatureFailure)] = [
            (nil, .missing(header: "X-TS-Signature-256")),
            ("", .missing(header: "X-TS-Signature-256")),
            (
                "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                .malformed(header: "X-TS-Signature-256", problem: "expected the prefix \"sha256=\"")
            ),
            ("sha256=zz", .malformed(header: "X-TS-Signature-256", problem: "not valid hex")),
            ("sha256=abc", .malformed(header: "X-TS-Signature-256", problem: "not valid hex")),
            ("sha256=abcd", .malformed(header: "X-TS-Signature-256", problem: "2 bytes where sha256 gives 32")),
        ]
        for (value, failure) in cases {
            let request = params(value.map { ["HTTP_X_TS_SIGNATURE_256": $0] } ?? [:])
            #expect(throws: VerificationError.refused(failure)) {
                try SignatureVerifier.verify(scheme, keys: secrets, params: request, body: body, now: 0)
            }
        }
    }

    @Test func base64MalformedAndWrongLength() {
        let scheme = Scheme.presets["tito"]!
        let body = Array("{}".utf8)
        #expect(throws: VerificationError.refused(.malformed(header: "Tito-Signature", problem: "not valid base64"))) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("k")], params: params(["HTTP_TITO_SIGNATURE": "%%%"]), body: body, now: 0)
        }
        #expect(
            throws: VerificationError.refused(
                .malformed(header: "Tito-Signature", problem: "3 bytes where sha256 gives 32"))
        ) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("k")], params: params(["HTTP_TITO_SIGNATURE": "AAAA"]), body: body, now: 0)
        }
    }

    @Test func failureTextNeverShowsTheExpectedValue() {
        let scheme = Scheme.presets["x-signature"]!
        let body = Array("payload".utf8)
        let expected = scheme.signature(of: body, secret: Secret("hush"))
        do {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("hush")], params: params(["HTTP_X_SIGNATURE": String(repeating: "0", count: 64)]),
                body: body, now: 0)
            Issue.record("a forged signature was accepted")
        } catch {
            guard case .refused(let failure) = error else {
                Issue.record("\(error)")
                return
            }
            let response = Outcome.rejected(failure, status: 500).response
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(!text.contains(expected))
            #expect(!text.contains("hush"))
            #expect(response.status == 500)
        }
    }

    @Test func constantTimeEqualsChecksLengthFirst() {
        #expect(MessageAuthentication.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!MessageAuthentication.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!MessageAuthentication.constantTimeEquals([1, 2, 3], [1, 2]))
    }

    @Test func secretNeverPrints() {
        let secret = Secret("top-secret-value")
        #expect("\(secret)" == "<secret>")
        #expect(String(reflecting: secret) == "<secret>")
        #expect(!"\([secret])".contains("top-secret"))
    }
}
