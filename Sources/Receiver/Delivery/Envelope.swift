import FastCGI
import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS
package import Posix

/// One verified delivery as readers see it: a JSON object with the body
/// byte-exact (`body` when it is UTF-8, else `body_base64`).
package struct Envelope: Sendable {
    package var id: DeliveryID
    package var receivedAt: Timestamp
    package var scheme: String
    package var uri: String
    package var event: String?
    /// The sender's own id for the delivery, kept across its retries.
    package var deliveryID: String?
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(
        id: DeliveryID, receivedAt: Timestamp, scheme: String, uri: String, event: String?,
        deliveryID: String? = nil, headers: [(name: String, value: String)], body: [UInt8]
    ) {
        self.id = id
        self.receivedAt = receivedAt
        self.scheme = scheme
        self.uri = uri
        self.event = event
        self.deliveryID = deliveryID
        self.headers = headers
        self.body = body
    }

    /// The JSON text and a final newline, in one byte buffer: the same bytes
    /// make a spool file and a socket line (JSON escapes every newline
    /// inside, so the object is one line).
    package func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: body.count + 512 + headers.count * 64)
        encode(into: &json)
        return json.bytes
    }

    /// The same bytes as `encoded()`, written to `fd` a chunk at a time, so a
    /// large body is never copied whole: the body itself is the one copy a
    /// delivery holds.
    package func write(to fd: Int32, path: String) throws(SystemError) {
        var json = JSONWriter(writingTo: fd, path: path)
        encode(into: &json)
        try json.finish()
    }

    private func encode(into json: inout JSONWriter) {
        json.beginObject()
        json.field("id", id.text)
        json.field("received_at", receivedAt.rfc3339)
        json.field("scheme", scheme)
        json.field("uri", uri)
        if let event { json.field("event", event) }
        if let deliveryID { json.field("delivery_id", deliveryID) }
        json.key("headers")
        json.beginObject()
        for header in headers { json.field(header.name, header.value) }
        json.endObject()
        body.withUnsafeBufferPointer { body in
            if JSONWriter.isValidUTF8(body) {
                json.key("body")
                json.string(utf8: body)
            } else {
                json.key("body_base64")
                json.base64(body)
            }
        }
        json.endObject()
        json.newline()
    }
}

