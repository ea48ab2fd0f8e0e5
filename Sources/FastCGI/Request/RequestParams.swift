import Glibc
import Posix

/// An HTTP header as the sender names it, the CGI parameter the web server
/// passes it in, and the name the envelope records.
package struct HeaderName: Sendable, Hashable, CustomStringConvertible {
    /// As documented by the sender, e.g. `X-Hub-Signature-256`.
    package let display: String
    /// As a CGI/FastCGI parameter, e.g. `HTTP_X_HUB_SIGNATURE_256`.
    package let parameter: String

    package init(_ display: String) {
        self.display = display
        self.parameter = "HTTP_" + display.uppercased().replacingDashes()
    }

    package var description: String { display }

    /// A parameter such as `HTTP_X_WEBHOOK_NAME` as the envelope names it: `x-webhook-name`.
    package static func envelopeName(ofParameter parameter: Substring) -> String {
        String(parameter.lowercased().map { $0 == "_" ? "-" : $0 })
    }
}

extension String {
    fileprivate func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}

/// The CGI/FastCGI parameters of one request, copied out of the web server's
/// record: the location's `HOOKGUARD_*` settings and the `HTTP_*` headers.
///
/// The `name=value` records are kept as the web server sent them, back to back
/// in one buffer (one copy, one allocation); a value becomes a `String` only
/// when asked for. A request has a few dozen parameters and hookguard asks for
/// a dozen of them, so a scan comparing lengths first beats building a
/// dictionary of strings for every request (a fifth of the CPU time of a
/// refused request went to that dictionary in the profile).
package struct RequestParams: Sendable {
    private var bytes: [UInt8] = []
    private var records: [Record] = []

    private struct Record: Sendable {
        var nameStart: Int
        var nameCount: Int
        var valueCount: Int
        var valueStart: Int { nameStart + nameCount + 1 }
    }

    package init() {}

    package init(_ values: [String: String]) {
        for (name, value) in values { append(name: name.utf8, value: value.utf8) }
    }

    /// Room for `records` parameters of `bytes` bytes in all, before appending them.
    package mutating func reserve(records: Int, bytes: Int) {
        self.records.reserveCapacity(records)
        self.bytes.reserveCapacity(bytes)
    }

    /// Adds one `name=value` record as the web server sends it; a record
    /// without `=` is not a parameter and is skipped.
    package mutating func appendRecord(_ record: UnsafeBufferPointer<UInt8>) {
        guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { return }
        records.append(Record(nameStart: bytes.count, nameCount: equals, valueCount: record.count - equals - 1))
        bytes.append(contentsOf: record)
    }

    /// `appendRecord` for any collection of bytes (the fuzz targets feed these).
    package mutating func append(entry bytes: some Collection<UInt8>) {
        Array(bytes).withUnsafeBufferPointer { appendRecord($0) }
    }

    private mutating func append(name: String.UTF8View, value: String.UTF8View) {
        records.append(Record(nameStart: bytes.count, nameCount: name.count, valueCount: value.count))
        bytes.append(contentsOf: name)
        bytes.append(UInt8(ascii: "="))
        bytes.append(contentsOf: value)
    }

    /// Every value of the records named `name`, in order. A header sent
    /// twice arrives as two records: its values are combined with ", ", as
    /// HTTP combines repeated fields, so a repeated signature header reads as
    /// malformed rather than last-one-wins.
    private func lookup(_ name: String) -> String? {
        var name = name
        let matches: [Record] = name.withUTF8 { wanted in
            bytes.withUnsafeBufferPointer { all in
                records.filter { record in
                    record.nameCount == wanted.count
                        && memcmp(all.baseAddress! + record.nameStart, wanted.baseAddress!, wanted.count) == 0
                }
            }
        }
        switch matches.count {
        case 0: return nil
        case 1: return value(of: matches[0])
        default: return matches.map(value(of:)).joined(separator: ", ")
        }
    }

    private func value(of record: Record) -> String {
        String(decoding: bytes[record.valueStart..<record.valueStart + record.valueCount], as: UTF8.self)
    }

    private func name(of record: Record) -> String {
        String(decoding: bytes[record.nameStart..<record.nameStart + record.nameCount], as: UTF8.self)
    }

    /// Setting replaces every record of that name.
    package subscript(name: String) -> String? {
        get { lookup(name) }
        set {
            if lookup(name) != nil { self = RequestParams(values.filter { $0.key != name }) }
            if let newValue { append(name: name.utf8, value: newValue.utf8) }
        }
    }

    package subscript(header: HeaderName) -> String? { self[header.parameter] }

    /// Every parameter by name, repeated ones combined.
    package var values: [String: String] {
        var result: [String: String] = [:]
        for record in records {
            let value = value(of: record)
            result[name(of: record), default: ""] = result[name(of: record)].map { $0 + ", " + value } ?? value
        }
        return result
    }

    package var method: String { self["REQUEST_METHOD"] ?? "" }
    package var uri: String { self["REQUEST_URI"] ?? self["SCRIPT_NAME"] ?? "" }

    /// The request's headers with envelope names, sorted by name. `Content-Type`
    /// and `Content-Length` travel outside `HTTP_*` in CGI and are put back.
    package var headers: [(name: String, value: String)] {
        let http = Array("HTTP_".utf8)
        var result: [(name: String, value: String)] = []
        result.reserveCapacity(records.count)
        var cgiOnly: [(name: String, value: String)] = []
        for record in records {
            let name = bytes[record.nameStart..<record.nameStart + record.nameCount]
            if name.starts(with: http) {
                result.append((Self.envelopeName(name.dropFirst(http.count)), value(of: record)))
            } else if record.valueCount > 0,
                name.elementsEqual("CONTENT_TYPE".utf8) || name.elementsEqual("CONTENT_LENGTH".utf8)
            {
                cgiOnly.append((Self.envelopeName(name), value(of: record)))
            }
        }
        // nginx also passes them as HTTP_CONTENT_*; a CGI server only as CONTENT_*.
        for entry in cgiOnly where !result.contains(where: { $0.name == entry.name }) { result.append(entry) }
        // Sorted by name; two records with one name combine (as in `values`).
        let order = result.indices.sorted { (result[$0].name, $0) < (result[$1].name, $1) }
        var sorted: [(name: String, value: String)] = []
        sorted.reserveCapacity(order.count)
        for index in order {
            if let last = sorted.last, last.name == result[index].name {
                sorted[sorted.count - 1].value = last.value + ", " + result[index].value
            } else {
                sorted.append(result[index])
            }
        }
        return sorted
    }

    /// `X_WEBHOOK_NAME` → `x-webhook-name`.
    private static func envelopeName(_ parameter: ArraySlice<UInt8>) -> String {
        String(unsafeUninitializedCapacity: parameter.count) { out in
            for (i, byte) in parameter.enumerated() {
                out[i] =
                    byte == UInt8(ascii: "_")
                    ? UInt8(ascii: "-")
                    : (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
            }
            return parameter.count
        }
    }
}
