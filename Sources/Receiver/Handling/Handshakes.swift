import FastCGI
import FoundationEssentials  // JSONDecoder/JSONEncoder; not Foundation, whose libraries add 6 MiB of RSS
import Posix

/// Sender handshakes: requests that check an endpoint instead of delivering
/// an event. hookguard answers them itself and never stores them. A signed
/// handshake (Slack, Discord, Twitch, Zoom) is answered only after its
/// signature was verified like any delivery's.
enum Handshakes {
    /// The longest challenge echoed back; senders send tens of characters.
    static let maxChallenge = 2048

    /// The answer to a verified POST that is the scheme's handshake; nil when
    /// the request is an ordinary delivery.
    static func answer(
        _ handshake: Scheme.Handshake, params: RequestParams, body: [UInt8], keys: [Secret]
    ) -> Outcome? {
        let decoder = JSONDecoder()
        switch handshake {
        case .slackURLVerification:
            struct Body: Decodable {
                var type: String
                var challenge: String?
            }
            guard let request = try? decoder.decode(Body.self, from: Data(body)), request.type == "url_verification"
            else { return nil }
            return json(handshake, ["challenge": request.challenge ?? ""], challenge: request.challenge)
        case .discordPing:
            struct Body: Decodable { var type: Int }
            guard let request = try? decoder.decode(Body.self, from: Data(body)), request.type == 1 else { return nil }
            return .handshake(
                handshake.rawValue,
                Response(
                    status: 200, headers: [("Content-Type", "application/json")], body: Array("{\"type\":1}".utf8)))
        case .twitchCallbackVerification:
            guard params[HeaderName("Twitch-Eventsub-Message-Type")] == "webhook_callback_verification" else {
                return nil
            }
            struct Body: Decodable { var challenge: String }
            let challenge = try? decoder.decode(Body.self, from: Data(body)).challenge
            return text(handshake, challenge)
        case .zoomURLValidation:
            struct Body: Decodable {
                struct Payload: Decodable { var plainToken: String }
                var event: String
                var payload: Payload?
            }
            guard let request = try? decoder.decode(Body.self, from: Data(body)),
                request.event == "endpoint.url_validation"
            else { return nil }
            // Zoom checks the token with its current secret: the location's first.
            guard let token = request.payload?.plainToken, let key = keys.first else {
                return .badRequest("endpoint.url_validation without payload.plainToken.")
            }
            do {
                let encrypted = try MessageAuthentication.code(.sha256, key: key.bytes, message: Array(token.utf8))
                return json(handshake, ["plainToken": token, "encryptedToken": encrypted.hexString], challenge: token)
            } catch {
                return .cryptoFailed(error)
            }
        case .metaSubscribe, .dropboxChallenge:
            return nil
        }
    }

    /// The answer to an unsigned GET handshake; nil when the GET is not one
    /// (answered 405 like any other GET).
    static func answerGET(
        _ handshake: Scheme.Handshake, params: RequestParams, verifyTokens: () throws(ConfigError) -> [Secret]
    ) -> Outcome? {
        let query = Self.query(params["QUERY_STRING"] ?? "")
        switch handshake {
        case .dropboxChallenge:
            guard let challenge = query["challenge"] else { return nil }
            return text(handshake, challenge)
        case .metaSubscribe:
            guard query["hub.mode"] == "subscribe", let challenge = query["hub.challenge"] else { return nil }
            let tokens: [Secret]
            do {
                tokens = try verifyTokens()
            } catch {
                return .configInvalid(error)
            }
            let given = Array((query["hub.verify_token"] ?? "").utf8)
            var matched = false
            do {
                for token in tokens { matched = try MessageAuthentication.tokenEquals(given, token.bytes) || matched }
            } catch {
                return .cryptoFailed(error)
            }
            guard matched else {
                return .handshakeRefused(handshake.rawValue, "hub.verify_token is not this location's verify token")
            }
            return text(handshake, challenge)
        default:
            return nil
        }
    }

    private static func usable(_ challenge: String?) -> Bool {
        guard let challenge, !challenge.isEmpty, challenge.utf8.count <= maxChallenge else { return false }
        return challenge.utf8.allSatisfy { (0x21...0x7e).contains($0) }
    }

    private static func text(_ handshake: Scheme.Handshake, _ challenge: String?) -> Outcome {
        guard usable(challenge), let challenge else {
            return .badRequest(
                "A \(handshake.rawValue) challenge must be 1 to \(maxChallenge) visible ASCII characters.")
        }
        return .handshake(
            handshake.rawValue,
            Response(
                status: 200, headers: [("Content-Type", "text/plain"), ("X-Content-Type-Options", "nosniff")],
                body: Array(challenge.utf8)))
    }

    private static func json(_ handshake: Scheme.Handshake, _ fields: [String: String], challenge: String?) -> Outcome {
        guard usable(challenge) else {
            return .badRequest(
                "A \(handshake.rawValue) challenge must be 1 to \(maxChallenge) visible ASCII characters.")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = (try? encoder.encode(fields)).map { [UInt8]($0) } ?? []
        return .handshake(
            handshake.rawValue, Response(status: 200, headers: [("Content-Type", "application/json")], body: body))
    }

    /// `name=value` pairs of a query string, form-decoded; the first of a repeated name.
    static func query(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in Array(text.utf8).split(separator: UInt8(ascii: "&")) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(decoding: SignedURL.formDecoded(parts[0]), as: UTF8.self)
            let value = parts.count > 1 ? String(decoding: SignedURL.formDecoded(parts[1]), as: UTF8.self) : ""
            if fields[name] == nil { fields[name] = value }
        }
        return fields
    }
}