/// The few JSON forms the envelope needs, with RFC 8259 string escaping.
struct JSONWriter {
    private(set) var bytes: [UInt8]
    private var needsComma = false
    /// A file the text goes to whenever `bytes` passes `spillAt`; without
    /// one, `bytes` holds the whole text.
    private let output: (fd: Int32, path: String)?
    private var failure: SystemError?
    static let spillAt = 64 * 1024

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
        output = nil
    }

    init(writingTo fd: Int32, path: String) {
        bytes = []
        bytes.reserveCapacity(Self.spillAt + 4096)
        output = (fd, path)
    }

    /// Writes what is left to the output file; throws the first write error.
    mutating func finish() throws(SystemError) {
        spill()
        if let failure { throw failure }
    }

    private mutating func spillWhenFull() {
        if output != nil && bytes.count >= Self.spillAt { spill() }
    }

    private mutating func spill() {
        guard let output else { return }
        if failure == nil {
            do {
                try writeAll(output.fd, bytes, path: output.path)
            } catch {
                failure = error
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func key(_ name: String) {
        separate()
        string(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(value)
    }

    mutating func newline() {
        bytes.append(UInt8(ascii: "\n"))
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    /// `utf8` must be valid UTF-8; multi-byte sequences pass through unescaped.
    mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
        string(escaping: utf8)
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { string(escaping: $0) }
    }

    /// `raw` in base64, as a JSON string (base64 needs no escaping),
    /// encoded a chunk at a time.
    mutating func base64(_ raw: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        let chunk = 48 * 1024  // a multiple of 3: no padding inside the text
        var start = 0
        while start < raw.count {
            let end = min(start + chunk, raw.count)
            bytes.append(contentsOf: Data(UnsafeBufferPointer(rebasing: raw[start..<end])).base64EncodedString().utf8)
            spillWhenFull()
            start = end
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// The JSON string of `utf8` (valid UTF-8), escaped a scratch buffer at
    /// a time and appended (or spilled) from there.
    private mutating func string(escaping utf8: UnsafeBufferPointer<UInt8>) {
        if output == nil { bytes.reserveCapacity(bytes.count + utf8.count + 2) }
        bytes.append(UInt8(ascii: "\""))
        if let source = utf8.baseAddress {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk in
                JSONWriter.byteClass.withUnsafeBufferPointer { classOf in
                    var index = 0
                    while index < utf8.count {
                        let used = Self.escape(
                            source, from: &index, count: utf8.count, into: chunk.baseAddress!, capacity: chunk.count,
                            classOf: classOf.baseAddress!)
                        bytes.append(contentsOf: UnsafeBufferPointer(start: chunk.baseAddress!, count: used))
                        spillWhenFull()
                    }
                }
            }
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Escapes `source` from `index` into `out` until the input ends or `out`
    /// has less room than eight six-byte escapes; returns the bytes written
    /// and moves `index` past what was read. Eight bytes that need no escape
    /// are copied as one word: on the benchmark's 64 KiB Tito ticket (a
    /// quote in four words of five) escaping went from about 1.8 to 1.4 ns
    /// a byte (medians of 9 runs), more on text with longer plain runs.
    private static func escape(
        _ source: UnsafePointer<UInt8>, from index: inout Int, count: Int, into out: UnsafeMutablePointer<UInt8>,
        capacity: Int, classOf: UnsafePointer<UInt8>
    ) -> Int {
        var used = 0
        var next = index
        let limit = capacity - 8 * 6
        while next < count && used <= limit {
            if next + 8 <= count {
                let word = UnsafeRawPointer(source + next).loadUnaligned(as: UInt64.self)
                if !holdsByteToEscape(word) {
                    UnsafeMutableRawPointer(out + used).storeBytes(of: word, as: UInt64.self)
                    used += 8
                    next += 8
                    continue
                }
            }
            let end = min(next + 8, count)
            while next < end {
                let byte = source[next]
                next += 1
                let kind = classOf[Int(byte)]
                if kind == plain {
                    out[used] = byte
                    used += 1
                } else if kind == control {
                    let low = byte & 0x0f
                    out[used] = UInt8(ascii: "\\")
                    out[used + 1] = UInt8(ascii: "u")
                    out[used + 2] = UInt8(ascii: "0")
                    out[used + 3] = UInt8(ascii: "0")
                    out[used + 4] = UInt8(ascii: "0") + (byte >> 4)
                    out[used + 5] = low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") + low - 10
                    used += 6
                } else {  // a two-character escape: kind is the letter after the backslash
                    out[used] = UInt8(ascii: "\\")
                    out[used + 1] = kind
                    used += 2
                }
            }
        }
        index = next
        return used
    }

    private static let everyByte: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Whether one of the eight bytes of `word` is a control character, a
    /// quote or a backslash (bytes from 0x80 up never are). The classic
    /// bit tricks: `(x - n·01…) & ~x & 80…` is non-zero exactly when some
    /// byte of `x` is below `n` (for n ≤ 0x80), and a byte equals `c` when
    /// that byte of `x ^ c·01…` is zero.
    static func holdsByteToEscape(_ word: UInt64) -> Bool {
        func holdsByteBelow(_ x: UInt64, _ n: UInt64) -> Bool { (x &- everyByte &* n) & ~x & highBits != 0 }
        return holdsByteBelow(word, 0x20) || holdsByteBelow(word ^ (everyByte &* 0x22), 1)
            || holdsByteBelow(word ^ (everyByte &* 0x5c), 1)
    }

    /// What each byte becomes in a JSON string: itself (`plain`, UTF-8's
    /// multi-byte sequences included), a `\\u00XX` escape (`control`), or a
    /// backslash and the letter stored here.
    private static let plain: UInt8 = 0
    private static let control: UInt8 = 1
    private static let byteClass: [UInt8] = (0...255).map { (byte: Int) -> UInt8 in
        switch byte {
        case 0x22: UInt8(ascii: "\"")
        case 0x5c: UInt8(ascii: "\\")
        case 0x0a: UInt8(ascii: "n")
        case 0x0d: UInt8(ascii: "r")
        case 0x09: UInt8(ascii: "t")
        case 0x00..<0x20: control
        default: plain
        }
    }

    /// Whether `bytes` is valid UTF-8. ASCII is passed over a byte at a time;
    /// each run of bytes from 0x80 up goes through the standard library's
    /// parser (ASCII never appears inside a sequence, so the runs of a valid
    /// text hold whole sequences), without copying the bytes.
    static func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index < bytes.count {
            if index + 8 <= bytes.count,
                UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self) & highBits == 0
            {
                index += 8  // eight ASCII bytes
                continue
            }
            guard bytes[index] >= 0x80 else {
                index += 1
                continue
            }
            var end = index + 1
            while end < bytes.count && bytes[end] >= 0x80 { end += 1 }
            var iterator = UnsafeBufferPointer(rebasing: bytes[index..<end]).makeIterator()
            var parser = Unicode.UTF8.ForwardParser()
            parsing: while true {
                switch parser.parseScalar(from: &iterator) {
                case .valid: continue
                case .emptyInput: break parsing
                case .error: return false
                }
            }
            index = end
        }
        return true
    }
}
