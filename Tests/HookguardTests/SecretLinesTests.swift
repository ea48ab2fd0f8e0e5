import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// Standard Webhooks / Svix secrets whose base64 lost its `=` (accepted, as
/// the `standardwebhooks` and `svix` libraries accept them), and a secret
/// file with one unusable line (reported and skipped, the others kept).
@Suite struct SecretLinesTests {
    /// The secret the issue reports, and the same key with its padding.
    static let unpadded = "whsec_OGg6NYbF+IVj+TSFkQWmsxdykKqIwY8yPHV+flc8l/A"
    static let padded = unpadded + "="

    @Test func unpaddedWhsecIsTheSameKeyAsPadded() throws {
        for name in ["standard-webhooks", "svix", "clerk", "resend"] {
            guard let scheme = Scheme.presets[name] else { continue }
            let key = try scheme.key(from: Secret(Self.unpadded))
            let paddedKey = try scheme.key(from: Secret(Self.padded))
            #expect(key == paddedKey, "\(name)")
            #expect(key.bytes == [UInt8](Data(base64Encoded: String(Self.padded.dropFirst(6)))!), "\(name)")
        }
        // Two characters short, and the key without its whsec_ prefix.
        let scheme = Scheme.presets["standard-webhooks"]!
        let two = "whsec_" + Data([1, 2, 3, 4]).base64EncodedString()  // "AQIDBA=="
        let short = try scheme.key(from: Secret(String(two.dropLast(2))))
        let bare = try scheme.key(from: Secret("AQIDBA"))
        #expect(short.bytes == [1, 2, 3, 4])
        #expect(bare.bytes == [1, 2, 3, 4])
    }

    @Test func whatNoPaddingMendsIsStillRefused() {
        let scheme = Scheme.presets["standard-webhooks"]!
        for bad in ["whsec_", "whsec_A", "whsec_AQIDB", "whsec_not base64!", "whsec_AQ==AQ"] {
            #expect(throws: Scheme.KeyError.self, "\(bad)") { try scheme.key(from: Secret(bad)) }
        }
    }

    @Test func fileLinesAreNumbered() {
        let text = "# comment\n\nfirst\n  \n second \r\n#x\nthird"
        let lines = Secret.parseFileLines(Array(text.utf8))
        #expect(lines.map(\.line) == [3, 5, 7])
        #expect(lines.map(\.secret) == [Secret("first"), Secret("second"), Secret("third")])
    }

    @Test func oneUnusableLineIsSkippedAndNamed() throws {
        let scheme = Scheme.presets["standard-webhooks"]!
        let lines = Secret.parseFileLines(Array("# rotating\nwhsec_***\n\(Self.unpadded)\n".utf8))
        let keys = try LocationKeys(scheme, literal: nil, file: ("/s/file", lines))
        let expected = try scheme.key(from: Secret(Self.padded))
        #expect(keys.keys == [expected])
        #expect(
            keys.unusable == [
                UnusableSecret(
                    path: "/s/file", line: 2, problem: "a standard-webhooks secret is whsec_ followed by base64")
            ])
        #expect(
            keys.unusable[0].description == "/s/file line 2: a standard-webhooks secret is whsec_ followed by base64")
    }

    @Test func noUsableLineIsTheLocationsError() {
        let scheme = Scheme.presets["svix"]!
        let lines = Secret.parseFileLines(Array("whsec_***\nwhsec_!!!\n".utf8))
        #expect(throws: ConfigError.self) { try LocationKeys(scheme, literal: nil, file: ("/s/file", lines)) }
        do {
            _ = try LocationKeys(scheme, literal: nil, file: ("/s/file", lines))
        } catch {
            #expect(error.parameter == .secretFile)
            #expect(error.problem == "no usable secret: /s/file line 1: a svix secret is whsec_ followed by base64")
        }
        // A literal that cannot be a key is the location's error even beside good lines.
        let good = Secret.parseFileLines(Array(Self.unpadded.utf8))
        #expect(throws: ConfigError.self) {
            try LocationKeys(scheme, literal: Secret("whsec_***"), file: ("/s/f", good))
        }
        // A usable literal keeps a file of bad lines working.
        let rescued = try? LocationKeys(scheme, literal: Secret(Self.unpadded), file: ("/s/f", lines))
        #expect(rescued?.keys.count == 1)
    }

    @Test func handlerUsesTheGoodLinesAndLogsTheBadOnceEach() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sw.secret"
        try "whsec_not*base64\n\(Self.unpadded)\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let log = CapturedLog()
        let handler = WebhookHandler(logger: log.logger())
        let scheme = Scheme.presets["standard-webhooks"]!
        for n in 0..<2 {
            let body = Array("{\"n\":\(n)}".utf8)
            let now = Int(Date().timeIntervalSince1970)
            let signed = try SignatureSigner.headers(
                scheme, secret: Secret(Self.padded), body: body, timestamp: now, id: "msg_\(n)")
            var values = [
                "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/sw", "CONTENT_LENGTH": String(body.count),
                "HOOKGUARD_SCHEME": "standard-webhooks", "HOOKGUARD_SECRET_FILE": path,
                "HOOKGUARD_SPOOL": dir + "/spool",
            ]
            for (name, value) in signed { values[HeaderName(name).parameter] = value }
            var source = MemoryBody(body)
            #expect(handler.handle(params(values), body: &source).status == 200)
        }
        let warnings = log.lines.filter { $0.contains("secret-unusable") }
        #expect(warnings.count == 1)
        #expect(
            warnings.first?.contains("\(path) line 1: a standard-webhooks secret is whsec_ followed by base64") == true)
        #expect(!log.text.contains("not*base64"))
        #expect(!log.text.contains(Self.unpadded))
    }

    @Test func doctorNamesTheUnusableLine() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/svix.secret"
        try "\(Self.unpadded)\n\nwhsec_%%%\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        let checks = LocationDoctor(user: .current()).check(
            params([
                "HOOKGUARD_SCHEME": "svix", "HOOKGUARD_SECRET_FILE": path, "HOOKGUARD_SPOOL": dir + "/spool",
            ]))
        let failed = checks.filter { !$0.passed }
        #expect(failed.count == 1)
        #expect(failed.first?.what.contains("\(path) line 3: a svix secret is whsec_ followed by base64") == true)
        #expect(failed.first?.fix == "correct line 3 of \(path) or remove it")
    }
}
