import Foundation
import HookguardTesting
import Logging
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// One case of `Tests/answers.json`: a location's parameters and one request, and the answer
/// (status, logged reason, stored or not) that `Tests/integration/test_answers.py` also expects
/// from nginx + hookguard. The file's `fields` say what each field means.
struct AnswerCase: Decodable, Sendable, CustomTestStringConvertible {
    struct Request: Decodable, Sendable {
        var method: String?
        var body: String?
        var bodySize: Int?
        var headers: [String: String]?
        var signature: String?
        var signedAs: [String]?
        var signingSecret: String?
        var contentLength: String?
        var clientSends: Int?
    }

    struct Answer: Decodable, Sendable {
        var status: Int
        var reason: String
        var stored: Bool
        var headers: [String: String]?
        var event: String?
        var recordedHeaders: [String: String]?
        var logged: [String]?
        var untouched: [String]?
    }

    var name: String
    var suites: [String]?
    var params: [String: String]
    var request: Request
    var answer: Answer

    var testDescription: String { name }
    var runsInProcess: Bool { suites?.contains("swift") ?? true }
}

struct AnswerTable: Decodable {
    var files: [String: String]
    var cases: [AnswerCase]

    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("answers.json").path

    static func load() throws -> AnswerTable {
        try JSONDecoder().decode(AnswerTable.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

@Suite struct HandlerTests {
    let fixture: HandlerFixture

    init() throws {
        fixture = try HandlerFixture()
    }

    var spool: String { fixture.dir + "/spool" }

    func handle(_ params: RequestParams, _ body: MemoryBody) -> Response {
        var source = body
        return fixture.handler.handle(params, body: &source)
    }

    /// `{dir}` and `{spool}` in the table, for this test's directory.
    func filled(_ text: String) -> String {
        text.replacingOccurrences(of: "{dir}", with: fixture.dir).replacingOccurrences(of: "{spool}", with: spool)
    }

    /// Both suites read the same file: an empty or half-read table would pass them both.
    @Test func answerTableIsReadWhole() throws {
        let names = try AnswerTable.load().cases.map(\.name)
        #expect(names.count >= 30, "\(AnswerTable.path) has \(names.count) cases")
        #expect(Set(names).count == names.count, "two cases share a name (and so a location)")
    }

    @Test(arguments: try AnswerTable.load().cases.filter(\.runsInProcess))
    func answers(_ answerCase: AnswerCase) throws {
        for (name, text) in try AnswerTable.load().files {
            // hookguard refuses a secret file everyone can read
            #expect(
                FileManager.default.createFile(
                    atPath: fixture.dir + "/" + name, contents: Data(text.utf8),
                    attributes: [.posixPermissions: 0o600]))
        }
        let request = answerCase.request
        var body = Array((request.body ?? "").utf8)
        if let size = request.bodySize {
            body = Array((body + Array(repeating: UInt8(ascii: " "), count: size)).prefix(size))
        }

        var values = answerCase.params.mapValues(filled)
        values["REQUEST_METHOD"] = request.method ?? "POST"
        values["REQUEST_URI"] = "/t/answers/" + answerCase.name
        values["CONTENT_LENGTH"] = request.contentLength ?? String(body.count)
        for (name, value) in request.headers ?? [:] { values[HeaderName(name).parameter] = filled(value) }
        var signatures: [String] = []
        switch request.signature {
        case nil:
            let secret = Secret(request.signingSecret ?? answerCase.params["HOOKGUARD_SECRET"] ?? "")
            // `custom` is no preset: its parameters are the location's, so only the other suite signs it.
            for scheme in (request.signedAs ?? answerCase.params["HOOKGUARD_SCHEME"].map { [$0] } ?? [])
                .compactMap({ Scheme.presets[$0] })
            {
                signatures.append(scheme.signature(of: body, secret: secret))
                values[scheme.signatureHeader.parameter] = signatures.last
            }
        case "missing":
            break
        case let literal?:
            let scheme = try #require(Scheme.presets[answerCase.params["HOOKGUARD_SCHEME"] ?? ""])
            values[scheme.signatureHeader.parameter] = literal
        }

        let response = handle(params(values), MemoryBody(body, failAfter: request.clientSends))

        let expected = answerCase.answer
        #expect(response.status == expected.status)
        let lines = fixture.log.lines
        #expect(
            lines.contains { $0.contains("status=\(expected.status)") && $0.contains("reason=\(expected.reason)") },
            "no log line with status=\(expected.status) reason=\(expected.reason):\n\(fixture.log.text)")
        for (name, value) in expected.headers ?? [:] {
            #expect(response.headers.contains(Response.Header(name: name, value: value)), "\(response.headers)")
        }
        for text in expected.logged ?? [] { #expect(fixture.log.text.contains(text), "\(fixture.log.text)") }
        for path in expected.untouched ?? [] { #expect(!FileManager.default.fileExists(atPath: filled(path))) }
        if expected.stored {
            let answer = try #require(JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String])
            let id = try #require(answer["id"])
            #expect(fixture.spooled() == ["\(id).json"])
            let entry = try #require(
                JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: spool + "/new/\(id).json")))
                    as? [String: Any])
            #expect(entry["body"] as? String == String(decoding: body, as: UTF8.self))
            #expect(entry["uri"] as? String == values["REQUEST_URI"])
            if let event = expected.event { #expect(entry["event"] as? String == event) }
            let recorded = entry["headers"] as? [String: String] ?? [:]
            for (name, value) in expected.recordedHeaders ?? [:] { #expect(recorded[name] == value, "\(recorded)") }
        } else {
            #expect(fixture.spooled().isEmpty)
        }
        if let secret = answerCase.params["HOOKGUARD_SECRET"], !secret.isEmpty {
            #expect(!fixture.log.text.contains(secret))
            #expect(!String(decoding: response.body, as: UTF8.self).contains(secret))
        }
        for signature in signatures { #expect(!fixture.log.text.contains(signature)) }
    }

    /// Adyen wants exactly `[accepted]`; the id is in the log line and names the spooled file.
    @Test func adyenAnsweredAcceptedWithTheIdLogged() throws {
        // Adyen's documented example (Vectors/make_bodysigned.py).
        let vector = try #require(
            try loadVectors("bodysigned", as: [BodySignedVector].self).first { $0.scheme == "adyen" })
        let body = Array(vector.body.utf8)
        let values = [
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/adyen", "CONTENT_LENGTH": String(body.count),
            "HOOKGUARD_SCHEME": "adyen", "HOOKGUARD_SECRET": vector.secret, "HOOKGUARD_SPOOL": spool,
        ]
        let response = handle(params(values), MemoryBody(body))
        #expect(response.status == 200)
        #expect(response.body == Array("[accepted]".utf8))
        #expect(fixture.log.text.contains("reason=accepted"))
        let id = try #require(fixture.log.text.firstMatch(of: /\bid=([0-9a-f-]{36})/)?.1)
        #expect(fixture.spooled() == ["\(id).json"])
        // A forged one is refused as any other scheme's, not answered [accepted].
        var forged = values
        forged["HOOKGUARD_SECRET"] = "00ff"
        let refused = handle(params(forged), MemoryBody(body))
        #expect(refused.status == 500)
        #expect(refused.body != Array("[accepted]".utf8))
        #expect(fixture.spooled().count == 1)
    }
}
