import Foundation
import Glibc
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct ConfigTests {
    let base = [
        "HOOKGUARD_SCHEME": "tito", "HOOKGUARD_SECRET_FILE": "/etc/hookguard/tito.secret",
        "HOOKGUARD_SPOOL": "/var/spool/hookguard/tito",
    ]

    func config(_ changes: [String: String?]) throws(ConfigError) -> LocationConfig {
        var values = base
        for (key, value) in changes { values[key] = value }
        return try LocationConfig(params: params(values))
    }

    @Test func defaults() throws {
        let config = try config([:])
        #expect(config.scheme.name == "tito")
        #expect(config.maxBody == 25 * 1024 * 1024)
        #expect(config.rejectStatus == 500)
        #expect(config.spool == "/var/spool/hookguard/tito")
    }

    @Test(
        arguments: [
            (["HOOKGUARD_SCHEME": nil], Parameter.scheme),
            (["HOOKGUARD_SCHEME": ""], Parameter.scheme),
            (["HOOKGUARD_SCHEME": "paypal"], Parameter.scheme),
            (["HOOKGUARD_SECRET_FILE": nil], Parameter.secretFile),
            (["HOOKGUARD_SECRET_FILE": "relative/tito.secret"], Parameter.secretFile),
            (["HOOKGUARD_SPOOL": nil], Parameter.spool),
            (["HOOKGUARD_SPOOL": "spool"], Parameter.spool),
            (["HOOKGUARD_MAX_BODY": "lots"], Parameter.maxBody),
            (["HOOKGUARD_MAX_BODY": "0"], Parameter.maxBody),
            (["HOOKGUARD_REJECT_STATUS": "200"], Parameter.rejectStatus),
            (["HOOKGUARD_REJECT_STATUS": "abc"], Parameter.rejectStatus),
            (["HOOKGUARD_SCHEME": "custom"], Parameter.signatureHeader),
            (["HOOKGUARD_SOCKET": "reader.sock"], Parameter.socket),
            (["HOOKGUARD_NATS_URL": "http://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks"], Parameter.natsURL),
            (
                ["HOOKGUARD_NATS_URL": "nats://user:pass@127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks"],
                Parameter.natsURL
            ),
            (["HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222"], Parameter.natsSubject),
            (
                ["HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks.>"],
                Parameter.natsSubject
            ),
            (
                ["HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks..x"],
                Parameter.natsSubject
            ),
            (["HOOKGUARD_NATS_SUBJECT": "hooks"], Parameter.natsSubject),
            (
                [
                    "HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "h",
                    "HOOKGUARD_SOCKET": "/r.sock",
                ], Parameter.natsURL
            ),
            (
                [
                    "HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "h",
                    "HOOKGUARD_NATS_CREDS": "user.creds",
                ], Parameter.natsCredentials
            ),
            (["HOOKGUARD_SOCKET_ACK": "1"], Parameter.socketAck),
            (["HOOKGUARD_SOCKET": "/run/r.sock", "HOOKGUARD_SOCKET_ACK": "maybe"], Parameter.socketAck),
            (["HOOKGUARD_SOCKET": "/run/r.sock", "HOOKGUARD_SOCKET_TIMEOUT_MS": "0"], Parameter.socketTimeout),
            (["HOOKGUARD_SOCKET": "/run/r.sock", "HOOKGUARD_SOCKET_TIMEOUT_MS": "soon"], Parameter.socketTimeout),
            (["HOOKGUARD_BREAKER_FAILURES": "2"], Parameter.breakerFailures),  // spool only: nothing to cut off
            (["HOOKGUARD_SOCKET": "/r.sock", "HOOKGUARD_BREAKER_FAILURES": "0"], Parameter.breakerFailures),
            (["HOOKGUARD_SOCKET": "/r.sock", "HOOKGUARD_BREAKER_BACKOFF_MS": "soon"], Parameter.breakerBackoff),
            (["HOOKGUARD_SOCKET": "/r.sock", "HOOKGUARD_BREAKER_MAX_IN_FLIGHT": "-1"], Parameter.breakerMaxInFlight),
            (["HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X_Bad Header"], Parameter.signatureHeader),
            (
                ["HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Sig", "HOOKGUARD_ALGORITHM": "md5"],
                Parameter.algorithm
            ),
            (
                ["HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Sig", "HOOKGUARD_ENCODING": "base32"],
                Parameter.encoding
            ),
        ] as [([String: String?], Parameter)])
    func misconfigurationNamesTheParameter(_ changes: [String: String?], _ parameter: Parameter) {
        #expect {
            _ = try config(changes)
        } throws: { error in
            (error as? ConfigError)?.parameter == parameter
        }
    }

    @Test func natsDestinationAndSubjects() throws {
        let config = try config([
            "HOOKGUARD_SPOOL": nil, "HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222",
            "HOOKGUARD_NATS_SUBJECT": "hooks.{scheme}.{event}",
            "HOOKGUARD_NATS_TOKEN_FILE": "/etc/hookguard/nats.token",
        ])
        let nats = try #require(config.nats)
        #expect(nats.timeoutMilliseconds == 2000 && nats.tokenFile == "/etc/hookguard/nats.token")
        #expect(nats.subject(scheme: "tito", event: "ticket.created") == "hooks.tito.ticket.created")
        #expect(nats.subject(scheme: "tito", event: nil) == "hooks.tito.none")
        #expect(nats.subject(scheme: "tito", event: "*.>") == "hooks.tito._._")
        #expect(nats.subject(scheme: "tito", event: ".x..y.") == "hooks.tito._.x._.y._")
        #expect(nats.subject(scheme: "tito", event: "über event") == "hooks.tito._ber_event")
    }

    @Test func socketAloneIsADestination() throws {
        let config = try config([
            "HOOKGUARD_SPOOL": nil, "HOOKGUARD_SOCKET": "/run/reader.sock", "HOOKGUARD_SOCKET_ACK": "1",
        ])
        #expect(config.spool == nil)
        #expect(
            config.socket
                == (try SocketDestination(path: "/run/reader.sock", acknowledged: true, timeoutMilliseconds: 2000)))
        let both = try self.config(["HOOKGUARD_SOCKET": "/run/reader.sock", "HOOKGUARD_SOCKET_TIMEOUT_MS": "250"])
        #expect(both.spool == "/var/spool/hookguard/tito")
        #expect(both.socket?.timeoutMilliseconds == 250)
        #expect(both.socket?.acknowledged == true, "acknowledged unless the location opts out")
        let unacknowledged = try self.config(["HOOKGUARD_SOCKET": "/run/reader.sock", "HOOKGUARD_SOCKET_ACK": "0"])
        #expect(unacknowledged.socket?.acknowledged == false)
    }

    /// The command line builds destinations without a location: the same checks, the same words.
    @Test func destinationsRefuseWhatALocationRefuses() {
        func problem(_ build: () throws -> Void) -> String? {
            do { try build() } catch { return "\(error)" }
            return nil
        }
        let url = "nats://127.0.0.1:4222"
        let cases: [(String?, [String: String?])] = [
            (
                problem { _ = try NATSDestination(url: "http://127.0.0.1:4222", subjectTemplate: "hooks") },
                ["HOOKGUARD_NATS_URL": "http://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks"]
            ),
            (
                problem { _ = try NATSDestination(url: "nats://u:p@127.0.0.1:4222", subjectTemplate: "hooks") },
                ["HOOKGUARD_NATS_URL": "nats://u:p@127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "hooks"]
            ),
            (problem { _ = try NATSDestination(url: url, subjectTemplate: "") }, ["HOOKGUARD_NATS_URL": url]),
            (
                problem { _ = try NATSDestination(url: url, subjectTemplate: "hooks.>") },
                ["HOOKGUARD_NATS_URL": url, "HOOKGUARD_NATS_SUBJECT": "hooks.>"]
            ),
            (
                problem { _ = try NATSDestination(url: url, subjectTemplate: "h", tokenFile: "nats.token") },
                ["HOOKGUARD_NATS_URL": url, "HOOKGUARD_NATS_SUBJECT": "h", "HOOKGUARD_NATS_TOKEN_FILE": "nats.token"]
            ),
            (
                problem { _ = try NATSDestination(url: url, subjectTemplate: "h", timeoutMilliseconds: 600_001) },
                ["HOOKGUARD_NATS_URL": url, "HOOKGUARD_NATS_SUBJECT": "h", "HOOKGUARD_NATS_TIMEOUT_MS": "600001"]
            ),
            (problem { _ = try SocketDestination(path: "reader.sock") }, ["HOOKGUARD_SOCKET": "reader.sock"]),
            (
                problem { _ = try SocketDestination(path: "/run/r.sock", timeoutMilliseconds: 0) },
                ["HOOKGUARD_SOCKET": "/run/r.sock", "HOOKGUARD_SOCKET_TIMEOUT_MS": "0"]
            ),
        ]
        for (direct, params) in cases {
            let fromLocation = problem { _ = try config(params) }
            #expect(direct != nil && direct == fromLocation, "\(params)")
        }
        #expect(
            problem {
                _ = try NATSDestination(url: url, subjectTemplate: "hooks.{scheme}", timeoutMilliseconds: 600_000)
            } == nil)
    }

    @Test func rolesAreTheParameterSpellings() {
        #expect(Role(RequestParams([:])) == .receiver && Role(RequestParams(["HOOKGUARD_ROLE": ""])) == .receiver)
        #expect(Role(RequestParams(["HOOKGUARD_ROLE": "metrics"])) == .metrics)
        #expect(Role(RequestParams(["HOOKGUARD_ROLE": "health"])) == .health)
        #expect(Role(RequestParams(["HOOKGUARD_ROLE": "Metrics"])) == nil)
        #expect(Role.names == "receiver, metrics, health")
    }

    @Test func breakerParameters() throws {
        let defaults = try config(["HOOKGUARD_SOCKET": "/run/reader.sock"])
        #expect(defaults.breaker == BreakerPolicy(failures: 3, backoffMilliseconds: 5000, maxInFlight: nil))
        let set = try config([
            "HOOKGUARD_NATS_URL": "nats://127.0.0.1:4222", "HOOKGUARD_NATS_SUBJECT": "h",
            "HOOKGUARD_BREAKER_FAILURES": "1", "HOOKGUARD_BREAKER_BACKOFF_MS": "250",
            "HOOKGUARD_BREAKER_MAX_IN_FLIGHT": "2",
        ])
        #expect(set.breaker == BreakerPolicy(failures: 1, backoffMilliseconds: 250, maxInFlight: 2))
    }

    @Test func literalSecretAloneIsEnough() throws {
        let config = try config(["HOOKGUARD_SECRET_FILE": nil, "HOOKGUARD_SECRET": "literal"])
        #expect(config.literalSecret == Secret("literal"))
        #expect(config.secretFile == nil)
    }

    @Test func configErrorNeverShowsTheSecret() {
        do {
            _ = try config(["HOOKGUARD_SECRET": "hunter2", "HOOKGUARD_SCHEME": "nope"])
        } catch {
            #expect(!error.description.contains("hunter2"))
            #expect(error.description.hasPrefix("HOOKGUARD_SCHEME: unknown scheme \"nope\""))
        }
    }

    @Test func secretFileParsing() {
        let text = "# rotated 2026-11\n\n  old-secret  \r\nnew-secret\n#comment\n\t\n"
        #expect(Secret.parseFile(Array(text.utf8)) == [Secret("old-secret"), Secret("new-secret")])
    }

    @Test func secretFileCacheRereadsOnChange() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/s.secret"
        let cache = SecretFileCache()
        try "first\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o600)
        #expect(try cache.secrets(at: path) == [Secret("first")])
        try "second\nthird\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try cache.secrets(at: path) == [Secret("second"), Secret("third")])
        // Replaced by rename, same size: a new inode.
        try "fourth\nthird\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        #expect(try cache.secrets(at: path) == [Secret("fourth"), Secret("third")])
    }

    @Test func secretFileProblems() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = SecretFileCache()
        #expect(throws: ConfigError.self) { try cache.secrets(at: dir + "/missing") }
        #expect(throws: ConfigError.self) { try cache.secrets(at: dir) }
        try "world\n".write(toFile: dir + "/open", atomically: false, encoding: .utf8)
        chmod(dir + "/open", 0o644)
        #expect {
            try cache.secrets(at: dir + "/open")
        } throws: { error in
            (error as? ConfigError)?.problem.contains("readable by everyone") == true
        }
        try "# only a comment\n\n".write(toFile: dir + "/empty", atomically: false, encoding: .utf8)
        chmod(dir + "/empty", 0o640)
        #expect {
            try cache.secrets(at: dir + "/empty")
        } throws: { error in
            (error as? ConfigError)?.problem.contains("holds no secret") == true
        }
    }
}
