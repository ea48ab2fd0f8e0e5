/// A fuzzer's input read front to back: single bytes for choices, then
/// fields separated by NUL (the framing CGI parameters themselves have: C
/// strings never hold a NUL), then the rest as a raw body. Mutations that
/// keep the NULs keep the fields apart.
package struct FuzzInput {
    private let bytes: [UInt8]
    private var position = 0

    package init(_ data: UnsafeRawPointer, count: Int) {
        bytes = Array(UnsafeRawBufferPointer(start: data, count: count))
    }

    package init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    package var isAtEnd: Bool { position >= bytes.count }

    /// The next byte, or 0 past the end.
    package mutating func byte() -> UInt8 {
        guard position < bytes.count else { return 0 }
        defer { position += 1 }
        return bytes[position]
    }

    /// The next `count` bytes as a little-endian number.
    package mutating func integer(bytes count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { value, index in value | UInt64(byte()) << (8 * UInt64(index)) }
    }

    /// The bytes up to the next NUL (which is consumed), or to the end.
    package mutating func field() -> [UInt8] {
        let end = bytes[position...].firstIndex(of: 0) ?? bytes.count
        defer { position = min(end + 1, bytes.count) }
        return Array(bytes[position..<end])
    }

    /// The next field as text, invalid UTF-8 replaced, as web servers' parameters arrive.
    package mutating func text() -> String {
        String(decoding: field(), as: UTF8.self)
    }

    /// Fields up to the next empty one (consumed) or the end.
    package mutating func fieldList() -> [[UInt8]] {
        var fields: [[UInt8]] = []
        while !isAtEnd {
            let field = field()
            if field.isEmpty { break }
            fields.append(field)
        }
        return fields
    }

    /// Everything not read yet.
    package mutating func rest() -> [UInt8] {
        defer { position = bytes.count }
        return Array(bytes[min(position, bytes.count)...])
    }
}
