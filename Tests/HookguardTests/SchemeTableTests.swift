import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// docs/schemes.md's schemes table is the catalog (`Scheme.catalog`), row for row;
/// and `custom` can describe every preset through its parameters.
@Suite struct SchemeTableTests {
    @Test func atLeastFortyPresetsEachDocumented() {
        #expect(Scheme.catalog.count >= 40)
        #expect(Set(Scheme.catalog.map(\.name)).count == Scheme.catalog.count)
        #expect(Scheme.presets.count == Scheme.catalog.count)
    }

    @Test func schemesPageTableIsTheCatalog() throws {
        let rows = try DocsPage("docs/schemes.md").tableRows(under: "Schemes", header: "| scheme |")
        let expected = Scheme.catalog.map(Self.row) + [Self.customRow]
        let same = rows == expected  // compared outside #expect, which would print both tables whole
        if !same {  // the rows to paste, whole
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("hookguard-schemes-table.md").path
            try? expected.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        #expect(
            same,
            """
            docs/schemes.md's ## Schemes table differs from the catalog (the whole table is in $TMPDIR/hookguard-schemes-table.md); rows to add or correct:
            \(expected.filter { !rows.contains($0) }.joined(separator: "\n"))
            rows to remove: \(rows.filter { !expected.contains($0) }.joined(separator: "\n"))
            """)
    }

    /// Each preset as `custom` parameters: the same scheme, so the same vectors verify.
    @Test(arguments: Scheme.catalog.filter { $0.encoding != .hexOrBase64 && $0.bodySignature == nil }.map(\.name))
    func customReproducesPreset(_ name: String) throws {
        let preset = try #require(Scheme.presets[name])
        var values = [
            "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SECRET": "s", "HOOKGUARD_SPOOL": "/tmp/s",
            "HOOKGUARD_URL": "https://example.org/hooks",
        ]
        for (parameter, value) in Self.customParameters(preset) { values[parameter.rawValue] = value }
        let custom = try LocationConfig(params: params(values)).scheme
        #expect(custom.signatureHeader == preset.signatureHeader)
        #expect(custom.algorithm == preset.algorithm)
        #expect(custom.encoding == preset.encoding)
        #expect(custom.prefix == preset.prefix)
        #expect(custom.separator == preset.separator)
        #expect(custom.timestamp == preset.timestamp)
        #expect(custom.timestampFormat == preset.timestampFormat)
        #expect(custom.message == preset.message)
        #expect(custom.keyForm == preset.keyForm)
        #expect(custom.idHeader == preset.idHeader)
        #expect(custom.eventHeader == preset.eventHeader)
        #expect(custom.publicKey == preset.publicKey)
    }

    @Test func schemesPageCustomExampleIsSlack() throws {
        // docs/schemes.md's example: `custom` parameters that reproduce `slack`, checked
        // against Slack's published example.
        let config = try LocationConfig(
            params: params([
                "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Slack-Signature",
                "HOOKGUARD_PREFIX": "v0=", "HOOKGUARD_TIMESTAMP_HEADER": "X-Slack-Request-Timestamp",
                "HOOKGUARD_MESSAGE": "v0:{timestamp}:{body}", "HOOKGUARD_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
                "HOOKGUARD_SPOOL": "/tmp/s",
            ]))
        let body =
            "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            + "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            + "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            + "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        try SignatureVerifier.verify(
            config.scheme, keys: [Secret("8f742231b10e8888abcd99yyyzzz85a5")],
            params: params([
                "HTTP_X_SLACK_REQUEST_TIMESTAMP": "1531420618",
                "HTTP_X_SLACK_SIGNATURE": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ]), body: Array(body.utf8), now: 1_531_420_618, tolerance: config.tolerance)
        #expect(config.tolerance == 300)
    }

