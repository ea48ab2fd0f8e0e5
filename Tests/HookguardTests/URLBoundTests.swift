import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

struct URLBoundVector: Decodable, CustomTestStringConvertible {
    var scheme: String, secret: String, url: String, method: String, body: String
    var headers: [String: String], now: Int, signer: Bool, note: String
    var testDescription: String { "\(scheme): \(note)" }
    var request: RequestParams {
        var values = Dictionary(uniqueKeysWithValues: headers.map { (HeaderName($0.key).parameter, $0.value) })
        values["REQUEST_METHOD"] = method
        return params(values)
    }
}

/// Vectors/make_urlbound.py: Twilio's documented example and the `twilio`
/// library's RequestValidator; Python's hmac for square and hubspot.
private let vectors = (try? loadVectors("urlbound", as: [URLBoundVector].self)) ?? []

@Suite struct URLBoundTests {
    @Test func vectorsLoaded() { #expect(vectors.count == 6) }

    @Test(arguments: vectors)
    func genuineOtherURLTamperedAndSigned(_ vector: URLBoundVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        let key = [Secret(vector.secret)]
        let body = Array(vector.body.utf8)
        try SignatureVerifier.verify(
            scheme, keys: key, params: vector.request, body: body, now: vector.now, url: vector.url)
        let mismatch = VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: key, params: vector.request, body: body, now: vector.now, url: vector.url + "x")
        }
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret(vector.secret + "x")], params: vector.request, body: body, now: vector.now,
                url: vector.url)
        }
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: key, params: vector.request, body: body + Array("&x=1".utf8), now: vector.now,
                url: vector.url)
        }
        if vector.signer {
            let lines = try SignatureSigner.headers(
                scheme, secret: Secret(vector.secret), body: body, timestamp: vector.now, id: nil, url: vector.url)
            #expect(
                Dictionary(uniqueKeysWithValues: lines.map { ($0.name.lowercased(), $0.value) })
                    == Dictionary(uniqueKeysWithValues: vector.headers.map { ($0.key.lowercased(), $0.value) }))
        }
    }

    @Test func twilioTriesTheDefaultPortBothWays() {
        #expect(
            SignedURL.candidates("https://a.example/x?y=1", portVariants: true)
                == ["https://a.example/x?y=1", "https://a.example:443/x?y=1"])
        #expect(
            SignedURL.candidates("http://a.example:80/x", portVariants: true) == [
                "http://a.example:80/x", "http://a.example/x",
            ])
        #expect(SignedURL.candidates("https://a.example:8443/x", portVariants: true) == ["https://a.example:8443/x"])
        #expect(SignedURL.candidates("https://a.example/x", portVariants: false) == ["https://a.example/x"])
    }

    @Test func urlBoundSchemesNeedTheURL() throws {
        for name in ["twilio", "square", "hubspot"] {
            #expect(throws: ConfigError.self) {
                try LocationConfig(
                    params: params(["HOOKGUARD_SCHEME": name, "HOOKGUARD_SECRET": "s", "HOOKGUARD_SPOOL": "/tmp/s"]))
            }
            #expect(throws: ConfigError.self) {
                try LocationConfig(
                    params: params([
                        "HOOKGUARD_SCHEME": name, "HOOKGUARD_SECRET": "s", "HOOKGUARD_SPOOL": "/tmp/s",
                        "HOOKGUARD_URL": "/hooks/x",
                    ]))
            }
        }
        let config = try LocationConfig(
            params: params([
                "HOOKGUARD_SCHEME": "twilio", "HOOKGUARD_SECRET": "s", "HOOKGUARD_SPOOL": "/tmp/s",
                "HOOKGUARD_URL": "https://hooks.example.org/status",
            ]))
        #expect(
            config.signedURL(params(["QUERY_STRING": "bodySHA256=ab"]))
                == "https://hooks.example.org/status?bodySHA256=ab")
        #expect(config.signedURL(params([:])) == "https://hooks.example.org/status")
    }

    @Test func twilioJSONBodyMustMatchItsHash() throws {
        let vector = try #require(vectors.first { $0.url.contains("bodySHA256") })
        let scheme = Scheme.presets["twilio"]!
        // Same URL and signature, another body: the signature matches the URL, the hash does not match the body.
        #expect(throws: VerificationError.refused(.mismatch(header: "X-Twilio-Signature"))) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret(vector.secret)], params: vector.request, body: Array("{}".utf8), now: 0,
                url: vector.url)
        }
    }
}
