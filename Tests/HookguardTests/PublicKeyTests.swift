import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

struct PublicKeyVectors: Decodable {
    struct SchemeVector: Decodable, CustomTestStringConvertible {
        var scheme: String, public_key: String, other_public_key: String, private_key_pem: String?
        var now: Int, body: String, headers: [String: String], deterministic: Bool, note: String
        var testDescription: String { "\(scheme): \(note)" }
        var request: RequestParams {
            params(Dictionary(uniqueKeysWithValues: headers.map { (HeaderName($0.key).parameter, $0.value) }))
        }
    }
    struct RFC8032: Decodable, CustomTestStringConvertible {
        var public_key: String, message: String, signature: String
        var testDescription: String { "RFC 8032 message \(message.isEmpty ? "(empty)" : message)" }
    }
    struct V1a: Decodable {
        var public_key: String, other_public_key: String, private_key_pem: String, now: Int, body: String
        var headers: [String: String]
    }
    var schemes: [SchemeVector]
    var rfc8032: [RFC8032]
    var standard_webhooks_v1a: V1a?
}

/// Vectors/make_publickey.py: PyNaCl (discord), `cryptography` (sendgrid),
/// SendGrid's SDK test vector and RFC 8032's Ed25519 tests.
private let vectors =
    (try? loadVectors("publickey", as: PublicKeyVectors.self))
    ?? PublicKeyVectors(schemes: [], rfc8032: [], standard_webhooks_v1a: nil)

private func hex(_ text: String) -> [UInt8] { SignatureDecoding.hex(Substring(text)) ?? [] }

@Suite struct PublicKeyTests {
    @Test func vectorsLoaded() {
        #expect(vectors.schemes.count == 3)
        #expect(vectors.rfc8032.count == 3)
    }