    @Test func customTemplateMistakesAreConfigErrors() {
        let base = [
            "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Sig", "HOOKGUARD_SECRET": "s",
            "HOOKGUARD_SPOOL": "/tmp/s",
        ]
        let cases: [([String: String], Parameter)] = [
            (["HOOKGUARD_MESSAGE": "{timestamp}.{body}"], .message),  // no timestamp source
            (["HOOKGUARD_TIMESTAMP_HEADER": "X-Ts"], .message),  // timestamp not signed
            (["HOOKGUARD_MESSAGE": "{body}{body}"], .message),
            (["HOOKGUARD_MESSAGE": "{id}.{body}"], .message),  // no id header
            (["HOOKGUARD_MESSAGE": "{timestamp}"], .message),  // no body
            (["HOOKGUARD_TIMESTAMP_FIELD": "t=", "HOOKGUARD_MESSAGE": "{timestamp}.{body}"], .timestampField),
            (["HOOKGUARD_SEPARATOR": "ab"], .separator),
            (["HOOKGUARD_SEPARATOR": "x"], .separator),
            (
                [
                    "HOOKGUARD_TIMESTAMP_FORMAT": "fortnights", "HOOKGUARD_TIMESTAMP_HEADER": "X-Ts",
                    "HOOKGUARD_MESSAGE": "{timestamp}{body}",
                ], .timestampFormat
            ),
            (["HOOKGUARD_KEY_FORM": "hex-ish"], .keyForm),
            (["HOOKGUARD_EVENT_HEADER": "X Event"], .eventHeader),
            (
                [
                    "HOOKGUARD_ENCODING": "token", "HOOKGUARD_TIMESTAMP_HEADER": "X-Ts",
                    "HOOKGUARD_MESSAGE": "{timestamp}{body}",
                ], .encoding
            ),
        ]
        for (extra, parameter) in cases {
            #expect(throws: ConfigError.self, "\(extra)") {
                try LocationConfig(params: params(base.merging(extra) { $1 }))
            }
            do {
                _ = try LocationConfig(params: params(base.merging(extra) { $1 }))
            } catch {
                #expect(error.parameter == parameter, "\(extra): \(error)")
            }
        }
    }

    @Test func rfc3339Timestamps() {
        let format = TimestampFormat.rfc3339
        #expect(format.seconds("2023-11-14T22:13:20Z") == 1_700_000_000)
        #expect(format.seconds("2023-11-14T22:13:20.123456789Z") == 1_700_000_000)
        #expect(format.seconds("2023-11-14T23:13:20+01:00") == 1_700_000_000)
        #expect(format.seconds("2023-11-14T21:13:20.5-01:00") == 1_700_000_000)
        for bad in [
            "", "1700000000", "2023-11-14 22:13", "2023-11-14T22:13:20", "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20.1234567891Z", "2023-13-14T22:13:20Z", "2023-11-14T22:13:20Zjunk",
        ] {
            #expect(format.seconds(Substring(bad)) == nil, "\(bad)")
        }
        #expect(format.text(1_700_000_000) == "2023-11-14T22:13:20Z")
        #expect(TimestampFormat.unixMilliseconds.seconds("1700000000999") == 1_700_000_000)
        #expect(TimestampFormat.unixMilliseconds.text(1_700_000_000) == "1700000000000")
    }

    // MARK: the table's rows, rendered from the data

    static let customRow =
        "| `custom` | `HOOKGUARD_SIGNATURE_HEADER` | `HOOKGUARD_MESSAGE` (`{body}`) | `HOOKGUARD_PREFIX` + `HOOKGUARD_ENCODING` of HMAC-`HOOKGUARD_ALGORITHM`; see below | `HOOKGUARD_TOLERANCE` | `HOOKGUARD_ID_HEADER` / `HOOKGUARD_EVENT_HEADER` | — | — |"

    static func row(_ scheme: Scheme) -> String {
        var headers = "`\(scheme.signatureHeader)`"
        if case .header(let name) = scheme.timestamp { headers += ", `\(name)`" }
        let signed =
            scheme.encoding == .token
            ? "—"
            : scheme.bodySignature?.itemFields.map { "`\($0.joined(separator: ":"))` of each item" }
                ?? "`\(Scheme.MessagePart.template(scheme.message))`"
        let ids = [scheme.idHeader, scheme.eventHeader].map { $0.map { "`\($0)`" } ?? "—" }.joined(separator: " / ")
        let docs = scheme.documentation.map { "[docs](\($0))" } ?? "—"
        let tolerance = scheme.isTimestamped ? "\(scheme.tolerance) s" : "—"
        let handshake = scheme.handshake.map { "`\($0.rawValue)`" } ?? "—"
        return
            "| `\(scheme.name)` | \(headers) | \(signed) | \(value(scheme)) | \(tolerance) | \(ids) | \(handshake) | \(docs) |"
    }

    static func value(_ scheme: Scheme) -> String {
        if scheme.encoding == .token { return "the secret token itself, compared in constant time" }
        switch scheme.publicKey {
        case .ed25519?:
            return "\(scheme.encoding.rawValue) Ed25519 signature; the key is the sender's public key in hex"
        case .ecdsaP256?:
            return "\(scheme.encoding.rawValue) DER ECDSA P-256/SHA-256 signature; the key is the base64 DER public key"
        case nil: break
        }
        let encoding = scheme.encoding == .hexOrBase64 ? "hex or base64" : scheme.encoding.rawValue
        var text = "\(encoding) HMAC-\(scheme.algorithm.rawValue.uppercased())"
        if !scheme.prefix.isEmpty { text = "`\(scheme.prefix)` + " + text }
        if case .field(let field) = scheme.timestamp, let separator = scheme.separator {
            text = "`\(field)<timestamp>\(separator)` then " + text
        }
        if let separator = scheme.separator {
            text += ", several separated by `\(separator == " " ? "space" : String(separator))`"
        }
        switch scheme.timestampFormat {
        case .unixSeconds: break
        case .unixMilliseconds: text += "; timestamp in Unix milliseconds"
        case .rfc3339: text += "; timestamp in RFC 3339"
        }
        if scheme.keyForm == .whsecBase64 { text += "; the key is the base64 after `whsec_`" }
        if scheme.keyForm == .hex { text += "; the key is given in hex" }
        if let asymmetric = scheme.asymmetricPrefix {
            text += "; `\(asymmetric)` entries: base64 Ed25519 under a `whpk_` public key"
        }
        return text
    }

    /// The HOOKGUARD_* parameters that describe `scheme` as `custom`.
    static func customParameters(_ scheme: Scheme) -> [Parameter: String] {
        var values: [Parameter: String] = [
            .signatureHeader: scheme.signatureHeader.display,
            .algorithm: scheme.publicKey?.rawValue ?? scheme.algorithm.rawValue,
            .encoding: scheme.encoding.rawValue, .message: Scheme.MessagePart.template(scheme.message),
            .timestampFormat: scheme.timestampFormat.rawValue, .keyForm: scheme.keyForm.rawValue,
        ]
        if !scheme.prefix.isEmpty { values[.prefix] = scheme.prefix }
        if let separator = scheme.separator { values[.separator] = separator == " " ? "space" : String(separator) }
        switch scheme.timestamp {
        case .header(let name): values[.timestampHeader] = name.display
        case .field(let field): values[.timestampField] = field
        case .body, nil: break
        }
        if let id = scheme.idHeader { values[.idHeader] = id.display }
        if let event = scheme.eventHeader { values[.eventHeader] = event.display }
        return values
    }
}
