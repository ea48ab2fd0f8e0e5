import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// A libcrypto failure (injected on this task only: debug builds make every
/// libcrypto call report failure under `LibcryptoFaultInjection.failing`)
/// is an error answered 503 `crypto-error`, never a match.
@Suite struct CryptoFailureTests {
    let fixture: HandlerFixture

    init() throws {
        fixture = try HandlerFixture()
    }

    func handle(_ values: [String: String], body: [UInt8] = []) -> Response {
        var all = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SPOOL": fixture.dir + "/spool",
        ]
        all.merge(values) { $1 }
        var source = MemoryBody(body)
        return fixture.handler.handle(params(all), body: &source)
    }

    func failing<T>(_ body: () throws -> T) rethrows -> T {
        try LibcryptoFaultInjection.$failing.withValue(true, operation: body)
    }

    static let gitlab = ["HOOKGUARD_SCHEME": "gitlab", "HOOKGUARD_SECRET": "the-gitlab-token"]
    static let customToken = [
        "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "Authorization", "HOOKGUARD_ENCODING": "token",
        "HOOKGUARD_PREFIX": "Bearer ", "HOOKGUARD_SECRET": "tok-123",
    ]

    /// Adyen's items are checked one by one: a failing HMAC is a 503, never "[accepted]".
    @Test func adyenItemsAreNotAcceptedWhenLibcryptoFails() throws {
        let vector = try #require(
            try loadVectors("bodysigned", as: [BodySignedVector].self).first { $0.scheme == "adyen" })
        let location = ["HOOKGUARD_SCHEME": "adyen", "HOOKGUARD_SECRET": vector.secret]
        let body = Array(vector.body.utf8)
        let response = failing { handle(location, body: body) }
        #expect(response.status == 503)
        #expect(response.body != Array("[accepted]".utf8))
        #expect(fixture.log.text.contains("reason=crypto-error"))
        #expect(fixture.spooled().isEmpty)
        // Genuine once libcrypto works: the 503 was the failure's.
        #expect(handle(location, body: body).body == Array("[accepted]".utf8))
        #expect(fixture.spooled().count == 1)
    }

    @Test func tokenSchemesAcceptNoTokenWhenLibcryptoFails() {
        let cases: [([String: String], [String])] = [
            (
                Self.gitlab.merging(["HTTP_X_GITLAB_TOKEN": "the-gitlab-token"]) { $1 },
                ["the-gitlab-token", "wrong", "x"]
            ),
            (
                Self.customToken.merging(["HTTP_AUTHORIZATION": "Bearer tok-123"]) { $1 },
                ["Bearer tok-123", "Bearer nope"]
            ),
        ]
        for (location, tokens) in cases {
            let header = location.keys.first { $0.hasPrefix("HTTP_") }!
            for token in tokens {
                let response = failing { handle(location.merging([header: token]) { $1 }) }
                #expect(response.status == 503, "\(token)")
                #expect(response.headers.contains { $0.name == "Retry-After" })
            }
            // The same location accepts its token once libcrypto works: the 503 was the failure's.
            #expect(handle(location).status == 200)
        }
        #expect(fixture.log.text.components(separatedBy: "reason=crypto-error").count - 1 == 5)
        #expect(fixture.log.text.contains("libcrypto HMAC() failed"))
        #expect(fixture.spooled().count == 2)
        #expect(!fixture.log.text.contains("the-gitlab-token") && !fixture.log.text.contains("tok-123"))
    }

    @Test func hmacSchemeAnswers503WhenLibcryptoFails() {
        // docs.github.com, "Validating webhook deliveries": the published test values.
        let github = [
            "HOOKGUARD_SCHEME": "github", "HOOKGUARD_SECRET": "It's a Secret to Everybody",
            "HTTP_X_HUB_SIGNATURE_256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ]
        let body = Array("Hello, World!".utf8)
        let response = failing { handle(github, body: body) }
        #expect(response.status == 503)
        #expect(String(decoding: response.body, as: UTF8.self).contains("could not be checked"))
        #expect(fixture.log.text.contains("reason=crypto-error"))
        #expect(fixture.spooled().isEmpty)
        #expect(handle(github, body: body).status == 200)
    }

    @Test func everyLibcryptoCallThrowsInsteadOfAnEmptyResult() {
        failing {
            #expect(throws: CryptoFailure.self) {
                try MessageAuthentication.code(.sha256, key: [1, 2, 3], message: [4])
            }
            #expect(throws: CryptoFailure.self) { try MessageAuthentication.tokenEquals([1], [1]) }
            #expect(throws: CryptoFailure.self) { try MessageAuthentication.sha256([1]) }
            #expect(throws: CryptoFailure.self) { try DuplicateRecords.recordName(senderID: "a", scheme: "github") }
            let signature = [UInt8](repeating: 0, count: 32)
            #expect(throws: VerificationError.self) {
                try SignatureVerifier.verify(
                    Scheme.presets["github"]!, keys: [Secret("k")],
                    params: params(["HTTP_X_HUB_SIGNATURE_256": "sha256=" + signature.hexString]), body: [], now: 0)
            }
        }
    }

    @Test func anEmptyMACEqualsNothing() {
        #expect(!MessageAuthentication.constantTimeEquals([], []))
        #expect(!MessageAuthentication.constantTimeEquals([], [0]))
        #expect(MessageAuthentication.constantTimeEquals([0], [0]))
    }
}