    @Test(arguments: vectors.rfc8032)
    func rfc8032(_ vector: PublicKeyVectors.RFC8032) {
        let key = hex(vector.public_key)
        let message = SignatureDecoding.hex(Substring(vector.message)) ?? []
        let signature = hex(vector.signature)
        #expect(PublicKeySignature.verify(.ed25519, publicKey: key, message: message, signature: signature))
        var flipped = signature
        flipped[10] ^= 1
        #expect(!PublicKeySignature.verify(.ed25519, publicKey: key, message: message, signature: flipped))
        #expect(!PublicKeySignature.verify(.ed25519, publicKey: key, message: message + [0], signature: signature))
        #expect(
            !PublicKeySignature.verify(
                .ed25519, publicKey: Array(key.dropLast()), message: message, signature: signature))
    }

    @Test(arguments: vectors.schemes)
    func genuineForgedTampered(_ vector: PublicKeyVectors.SchemeVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        let key = try scheme.key(from: Secret(vector.public_key))
        let other = try scheme.key(from: Secret(vector.other_public_key))
        let body = Array(vector.body.utf8)
        try SignatureVerifier.verify(scheme, keys: [key], params: vector.request, body: body, now: vector.now)
        // Rotation: the sender's key among others.
        try SignatureVerifier.verify(scheme, keys: [other, key], params: vector.request, body: body, now: vector.now)
        let mismatch = VerificationError.refused(.mismatch(header: scheme.signatureHeader.display))
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(scheme, keys: [other], params: vector.request, body: body, now: vector.now)
        }
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [key], params: vector.request, body: body + [0x20], now: vector.now)
        }
        #expect(throws: VerificationError.self) {
            try SignatureVerifier.verify(scheme, keys: [key], params: vector.request, body: body, now: vector.now + 301)
        }
    }

    @Test(arguments: vectors.schemes.filter { $0.private_key_pem != nil })
    func signerWithThePrivateKey(_ vector: PublicKeyVectors.SchemeVector) throws {
        let scheme = try #require(Scheme.presets[vector.scheme])
        let lines = try SignatureSigner.headers(
            scheme, privateKeyPEM: Array(vector.private_key_pem!.utf8), body: Array(vector.body.utf8),
            timestamp: vector.now, id: nil)
        let signed = Dictionary(uniqueKeysWithValues: lines.map { ($0.name, $0.value) })
        if vector.deterministic { #expect(signed == vector.headers) }
        let request = params(Dictionary(uniqueKeysWithValues: signed.map { (HeaderName($0.key).parameter, $0.value) }))
        try SignatureVerifier.verify(
            scheme, keys: [try scheme.key(from: Secret(vector.public_key))], params: request,
            body: Array(vector.body.utf8), now: vector.now)
        // A secret is no private key, and a private key is no secret.
        #expect(throws: Scheme.KeyError.self) {
            try SignatureSigner.headers(scheme, secret: Secret(vector.public_key), body: [], timestamp: 0, id: nil)
        }
        #expect(throws: Scheme.KeyError.self) {
            try SignatureSigner.headers(scheme, privateKeyPEM: Array("not a key".utf8), body: [], timestamp: 0, id: nil)
        }
    }

    @Test func standardWebhooksV1a() throws {
        let vector = try #require(vectors.standard_webhooks_v1a)
        let scheme = Scheme.presets["standard-webhooks"]!
        let publicKey = try scheme.key(from: Secret(vector.public_key))
        let other = try scheme.key(from: Secret(vector.other_public_key))
        let shared = try scheme.key(from: Secret("whsec_" + Data(repeating: 7, count: 32).base64EncodedString()))
        #expect(publicKey.isPublicKey && !shared.isPublicKey)
        let body = Array(vector.body.utf8)
        func request(_ signature: String) -> RequestParams {
            params([
                "HTTP_WEBHOOK_ID": vector.headers["webhook-id"]!,
                "HTTP_WEBHOOK_TIMESTAMP": vector.headers["webhook-timestamp"]!,
                "HTTP_WEBHOOK_SIGNATURE": signature,
            ])
        }
        let v1a = vector.headers["webhook-signature"]!
        try SignatureVerifier.verify(
            scheme, keys: [shared, publicKey], params: request(v1a), body: body, now: vector.now)
        // Mixed with v1 entries of another secret in one list.
        try SignatureVerifier.verify(
            scheme, keys: [publicKey],
            params: request("v1,\(Data(repeating: 1, count: 32).base64EncodedString()) \(v1a)"),
            body: body, now: vector.now)
        let mismatch = VerificationError.refused(.mismatch(header: "webhook-signature"))
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [other, shared], params: request(v1a), body: body, now: vector.now)
        }
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [publicKey], params: request(v1a), body: body + [0x20], now: vector.now)
        }
        // A v1a entry is never checked as an HMAC, nor a v1 entry against a public key.
        #expect(throws: mismatch) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret(bytes: publicKey.bytes)], params: request(v1a), body: body, now: vector.now)
        }
        for bad in ["whpk_", "whpk_AAAA", "whpk_not base64"] {
            #expect(throws: Scheme.KeyError.self, "\(bad)") { try scheme.key(from: Secret(bad)) }
        }
        // hookguard sign with the private key writes the same (deterministic) v1a entry.
        let lines = try SignatureSigner.headers(
            scheme, privateKeyPEM: Array(vector.private_key_pem.utf8), body: body, timestamp: vector.now,
            id: vector.headers["webhook-id"])
        #expect(Dictionary(uniqueKeysWithValues: lines.map { ($0.name, $0.value) }) == vector.headers)
    }

    @Test func keysThatAreNotTheSendersAreConfigErrors() {
        let discord = Scheme.presets["discord"]!
        let sendgrid = Scheme.presets["sendgrid"]!
        // P-384 SubjectPublicKeyInfo (an EC key, but not P-256), an Ed25519 key for ECDSA, and junk.
        let p384 =
            "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEyL0H2Z5y9cYfA0JrJ4u1LBc0cYI1qgqd8tQk9xgC2H0bnm3y2gkJw8uYOTvC7o/rcc0TFSP8uUe1aF8VqG5U7QmEk2R7u5w0l/y0q9kR2pB1Qjz1i2XQ6uQ+pnp0cVYH"
        for bad in ["", "zz", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751", "not hex at all"] {
            #expect(throws: Scheme.KeyError.self, "\(bad)") { try discord.key(from: Secret(bad)) }
        }
        for bad in ["", "MFkw", p384, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"] {
            #expect(throws: Scheme.KeyError.self, "\(bad)") { try sendgrid.key(from: Secret(bad)) }
        }
    }

    @Test func malformedSignatures() throws {
        let vector = try #require(vectors.schemes.first { $0.scheme == "discord" })
        let scheme = Scheme.presets["discord"]!
        let key = try scheme.key(from: Secret(vector.public_key))
        let cases: [(String?, String?, SignatureFailure)] = [
            (nil, "1700000000", .missing(header: "X-Signature-Ed25519")),
            ("00", nil, .missing(header: "X-Signature-Timestamp")),
            (
                "abcd", "1700000000",
                .malformed(header: "X-Signature-Ed25519", problem: "2 bytes where ed25519 gives 64")
            ),
            ("zz", "1700000000", .malformed(header: "X-Signature-Ed25519", problem: "not valid hex")),
            (
                String(repeating: "00", count: 64), "soon",
                .malformed(header: "X-Signature-Timestamp", problem: "the timestamp is not a Unix time in seconds")
            ),
        ]
        for (signature, timestamp, failure) in cases {
            var values: [String: String] = [:]
            if let signature { values["HTTP_X_SIGNATURE_ED25519"] = signature }
            if let timestamp { values["HTTP_X_SIGNATURE_TIMESTAMP"] = timestamp }
            #expect(throws: VerificationError.refused(failure)) {
                try SignatureVerifier.verify(scheme, keys: [key], params: params(values), body: [], now: 1_700_000_000)
            }
        }
    }
}
