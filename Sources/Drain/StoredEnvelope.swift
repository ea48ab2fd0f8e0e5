import FastCGI
import FoundationEssentials
import Posix
import Receiver

/// The parts of a spooled envelope a command is given: the body, byte-exact
/// (`body` as UTF-8, or `body_base64` decoded), and the metadata it gets in
/// its environment.
package struct StoredEnvelope: Sendable {
    package var id: String
    package var scheme: String
    package var event: String?
    /// The sender's own delivery id, when the envelope records one.
    package var deliveryID: String?
    /// When hookguard received it (RFC 3339), as the envelope says.
    package var receivedAt: String?
    /// The sender's request headers with envelope names (`x-github-event`), sorted by name.
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    package init(decoding bytes: [UInt8]) throws(EnvelopeReadError) {
        let fields: Fields
        do {
            fields = try JSONDecoder().decode(Fields.self, from: Data(bytes))
        } catch {
            throw .notAnEnvelope(Self.describe(error))
        }
        id = fields.id
        scheme = fields.scheme
        event = fields.event
        deliveryID = fields.deliveryID
        receivedAt = fields.receivedAt
        headers = (fields.headers ?? [:]).sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
        switch (fields.body, fields.bodyBase64) {
        case (let text?, nil):
            body = Array(text.utf8)
        case (nil, let encoded?):
            guard let data = Data(base64Encoded: encoded) else { throw .notAnEnvelope("body_base64 is not base64") }
            body = Array(data)
        case (nil, nil):
            throw .notAnEnvelope("it has neither body nor body_base64")
        case (_?, _?):
            throw .notAnEnvelope("it has both body and body_base64")
        }
    }

    private struct Fields: Decodable {
        var id: String
        var scheme: String
        var event: String?
        var deliveryID: String?
        var receivedAt: String?
        var headers: [String: String]?
        var body: String?
        var bodyBase64: String?

        enum CodingKeys: String, CodingKey {
            case id, scheme, event, body, headers
            case deliveryID = "delivery_id"
            case receivedAt = "received_at"
            case bodyBase64 = "body_base64"
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "it has no \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "\(context.codingPath.map(\.stringValue).joined(separator: ".")) is not a string"
        default: "it is not a JSON object"
        }
    }
}

package enum EnvelopeReadError: Error, Sendable, CustomStringConvertible {
    case notAnEnvelope(String)

    package var description: String {
        switch self {
        case .notAnEnvelope(let why): "not a hookguard envelope: \(why)"
        }
    }
}
