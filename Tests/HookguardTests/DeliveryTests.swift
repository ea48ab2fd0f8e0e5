import Foundation
import Glibc
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct DeliveryTests {
    func decode(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    func envelope(body: [UInt8], event: String? = "ticket.created") -> Envelope {
        Envelope(
            id: DeliveryID.next(milliseconds: 1_700_000_000_000),
            receivedAt: Timestamp(seconds: 1_700_000_000, nanoseconds: 5_000_000),
            scheme: "tito", uri: "/hooks/tito", event: event,
            headers: [("content-type", "application/json"), ("x-webhook-name", "ticket.created")], body: body)
    }

    @Test func envelopeFields() throws {
        let json = try decode(envelope(body: Array("{\"a\":1}".utf8)).encoded())
        #expect(json["received_at"] as? String == "2023-11-14T22:13:20.005Z")
        #expect(json["scheme"] as? String == "tito")
        #expect(json["uri"] as? String == "/hooks/tito")
        #expect(json["event"] as? String == "ticket.created")
        #expect((json["headers"] as? [String: String])?["x-webhook-name"] == "ticket.created")
        #expect(json["body"] as? String == "{\"a\":1}")
        #expect(json["body_base64"] == nil)
        let noEvent = try decode(envelope(body: [], event: nil).encoded())
        #expect(noEvent["event"] == nil)
        #expect(noEvent["body"] as? String == "")
    }

    @Test func envelopeIsOneLine() {
        let encoded = envelope(body: Array("a\nb\r\n".utf8)).encoded()
        #expect(encoded.last == UInt8(ascii: "\n"))
        #expect(encoded.filter { $0 == UInt8(ascii: "\n") }.count == 1)
    }

    @Test func everyControlCharacterRoundTrips() throws {
        var body = Array(0..<0x20) as [UInt8]
        body += Array("\"\\/ é € 𝄞 \u{7f}".utf8)
        let json = try decode(envelope(body: body).encoded())
        let text = try #require(json["body"] as? String)
        #expect(Array(text.utf8) == body)
    }

    @Test func longBodiesRoundTripAcrossTheEscapingChunks() throws {
        // Quotes, backslashes, controls and multi-byte sequences around the 4 KiB chunk edges.
        let piece = Array("a\"é€𝄞\\\n\u{1}xyz".utf8)
        let body = Array((0..<3000).map { _ in piece }.joined())
        let json = try decode(envelope(body: body).encoded())
        #expect(Array(try #require(json["body"] as? String).utf8) == body)
        // One bad byte at the very end still makes the whole body base64.
        let bad = body + [0xff]
        let fallback = try decode(envelope(body: bad).encoded())
        #expect(fallback["body"] == nil)
        #expect(Data(base64Encoded: try #require(fallback["body_base64"] as? String)).map { [UInt8]($0) } == bad)
    }

    /// The envelope as `Envelope.write(to:path:)` leaves it in a file.
    func written(_ envelope: Envelope) throws -> [UInt8] {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/entry.json"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        try #require(fd >= 0)
        defer { close(fd) }
        try envelope.write(to: fd, path: path)
        return [UInt8](try #require(FileManager.default.contents(atPath: path)))
    }

    @Test func writtenInChunksIsTheEncodedEnvelope() throws {
        // Larger than the spill size, with escapes and multi-byte sequences across its edges.
        let piece = Array("a\"é€𝄞\\\n\u{1}xyz".utf8)
        let text = Array((0..<20_000).map { _ in piece }.joined())
        #expect(text.count > 3 * JSONWriter.spillAt)
        // Not UTF-8: base64 in chunks (48 KiB of input each), padded only at the end.
        let binary = (0..<200_001).map { UInt8(truncatingIfNeeded: $0 &* 7919) } + [0xff]
        for body in [text, binary, [], Array("{}".utf8)] {
            let envelope = envelope(body: body)
            let bytes = try written(envelope)
            #expect(bytes == envelope.encoded())
            let json = try decode(bytes)
            if let text = json["body"] as? String {
                #expect(Array(text.utf8) == body)
            } else {
                let base64 = try #require(json["body_base64"] as? String)
                #expect(Data(base64Encoded: base64).map { [UInt8]($0) } == body)
            }
        }
    }

    /// The word-at-a-time test against the byte-at-a-time rule, for each
    /// byte value at each of the eight places among bytes that need no escape.
    @Test func aWordHoldsAByteToEscapeExactlyWhenOneOfItsBytesDoes() {
        func needsEscape(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x22 || byte == 0x5c }
        for filler: UInt8 in [0x20, 0x21, 0x61, 0x7f, 0x80, 0xff] {
            for place in 0..<8 {
                for value in 0...255 {
                    var bytes = [UInt8](repeating: filler, count: 8)
                    bytes[place] = UInt8(value)
                    let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    #expect(JSONWriter.holdsByteToEscape(word) == bytes.contains(where: needsEscape))
                }
            }
        }
    }

    /// Every ASCII byte, at every offset within a word, comes back from a
    /// JSON parser as it went in.
    @Test func everyASCIIByteAtEveryOffsetRoundTrips() throws {
        for offset in 0..<8 {
            let body =
                Array(repeating: UInt8(ascii: "a"), count: offset) + (0...127).map { UInt8($0) }
                + Array(repeating: UInt8(ascii: "b"), count: 9)
            let json = try decode(envelope(body: body).encoded())
            #expect((json["body"] as? String).map { Array($0.utf8) } == body)
        }
    }

    @Test func aFailedWriteIsThrown() throws {
        // A descriptor open for reading only: the first write fails with EBADF.
        let fd = open("/dev/null", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(throws: SystemError.self) {
            try envelope(body: Array(repeating: 0x61, count: 100)).write(to: fd, path: "/dev/null")
        }
    }

    @Test func paramsKeepRecordsAndCombineARepeatedName() {
        var params = RequestParams()
        for record in [
            "REQUEST_METHOD=POST", "HTTP_X_B=2", "HTTP_X_A=1", "NOEQUALS", "HTTP_X_B=3",
            "CONTENT_TYPE=application/json", "EMPTY=",
        ] {
            Array(record.utf8).withUnsafeBufferPointer { params.appendRecord($0) }
        }
        #expect(params.method == "POST")
        #expect(params["HTTP_X_B"] == "2, 3")  // a header sent twice, combined as HTTP does
        #expect(params["EMPTY"] == "")
        #expect(params["NOEQUALS"] == nil)
        #expect(params["HTTP_X"] == nil)
        #expect(
            params.headers.map { "\($0.name)=\($0.value)" } == ["content-type=application/json", "x-a=1", "x-b=2, 3"])
        #expect(params.values.count == 5)
        params["HTTP_X_B"] = "4"  // setting replaces every record of the name
        #expect(params["HTTP_X_B"] == "4")
    }

    @Test func nonUTF8BodyIsBase64() throws {
        let bodies: [[UInt8]] = [[0xff, 0xfe, 0x00, 0x41], [0xc3], Array("ok".utf8) + [0xed, 0xa0, 0x80]]
        for body in bodies {
            let json = try decode(envelope(body: body).encoded())
            #expect(json["body"] == nil)
            let encoded = try #require(json["body_base64"] as? String)
            #expect(Data(base64Encoded: encoded).map { [UInt8]($0) } == body)
        }
    }

    @Test func idsAreUUIDv7AndIncreasing() throws {
        var previous = DeliveryID.next(milliseconds: 1_000)
        #expect(DeliveryID(parsing: previous.text) != nil)
        let version = previous.text[previous.text.index(previous.text.startIndex, offsetBy: 14)]
        #expect(version == "7")
        for _ in 0..<10_000 {
            let id = DeliveryID.next(milliseconds: 1_000)
            #expect(id > previous)
            previous = id
        }
        #expect(DeliveryID(parsing: "../../etc/passwd") == nil)
        #expect(DeliveryID(parsing: previous.text.uppercased()) == nil)
    }

    @Test func spoolStoresWholeEntriesOnly() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = SpoolRegistry()
        let id = DeliveryID.next(milliseconds: Timestamp.now().milliseconds)
        let path = try registry.store(Array("{\"x\":1}".utf8), id: id, in: dir + "/spool/tito")
        #expect(path == dir + "/spool/tito/new/\(id.text).json")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "{\"x\":1}")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/spool/tito/tmp").isEmpty)
        #expect(FileManager.default.fileExists(atPath: dir + "/spool/tito/cur"))
        var st = stat()
        stat(path, &st)
        #expect(st.st_mode & 0o007 == 0)
        stat(dir + "/spool/tito", &st)
        #expect(st.st_mode & 0o007 == 0)
    }

    @Test func spoolRecreatedAfterRemoval() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let registry = SpoolRegistry()
        try registry.store([1], id: DeliveryID.next(milliseconds: 1), in: dir + "/s")
        try FileManager.default.removeItem(atPath: dir + "/s")
        try registry.store([2], id: DeliveryID.next(milliseconds: 2), in: dir + "/s")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/s/new").count == 1)
    }

    @Test func spoolUnderARegularFileFails() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        #expect(throws: SystemError.self) {
            try SpoolRegistry().store([1], id: DeliveryID.next(milliseconds: 1), in: dir + "/file/spool")
        }
    }
}
