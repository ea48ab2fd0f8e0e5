import Foundation
import Logging
import Synchronization
import Testing
@testable import Posix
@testable import FastCGI
@testable import Receiver
@testable import Drain
@testable import Doctor
import HookguardTesting

@Suite struct HandlerTests {
    let secret = "handler-test-secret"
    let dir: String
    let log = CapturedLog()
    let handler: WebhookHandler

    init() throws {
        dir = try makeTemporaryDirectory()
        handler = WebhookHandler(logger: log.logger())
    }

    func request(
        method: String = "POST", body: [UInt8], signature: String?, extra: [String: String] = [:],
        contentLength: String? = nil
    ) -> RequestParams {
        var values = [
            "REQUEST_METHOD": method, "REQUEST_URI": "/hooks/github",
            "CONTENT_LENGTH": contentLength ?? String(body.count),
            "HOOKGUARD_SCHEME": "github", "HOOKGUARD_SECRET": secret, "HOOKGUARD_SPOOL": dir + "/spool",
            "HTTP_X_GITHUB_EVENT": "push",
        ]
        if let signature { values["HTTP_X_HUB_SIGNATURE_256"] = signature }
        for (key, value) in extra { values[key] = value }
        return params(values)
    }

    func sign(_ body: [UInt8]) -> String {
        Scheme.presets["github"]!.signature(of: body, secret: Secret(secret))
    }

    func spooled() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir + "/spool/new")) ?? []
    }

    func handle(_ params: RequestParams, _ body: MemoryBody) -> Response {
        var source = body
        return handler.handle(params, body: &source)
    }

    @Test func genuineDeliveryIsSpooled() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = Array("{\"ref\":\"main\"}".utf8)
        let response = handle(request(body: body, signature: sign(body)), MemoryBody(body))
        #expect(response.status == 200)
        let answer = try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String])
        let id = try #require(answer["id"])
        #expect(spooled() == ["\(id).json"])
        let entry = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/spool/new/\(id).json")))
                as? [String: Any])
        #expect(entry["event"] as? String == "push")
        #expect(entry["body"] as? String == "{\"ref\":\"main\"}")
        #expect(log.text.contains("reason=accepted"))
        #expect(!log.text.contains(secret))
    }

    /// Adyen wants exactly `[accepted]`; the id is in the log line and names the spooled file.
    @Test func adyenAnsweredAcceptedWithTheIdLogged() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Adyen's documented example (Vectors/make_bodysigned.py).
        let vector = try #require(
            try loadVectors("bodysigned", as: [BodySignedVector].self).first { $0.scheme == "adyen" })
        let body = Array(vector.body.utf8)
        let values = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/adyen", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SCHEME": "adyen", "HOOKGUARD_SECRET": vector.secret, "HOOKGUARD_SPOOL": dir + "/spool",
        ]
        let response = handle(params(values), MemoryBody(body))
        #expect(response.status == 200)
        #expect(response.body == Array("[accepted]".utf8))
        #expect(log.text.contains("reason=accepted"))
        let id = try #require(log.text.firstMatch(of: /\bid=([0-9a-f-]{36})/)?.1)
        #expect(spooled() == ["\(id).json"])
        // A forged one is refused as any other scheme's, not answered [accepted].
        var forged = values
        forged["HOOKGUARD_SECRET"] = "00ff"
        let refused = handle(params(forged), MemoryBody(body))
        #expect(refused.status == 500)
        #expect(refused.body != Array("[accepted]".utf8))
        #expect(spooled().count == 1)
    }

    @Test func refusals() {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = Array("{}".utf8)
        let cases: [(RequestParams, MemoryBody, Int, String)] = [
            (request(method: "GET", body: body, signature: sign(body)), MemoryBody(body), 405, "method-not-allowed"),
            (request(body: body, signature: nil), MemoryBody(body), 500, "signature-missing"),
            (request(body: body, signature: "sha256=nothex"), MemoryBody(body), 500, "signature-malformed"),
            (request(body: body, signature: sign(Array("other".utf8))), MemoryBody(body), 500, "signature-mismatch"),
            (request(body: body, signature: sign(Array("other".utf8)), extra: ["HOOKGUARD_REJECT_STATUS": "401"]),
             MemoryBody(body), 401, "signature-mismatch"),
            (request(body: body, signature: sign(body), extra: ["HOOKGUARD_SCHEME": "nope"]), MemoryBody(body), 500, "config-invalid"),
            (request(body: body, signature: sign(body), extra: ["HOOKGUARD_SECRET": "", "HOOKGUARD_SECRET_FILE": dir + "/none"]),
             MemoryBody(body), 500, "config-invalid"),
            (request(body: Array(repeating: 1, count: 2000), signature: nil, extra: ["HOOKGUARD_MAX_BODY": "1024"]),
             MemoryBody([]), 413, "body-too-large"),
            (request(body: body, signature: sign(body), contentLength: "100"), MemoryBody(body, failAfter: 2), 400, "body-incomplete"),
            (request(body: body, signature: sign(body), contentLength: "x"), MemoryBody(body), 400, "bad-request"),
            (request(body: body, signature: sign(body), contentLength: "1"), MemoryBody(body), 400, "body-overlong"),
        ]
        for (params, source, status, reason) in cases {
            let response = handle(params, source)
            #expect(response.status == status, "\(reason)")
            #expect(log.text.contains("reason=\(reason)"), "\(reason)")
        }
        #expect(log.text.contains("client sent 2 of 100 bytes"))
        #expect(spooled().isEmpty)
        #expect(!log.text.contains(secret))
        #expect(!log.text.contains(sign(body)))
    }

    @Test func methodNotAllowedCarriesAllow() {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let response = handle(request(method: "PUT", body: [], signature: nil), MemoryBody([]))
        #expect(response.headers.contains(Response.Header(name: "Allow", value: "POST")))
    }

    @Test func unwritableSpoolIs503() throws {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        let body = Array("{}".utf8)
        let response = handle(
            request(body: body, signature: sign(body), extra: ["HOOKGUARD_SPOOL": dir + "/file/spool"]), MemoryBody(body))
        #expect(response.status == 503)
        #expect(response.headers.contains { $0.name == "Retry-After" })
        #expect(log.text.contains("reason=spool-unwritable"))
    }

    @Test func streamedBodyWithoutLengthIsBounded() {
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let body = Array(repeating: UInt8(ascii: "a"), count: 200_000)
        let ok = handle(request(body: body, signature: sign(body), contentLength: ""), MemoryBody(body))
        #expect(ok.status == 200)
        let tooLarge = handle(
            request(body: body, signature: sign(body), extra: ["HOOKGUARD_MAX_BODY": "100000"], contentLength: ""),
            MemoryBody(body))
        #expect(tooLarge.status == 413)
        #expect(spooled().count == 1)
    }
}
