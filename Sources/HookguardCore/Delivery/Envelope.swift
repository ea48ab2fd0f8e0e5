import FoundationEssentials  // Data's base64; not Foundation, whose libraries add 6 MiB of RSS

/// One verified delivery as readers see it: a JSON object with the body
/// byte-exact (`body` when it is UTF-8, else `body_base64`).
public struct Envelope: Sendable {
    public var id: DeliveryID
    public var receivedAt: Timestamp
    public var scheme: String
    public var uri: String
    public var event: String?
    /// The sender's own id for the delivery, kept across its retries.
    public var deliveryID: String?
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
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

    /// The JSON text and a final newline, written straight into one byte
    /// buffer: the same bytes make a spool file and a socket line (JSON
    /// escapes every newline inside, so the object is one line).
    public func encoded() -> [UInt8] {
        var json = JSONWriter(capacity: body.count + 512 + headers.count * 64)
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
        // One pass over the body: escaped and checked for UTF-8 at once; when it
        // is not UTF-8 the "body" field is taken back and body_base64 written.
        let mark = json.mark
        json.key("body")
        let isUTF8 = body.withUnsafeBufferPointer { json.string(validatingUTF8: $0) }
        if !isUTF8 {
            json.rollBack(to: mark)
            json.key("body_base64")
            json.string(Data(body).base64EncodedString())
        }
        json.endObject()
        json.newline()
        return json.bytes
    }
}

/// The few JSON forms the envelope needs, with RFC 8259 string escaping.
struct JSONWriter {
    private(set) var bytes: [UInt8]
    private var needsComma = false

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
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

    /// Where the next field would start, to take it back with `rollBack(to:)`.
    var mark: (count: Int, needsComma: Bool) { (bytes.count, needsComma) }

    mutating func rollBack(to mark: (count: Int, needsComma: Bool)) {
        bytes.removeSubrange(mark.count...)
        needsComma = mark.needsComma
    }

    /// `utf8` must be valid UTF-8; multi-byte sequences pass through unescaped.
    mutating func string(utf8: some Sequence<UInt8>) {
        if utf8.withContiguousStorageIfAvailable({ string(escaping: $0, validating: false) }) == nil {
            let copy = Array(utf8)
            copy.withUnsafeBufferPointer { _ = string(escaping: $0, validating: false) }
        }
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { _ = string(escaping: $0, validating: false) }
    }

    /// Writes `utf8` as a JSON string if it is valid UTF-8 and returns true;
    /// returns false (leaving a partial string to roll back) if it is not.
    mutating func string(validatingUTF8 utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        string(escaping: utf8, validating: true)
    }

    /// The JSON string of `utf8`: escaped into a small scratch buffer through
    /// a pointer (no capacity check per byte), appended a chunk at a time.
    /// With `validating`, runs of bytes from 0x80 up go through the standard
    /// library's UTF-8 parser, and invalid UTF-8 returns false.
    private mutating func string(escaping utf8: UnsafeBufferPointer<UInt8>, validating: Bool) -> Bool {
        bytes.reserveCapacity(bytes.count + utf8.count + 2)
        bytes.append(UInt8(ascii: "\""))
        let valid = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { chunk -> Bool in
            let out = chunk.baseAddress!
            let limit = chunk.count - 6
            let input = utf8.baseAddress!
            let end = utf8.count
            var used = 0
            var index = 0
            return JSONWriter.byteClass.withUnsafeBufferPointer { classOf -> Bool in
                while index < end {
                    if used > limit {
                        bytes.append(contentsOf: UnsafeBufferPointer(start: out, count: used))
                        used = 0
                    }
                    let byte = input[index]
                    let kind = classOf[Int(byte)]
                    index += 1
                    if kind == JSONWriter.plain {
                        out[used] = byte
                        used += 1
                    } else if kind == JSONWriter.multiByte {
                        guard validating else {
                            out[used] = byte
                            used += 1
                            continue
                        }
                        var last = index
                        while last < end && input[last] >= 0x80 { last += 1 }
                        guard Self.isValidUTF8(UnsafeBufferPointer(start: input + index - 1, count: last - index + 1)) else {
                            return false
                        }
                        bytes.append(contentsOf: UnsafeBufferPointer(start: out, count: used))
                        bytes.append(contentsOf: UnsafeBufferPointer(start: input + index - 1, count: last - index + 1))
                        used = 0
                        index = last
                    } else if kind == JSONWriter.control {
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
                bytes.append(contentsOf: UnsafeBufferPointer(start: out, count: used))
                return true
            }
        }
        guard valid else { return false }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
        return true
    }

    /// What each byte becomes in a JSON string: itself (`plain`), the start
    /// of a multi-byte sequence, a `\\u00XX` escape (`control`), or a
    /// backslash and the letter stored here.
    private static let plain: UInt8 = 0
    private static let multiByte: UInt8 = 1
    private static let control: UInt8 = 2
    private static let byteClass: [UInt8] = (0...255).map { (byte: Int) -> UInt8 in
        switch byte {
        case 0x22: UInt8(ascii: "\"")
        case 0x5c: UInt8(ascii: "\\")
        case 0x0a: UInt8(ascii: "n")
        case 0x0d: UInt8(ascii: "r")
        case 0x09: UInt8(ascii: "t")
        case 0x00..<0x20: control
        case 0x80...: multiByte
        default: plain
        }
    }

    /// A run of bytes that are all 0x80 or above holds whole UTF-8 sequences
    /// when the text is valid (ASCII never appears inside a sequence).
    static func isValidUTF8(_ run: UnsafeBufferPointer<UInt8>) -> Bool {
        var iterator = run.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }
}
