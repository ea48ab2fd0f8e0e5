import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// Inputs the fuzz targets under Fuzz/ found wrong, each kept as a test.
@Suite struct FuzzFindingTests {
    func customScheme(prefix: String) throws(ConfigError) -> Scheme {
        try LocationConfig.scheme(
            params([
                "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Fuzz-Signature",
                "HOOKGUARD_PREFIX": prefix,
            ]))
    }

    /// Fuzz/Corpus/signatures/finding-prefix-whitespace: a custom prefix of
    /// white space and control characters signed headers that the verifier
    /// (which trims the value, as web servers do) could never accept.
    @Test(arguments: ["\n\n &0\n\n\n\u{04} ", " v1=", "\tsha256=", "v1=\r\n", "a\u{7f}"])
    func aPrefixNoHeaderCanCarryIsAConfigError(_ prefix: String) {
        #expect(throws: ConfigError.self) { try customScheme(prefix: prefix) }
        do {
            _ = try customScheme(prefix: prefix)
        } catch {
            #expect(error.parameter == .prefix)
        }
    }

    @Test(arguments: ["Bearer ", "sha256=", "v1,", "x\ty="])
    func aPrefixEndingInWhiteSpaceStillSignsAndVerifies(_ prefix: String) throws {
        let scheme = try customScheme(prefix: prefix)
        let body = Array("{\"n\":1}".utf8)
        let lines = try SignatureSigner.headers(scheme, secret: Secret("s3cret"), body: body, timestamp: 0, id: nil)
        var request = RequestParams()
        for line in lines { request[HeaderName(line.name).parameter] = line.value }
        try SignatureVerifier.verify(scheme, keys: [Secret("s3cret")], params: request, body: body, now: 0)
    }
}

@Suite struct NginxSizeFuzzFindingTests {
    /// Fuzz/Corpus/nginx/finding-size-overflow: `client_max_body_size
    /// 11111111111111M` overflowed Int and trapped in `hookguard doctor`.
    @Test func aSizePastIntMaxIsNoSize() throws {
        #expect(NginxConfig.parseSize("11111111111111M") == nil)
        #expect(NginxConfig.parseSize("9223372036854775807") == Int.max)
        #expect(NginxConfig.parseSize("9223372036854775808") == nil)
        let text = "location /h { fastcgi_param HOOKGUARD_SCHEME tito; client_max_body_size 11111111111111M; }"
        let locations = try NginxConfig.locations(in: text)
        #expect(locations.count == 1)
    }

    @Test(arguments: ["-1m", "+5", "-0", "1 m", "m", ""])
    func aSignOrOtherCharactersAreNoSize(_ text: String) {
        #expect(NginxConfig.parseSize(text) == nil)
    }
}

@Suite struct SecretFileFuzzFindingTests {
    /// Fuzz/Corpus/secrets/finding-comment-with-combining-mark: a comment line
    /// whose `#` is followed by a combining mark (U+035C) was taken as a
    /// secret, because as characters `#͜` is not `#`.
    @Test func aCommentIsACommentWhateverFollowsTheHash() {
        let file = "# rotated\n#\u{35C}2026-11\n#\u{301}\n  secret-1  \r\n"
        #expect(Secret.parseFile(Array(file.utf8)) == [Secret("secret-1")])
    }

    @Test func whiteSpaceIsTrimmedByteForByte() {
        // A space before a combining mark is one character with it, but still a space to trim.
        #expect(Secret.parseFile(Array(" \u{301}key \t\r\n".utf8)) == [Secret("\u{301}key")])
    }
}

@Suite struct SignaturePrefixFuzzFindingTests {
    /// Fuzz/Corpus/signatures/finding-prefix-then-combining-mark: with the
    /// prefix `e` and the token U+0362 `e`, the header `e` U+0362 `e` lost the
    /// combining mark with the prefix (one character with it), so the token
    /// read was `e` and what `hookguard sign` wrote was refused.
    @Test func thePrefixIsTakenOffByTheBytesItMatched() throws {
        let scheme = try LocationConfig.scheme(
            params([
                "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Fuzz-Signature",
                "HOOKGUARD_ENCODING": "token", "HOOKGUARD_PREFIX": "e",
            ]))
        let token = Secret("\u{362}e")
        let lines = try SignatureSigner.headers(scheme, secret: token, body: [], timestamp: 0, id: nil)
        #expect(lines.map(\.value) == ["e\u{362}e"])
        try SignatureVerifier.verify(
            scheme, keys: [token], params: params(["HTTP_X_FUZZ_SIGNATURE": "e\u{362}e"]), body: [], now: 0)
        #expect(throws: VerificationError.refused(.mismatch(header: "X-Fuzz-Signature"))) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("e")], params: params(["HTTP_X_FUZZ_SIGNATURE": "e\u{362}e"]), body: [], now: 0)
        }
    }

    /// The same for a MAC: a mark after `sha256=` is not swallowed, so the value is malformed, not accepted.
    @Test func aCombiningMarkAfterThePrefixIsNotSkipped() throws {
        let scheme = try #require(Scheme.presets["github"])
        let body = Array("Hello, World!".utf8)
        let mac = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        #expect(throws: VerificationError.self) {
            try SignatureVerifier.verify(
                scheme, keys: [Secret("It's a Secret to Everybody")],
                params: params(["HTTP_X_HUB_SIGNATURE_256": "sha256=\u{301}" + mac]), body: body, now: 0)
        }
    }
}

@Suite struct DirectoryEntryFuzzFindingTests {
    /// Found by the request target (AddressSanitizer: heap-buffer-overflow in
    /// DuplicateRecords.sweepIfDue, Fuzz/Corpus/request/finding-dedupe-sweep-overread,
    /// once hundreds of earlier inputs had left records in one spool): reading an entry's name through
    /// `entry.pointee.d_name` copied a whole `dirent`, past the end of the
    /// directory buffer when the entry was the last one in it and shorter. It
    /// takes a directory that fills the buffer: hundreds of dedupe records.
    /// Without AddressSanitizer the over-read goes unnoticed; scripts/test
    /// runs this test under it too.
    @Test func sweepingAFullDedupeDirectoryReadsOnlyItsEntries() throws {
        let spool = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spool) }
        let directory = DuplicateRecords.directory(ofSpool: spool)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for n in 0..<1000 {
            let name = try DuplicateRecords.recordName(senderID: "msg_\(n)", scheme: "standard-webhooks")
            #expect(FileManager.default.createFile(atPath: directory + "/" + name, contents: Data()))
        }
        let later = Timestamp(seconds: Timestamp.now().seconds + 3600)
        let claim = try DuplicateRecords().claim(
            senderID: "msg_new", scheme: "standard-webhooks", spool: spool, window: 60, now: later)
        guard case .first = claim else {
            Issue.record("a new sender id was taken for a duplicate")
            return
        }
        // Every record was older than the window, so the sweep removed them all; the new one stays.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 1)
    }

    @Test func spoolDepthCountsAFullDirectory() throws {
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let spool = Spool(root: root)
        try spool.prepare()
        for n in 0..<1000 {
            #expect(
                FileManager.default.createFile(
                    atPath: spool.new + "/\(DeliveryID.next(milliseconds: UInt64(n))).json", contents: Data()))
        }
        #expect(spool.depth() == 1000)
    }
}
