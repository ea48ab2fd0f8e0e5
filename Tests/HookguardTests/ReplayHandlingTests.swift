import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// The request path with timestamped schemes and HOOKGUARD_DEDUPE.
@Suite struct ReplayHandlingTests {
    let secret = "whsec_" + Data(Array(repeating: UInt8(42), count: 32)).base64EncodedString()
    let fixture: HandlerFixture

    init() throws {
        fixture = try HandlerFixture()
    }

    func request(_ body: [UInt8], timestamp: Int, id: String, extra: [String: String] = [:]) throws -> RequestParams {
        let scheme = try #require(Scheme.presets["standard-webhooks"])
        var values = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/standard-webhooks", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SCHEME": "standard-webhooks", "HOOKGUARD_SECRET": secret,
            "HOOKGUARD_SPOOL": fixture.dir + "/spool",
            "HOOKGUARD_DEDUPE": "3600",
        ]
        for line in try SignatureSigner.headers(
            scheme, secret: Secret(secret), body: body, timestamp: timestamp, id: id)
        {
            values[HeaderName(line.name).parameter] = line.value
        }
        for (key, value) in extra { values[key] = value }
        return params(values)
    }

    func handle(_ params: RequestParams, _ body: [UInt8]) -> Response {
        var source = MemoryBody(body)
        return fixture.handler.handle(params, body: &source)
    }

    func answeredID(_ response: Response) throws -> String {
        let answer = try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String])
        return try #require(answer["id"])
    }

    @Test func aRetryIsAnsweredWithTheFirstIdAndNotSpooledAgain() throws {
        let body = Array("{\"type\":\"invoice.paid\"}".utf8)
        let now = Int(Date().timeIntervalSince1970)
        let first = handle(try request(body, timestamp: now, id: "msg_retry"), body)
        #expect(first.status == 200)
        let id = try answeredID(first)
        // The retry is signed anew, as senders do, with a later timestamp.
        let retry = handle(try request(body, timestamp: now + 5, id: "msg_retry"), body)
        #expect(retry.status == 200)
        #expect(try answeredID(retry) == id)
        #expect(fixture.spooled() == ["\(id).json"])
        #expect(fixture.log.text.contains("reason=duplicate"))
        #expect(fixture.log.text.contains("delivery_id=msg_retry"))

        let entry = try #require(
            JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: fixture.dir + "/spool/new/\(id).json")))
                as? [String: Any])
        #expect(entry["delivery_id"] as? String == "msg_retry")

        let other = handle(try request(body, timestamp: now, id: "msg_other"), body)
        #expect(try answeredID(other) != id)
        #expect(fixture.spooled().count == 2)
    }

    @Test func staleAndFutureAreRefusedLikeABadSignature() throws {
        let body = Array("{}".utf8)
        let now = Int(Date().timeIntervalSince1970)
        let stale = handle(try request(body, timestamp: now - 3600, id: "msg_stale"), body)
        #expect(stale.status == 500)
        #expect(fixture.log.text.contains("reason=signature-stale"))
        let future = handle(
            try request(body, timestamp: now + 3600, id: "msg_future", extra: ["HOOKGUARD_REJECT_STATUS": "401"]), body)
        #expect(future.status == 401)
        #expect(fixture.log.text.contains("reason=signature-future"))
        #expect(String(decoding: future.body, as: UTF8.self).contains("future"))
        let wide = handle(
            try request(body, timestamp: now - 3600, id: "msg_wide", extra: ["HOOKGUARD_TOLERANCE": "7200"]), body)
        #expect(wide.status == 200)
        #expect(fixture.spooled().count == 1)
        #expect(!fixture.log.text.contains(secret))
    }

    @Test func aRefusedCopyClaimsNothing() throws {
        let body = Array("{}".utf8)
        let now = Int(Date().timeIntervalSince1970)
        // A forgery with a genuine delivery's id must not make the genuine one a "duplicate".
        var forged = try request(body, timestamp: now, id: "msg_x")
        forged["HOOKGUARD_SECRET"] = "whsec_" + Data(Array(repeating: UInt8(1), count: 32)).base64EncodedString()
        #expect(handle(forged, body).status == 500)
        // The spool cannot be written (new/ is a file): 503, and the record stays empty.
        try FileManager.default.createDirectory(atPath: fixture.dir + "/spool", withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: fixture.dir + "/spool/new", contents: Data())
        let blocked = handle(try request(body, timestamp: now, id: "msg_x"), body)
        #expect(blocked.status == 503)
        #expect(fixture.log.text.contains("reason=spool-unwritable"))
        // Once it can, the sender's retry is stored.
        try FileManager.default.removeItem(atPath: fixture.dir + "/spool/new")
        let genuine = handle(try request(body, timestamp: now, id: "msg_x"), body)
        #expect(genuine.status == 200)
        #expect(fixture.spooled().count == 1)
    }

    @Test func dedupeOnASchemeWithoutIdsIsAConfigError() throws {
        let body = Array("{}".utf8)
        var values = try request(body, timestamp: 0, id: "x").values
        values["HOOKGUARD_SCHEME"] = "slack"
        #expect(handle(params(values), body).status == 500)
        #expect(fixture.log.text.contains("reason=config-invalid"))
        #expect(fixture.log.text.contains("HOOKGUARD_DEDUPE"))
    }

    @Test func anUnusableStandardWebhooksSecretIsAConfigError() throws {
        let body = Array("{}".utf8)
        var values = try request(body, timestamp: Int(Date().timeIntervalSince1970), id: "x").values
        values["HOOKGUARD_SECRET"] = "whsec_!!not base64!!"
        #expect(handle(params(values), body).status == 500)
        #expect(fixture.log.text.contains("reason=config-invalid"))
        #expect(fixture.log.text.contains("HOOKGUARD_SECRET: a standard-webhooks secret is whsec_ followed by base64"))
        #expect(!fixture.log.text.contains("!!not base64!!"))
    }
}
