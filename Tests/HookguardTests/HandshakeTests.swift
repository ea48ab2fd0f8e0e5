import Foundation
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

/// Handshake answers (the signature checks before them are the handler's,
/// tested through nginx in test_handshakes.py with independently signed requests).
@Suite struct HandshakeTests {
    func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func postAnswers() throws {
        let slack = Handshakes.answer(
            .slackURLVerification, params: params([:]),
            body: body(#"{"token":"t","challenge":"abc123","type":"url_verification"}"#), keys: [])
        #expect(slack?.response.body == body(#"{"challenge":"abc123"}"#))
        #expect(slack?.reason == .handshake)
        #expect(
            Handshakes.answer(
                .slackURLVerification, params: params([:]), body: body(#"{"type":"event_callback"}"#), keys: []) == nil)

        let ping = Handshakes.answer(.discordPing, params: params([:]), body: body(#"{"type":1}"#), keys: [])
        #expect(ping?.response.body == body(#"{"type":1}"#))
        #expect(Handshakes.answer(.discordPing, params: params([:]), body: body(#"{"type":2}"#), keys: []) == nil)

        let twitch = params(["HTTP_TWITCH_EVENTSUB_MESSAGE_TYPE": "webhook_callback_verification"])
        #expect(
            Handshakes.answer(
                .twitchCallbackVerification, params: twitch, body: body(#"{"challenge":"c-1"}"#), keys: [])?
                .response.body == body("c-1"))
        #expect(
            Handshakes.answer(
                .twitchCallbackVerification, params: params(["HTTP_TWITCH_EVENTSUB_MESSAGE_TYPE": "notification"]),
                body: body(#"{"challenge":"c-1"}"#), keys: []) == nil)

        // Zoom's documented construction: hex HMAC-SHA256 of plainToken under the secret token
        // (the value below is Python's hmac.new(b"zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw", sha256).hexdigest()).
        let zoom = Handshakes.answer(
            .zoomURLValidation, params: params([:]),
            body: body(#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event":"endpoint.url_validation"}"#),
            keys: [Secret("zoom-secret")])
        let answer = try JSONDecoder().decode([String: String].self, from: Data(try #require(zoom).response.body))
        #expect(
            answer == [
                "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                "encryptedToken": "b17f0320a1322a509340a1a835b3d9edbc491f0b0790ed2d20d0604d39dfe922",
            ])
    }

    @Test func challengesAreBounded() {
        let long = String(repeating: "a", count: Handshakes.maxChallenge + 1)
        for challenge in ["", long, "with space", "tab\\there"] {
            let outcome = Handshakes.answer(
                .slackURLVerification, params: params([:]),
                body: Array(#"{"type":"url_verification","challenge":"\#(challenge)"}"#.utf8), keys: [])
            #expect(outcome?.response.status == 400, "\(challenge.prefix(10))")
        }
    }

    @Test func getAnswers() {
        let none: () throws(ConfigError) -> [Secret] = { [Secret("vt")] }
        let meta = Handshakes.answerGET(
            .metaSubscribe,
            params: params(["QUERY_STRING": "hub.mode=subscribe&hub.verify_token=vt&hub.challenge=1158201444"]),
            verifyTokens: none)
        #expect(meta?.response.body == Array("1158201444".utf8))
        let wrong = Handshakes.answerGET(
            .metaSubscribe, params: params(["QUERY_STRING": "hub.mode=subscribe&hub.verify_token=v&hub.challenge=1"]),
            verifyTokens: none)
        #expect(wrong?.response.status == 403)
        #expect(
            Handshakes.answerGET(
                .metaSubscribe, params: params(["QUERY_STRING": "hub.challenge=1"]), verifyTokens: none) == nil)
        let dropbox = Handshakes.answerGET(
            .dropboxChallenge, params: params(["QUERY_STRING": "challenge=a%2Bb+c"]), verifyTokens: none)
        #expect(dropbox?.response.status == 400)  // "a+b c": a space is not echoed
        #expect(
            Handshakes.answerGET(
                .dropboxChallenge, params: params(["QUERY_STRING": "challenge=a%2Bb"]), verifyTokens: none)?
                .response.body == Array("a+b".utf8))
    }
}
