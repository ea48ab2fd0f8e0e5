import Foundation

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
        if let text = String(validating: body, as: UTF8.self) {
            json.key("body")
            json.string(utf8: text.utf8)
        } else {
            json.key("body_base64")
            json.string(utf8: Data(body).base64EncodedString().utf8)
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
        string(utf8: name.utf8)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func field(_ name: String, _ value: String) {
        key(name)
        string(utf8: value.utf8)
    }

    mutating func newline() {
        bytes.append(UInt8(ascii: "\n"))
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    /// `utf8` must be valid UTF-8; multi-byte sequences pass through unescaped.
    mutating func string(utf8: some Sequence<UInt8>) {
        let hex = Array("0123456789abcdef".utf8)
        bytes.append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0a: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0d: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0f)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }
}
