// Signature header values of every scheme: arbitrary signature, timestamp and
// id headers through SignatureVerifier.verify, for every preset and a custom
// scheme. Properties:
// - nothing crashes;
// - nothing verifies under a key drawn at random for this process (a value
//   that did would be a forgery);
// - under a secret from the input (as a secret file holds it, whsec_ ones
//   decoded), what SignatureSigner signs verifies: the two sides agree.
import Doctor
import FastCGI
import Foundation
import FuzzSupport
import HookguardTesting
import Receiver

/// The presets in a fixed order, so an input names the same scheme in every run.
let presets = Scheme.presets.keys.sorted().map { Scheme.presets[$0]! }
let unknownKey = Secret(bytes: randomBytes(32))
let encodings: [SignatureEncoding] = [.hex, .base64, .token]
let prefixes = ["", "sha256=", "v1=", "Bearer "]

/// Input: a scheme byte, a tolerance byte, then NUL-separated fields: the
/// signature header, the timestamp header, the id header, a secret file's
/// text, and the custom scheme's algorithm, encoding, prefix and id header;
/// the rest is the body.
@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzSignatures(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    var input = FuzzInput(data, count: count)
    let choice = Int(input.byte())
    let tolerance = Int(input.byte()) * 10
    let signature = input.text()
    let timestamp = input.text()
    let id = input.text()
    let secretFile = input.field()
    let algorithm = input.text()
    let encoding = input.text()
    let prefix = input.text()
    let idHeader = input.text()
    let body = input.rest()

    let scheme: Scheme
    if choice % (presets.count + 1) < presets.count {
        scheme = presets[choice % (presets.count + 1)]
    } else {
        scheme = customScheme(
            algorithm: algorithm, encoding: encoding, prefix: prefix, idHeader: idHeader, choice: choice)
    }

    var params = RequestParams()
    params[scheme.signatureHeader.parameter] = signature
    if case .header(let name) = scheme.timestamp { params[name.parameter] = timestamp }
    if let header = scheme.idHeader { params[header.parameter] = id }
    let now = 1_700_000_000

    // Nobody knows this key: whatever the headers say, it must not verify.
    do {
        try SignatureVerifier.verify(
            scheme, keys: [unknownKey], params: params, body: body, now: now, tolerance: tolerance)
        require(false, "\(scheme.name): accepted under a key drawn at random: \(params.values)")
    } catch {
        guard case .refused(let failure) = error else {
            require(false, "\(error)")
            return 0
        }
        _ = failure.description
        _ = failure.reasonCode
    }

    let secrets = Secret.parseFile(secretFile)
    let keys = secrets.compactMap { try? scheme.key(from: $0) }
    do {
        try SignatureVerifier.verify(scheme, keys: keys, params: params, body: body, now: now, tolerance: tolerance)
    } catch {
        _ = error.description
    }

    // What the signer writes, the verifier accepts (schemes signed with a shared secret in a header).
    if scheme.publicKey == nil, scheme.bodySignature == nil, let secret = secrets.first,
        let key = try? scheme.key(from: secret), !key.isPublicKey
    {
        let stamp = Int(timestamp.prefix(while: \.isASCII).filter(\.isNumber).prefix(10)) ?? now
        let senderID: String? = id.isEmpty ? nil : id
        let needsID = scheme.message.contains(.id)
        if !(needsID && senderID == nil) {
            do {
                let lines = try SignatureSigner.headers(
                    scheme, secret: secret, body: body, timestamp: stamp, id: senderID)
                var signed = RequestParams()
                signed["REQUEST_METHOD"] = "POST"  // what the signer assumes, for {method} (HubSpot)
                for line in lines { signed[HeaderName(line.name).parameter] = line.value }
                try SignatureVerifier.verify(scheme, keys: [key], params: signed, body: body, now: stamp, tolerance: 0)
            } catch {
                require(
                    false, "\(scheme.name) (prefix \(scheme.prefix.debugDescription)): signed, then refused: \(error)")
            }
        }
    }
    return 0
}

/// A custom scheme from the input's parameters as a location would give
/// them; when they do not make one, from the choice byte.
func customScheme(algorithm: String, encoding: String, prefix: String, idHeader: String, choice: Int) -> Scheme {
    let params = RequestParams([
        "HOOKGUARD_SCHEME": "custom", "HOOKGUARD_SIGNATURE_HEADER": "X-Fuzz-Signature",
        "HOOKGUARD_ALGORITHM": algorithm, "HOOKGUARD_ENCODING": encoding, "HOOKGUARD_PREFIX": prefix,
        "HOOKGUARD_ID_HEADER": idHeader,
    ])
    do {
        return try LocationConfig.scheme(params)
    } catch {
        _ = error.description
        return Scheme(
            name: "custom", signatureHeader: HeaderName("X-Fuzz-Signature"),
            algorithm: DigestAlgorithm.allCases[(choice >> 4) % DigestAlgorithm.allCases.count],
            encoding: encodings[(choice >> 6) % encodings.count], prefix: prefixes[choice & 3])
    }
}
