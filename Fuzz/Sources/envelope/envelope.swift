// The envelope encoder: any uri, scheme, event, delivery id, headers (as
// CGI parameters carry them) and body bytes. Properties: Envelope.encoded()
// is one line ending in "\n" holding a JSON object (checked with Foundation's
// JSONSerialization) that gives back every field byte for byte, the body as
// `body` when it is UTF-8 and as `body_base64` otherwise.
import Doctor
import FastCGI
import Foundation
import FuzzSupport
import HookguardTesting
import Posix
import Receiver

/// Input: a flags byte (bit 0: an event, bit 1: a delivery id), 5 bytes of
/// seconds and 4 of nanoseconds for the arrival time, then NUL-separated
/// fields: scheme, uri, event, delivery id, then `NAME=VALUE` parameters up
/// to an empty field; the rest is the body.
@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzEnvelope(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(data, count: count)
    let flags = input.byte()
    // Any moment from 1970 to the end of year 9999: what a clock can say.
    let seconds = Int(input.integer(bytes: 5) % 253_402_300_800)
    let nanoseconds = Int(input.integer(bytes: 4) % 1_000_000_000)
    let scheme = input.text()
    let uri = input.text()
    let event = input.text()
    let deliveryID = input.text()
    var params = RequestParams()
    for entry in input.fieldList() { params.append(entry: entry) }
    let body = input.rest()

    let receivedAt = Timestamp(seconds: seconds, nanoseconds: nanoseconds)
    let envelope = Envelope(
        id: DeliveryID.next(milliseconds: receivedAt.milliseconds), receivedAt: receivedAt, scheme: scheme,
        uri: uri, event: flags & 1 != 0 ? event : nil, deliveryID: flags & 2 != 0 ? deliveryID : nil,
        headers: params.headers, body: body)
    let encoded = envelope.encoded()

    require(encoded.last == 0x0a, "the envelope does not end in a newline")
    require(encoded.firstIndex(of: 0x0a) == encoded.count - 1, "the envelope spans lines")
    let parsed: Any
    do {
        parsed = try JSONSerialization.jsonObject(with: Data(encoded))
    } catch {
        require(false, "not JSON: \(error): \(String(decoding: encoded, as: UTF8.self).debugDescription)")
        return 0
    }
    guard let object = parsed as? [String: Any] else {
        require(false, "not a JSON object")
        return 0
    }
    func same(_ key: String, _ expected: String?) {
        let value = object[key] as? String
        require(
            value.map { Array($0.utf8) } == expected.map { Array($0.utf8) },
            "\(key): \(String(describing: value).debugDescription) != \(String(describing: expected).debugDescription)")
    }
    same("id", envelope.id.text)
    same("received_at", receivedAt.rfc3339)
    same("scheme", scheme)
    same("uri", uri)
    same("event", envelope.event)
    same("delivery_id", envelope.deliveryID)

    guard let headers = object["headers"] as? [String: Any] else {
        require(false, "no headers object")
        return 0
    }
    // A JSON object keeps one value per name: the last one written.
    var expected: [String: String] = [:]
    for header in envelope.headers { expected[header.name] = header.value }
    require(headers.count == expected.count, "\(headers.count) headers where \(expected.count) were given")
    for (name, value) in expected {
        require(
            (headers[name] as? String).map { Array($0.utf8) } == Array(value.utf8), "header \(name.debugDescription)")
    }

    if let text = object["body"] as? String {
        require(Array(text.utf8) == body, "body differs")
        require(object["body_base64"] == nil, "both body and body_base64")
    } else if let encodedBody = object["body_base64"] as? String {
        require(!String(decoding: body, as: UTF8.self).utf8.elementsEqual(body), "a UTF-8 body as base64")
        require(Data(base64Encoded: encodedBody).map { [UInt8]($0) } == body, "body_base64 differs")
    } else {
        require(false, "no body")
    }
    return 0
}
