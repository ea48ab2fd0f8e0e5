// The request path from raw CGI/FastCGI parameters and a body, through
// WebhookHandler.handle with an in-memory body: every HOOKGUARD_* parameter,
// every header, any method, length and body, a client that goes away, and
// (when the input asks) headers signed genuinely for the location's scheme, so
// that verification passes and delivery, spool, socket and dedupe run too.
//
// Paths are confined: an absolute HOOKGUARD_SPOOL, HOOKGUARD_SECRET_FILE or
// HOOKGUARD_SOCKET is replaced by one of a few prepared under a directory of
// this process (a good one, and broken ones of each kind), so no input
// writes outside it. A literal HOOKGUARD_SECRET becomes a secret drawn at
// random for this process, so the input never knows a key.
//
// Properties: no crash; the status is one hookguard gives (200, 400, 405,
// 413, 500, 503 or the location's HOOKGUARD_REJECT_STATUS); a receiver
// answers 200 only to a request the harness signed; an accepted delivery's
// spool entry is JSON holding the body byte for byte; nothing is left in
// tmp/; no log line and no response holds a secret.
import Doctor
import FastCGI
import Foundation
import FuzzSupport
import HookguardTesting
import Logging
import Posix
import Receiver
import Synchronization

/// Input: a flags byte (bit 0: sign the request genuinely; bit 1: the client
/// goes away after `cut` bytes of body), the `cut` byte, a byte moving the
/// signed timestamp from now (in 4-second steps, either way), then
/// NUL-separated `NAME=VALUE` parameters up to an empty field; the rest is the body.
@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzRequest(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let sandbox = Sandbox.shared
    var input = FuzzInput(data, count: count)
    let flags = input.byte()
    let cut = Int(input.byte())
    let skew = (Int(input.byte()) - 128) * 4
    var params = RequestParams()
    for entry in input.fieldList() { params.append(entry: entry) }
    let body = input.rest()

    sandbox.confine(&params)
    let signed = flags & 1 != 0 && sandbox.sign(&params, body: body, skew: skew)

    captured.clear()
    var source = MemoryBody(body, failAfter: flags & 2 != 0 ? cut : nil)
    let response = sandbox.handler.handle(params, body: &source)

    let role = params[Parameter.role.rawValue] ?? ""
    let rejectStatus = params[Parameter.rejectStatus.rawValue].flatMap { Int($0) }
    let known: Set<Int> = [200, 400, 403, 405, 413, 500, 503]
    require(known.contains(response.status) || response.status == rejectStatus, "status \(response.status)")
    // A sender's handshake (issue 16) is answered 200 without an id and stores nothing; only
    // the GET ones (Meta, Dropbox) are unsigned.
    let handshake = captured.lines.contains { $0.contains("reason=handshake") }
    if response.status == 200, role == "" || role == "receiver", handshake {
        require(signed || params.method == "GET", "answered a handshake nobody signed: \(params.values)")
    } else if response.status == 200, role == "" || role == "receiver" {
        require(signed, "accepted a delivery nobody signed: \(params.values)")
        sandbox.checkStored(response, body: body, uri: params.uri)
    }
    sandbox.checkNoSecretShown(response, params: params)
    if Sandbox.tracing {
        let log = captured.lines.joined(separator: " | ")
        print("\(response.status) signed=\(signed) \(log.prefix(300))")
    }
    sandbox.clear()
    return 0
}

/// Log lines of the current request, to look for secrets in.
let captured = CapturedLog()

/// The directory an input may reach, prepared once per process.
final class Sandbox: Sendable {
    static let shared = Sandbox()
    /// HOOKGUARD_FUZZ_TRACE=1: one line per input with its answer and log, to see what the corpus reaches.
    static let tracing = ProcessInfo.processInfo.environment["HOOKGUARD_FUZZ_TRACE"] != nil

    let root: String
    let handler: WebhookHandler
    /// Whsec_ form, so it serves schemes that decode their keys and those that do not.
    let secret = "whsec_" + Data(randomBytes(24)).base64EncodedString()
    /// A literal secret that is no whsec_ key, for the error of schemes that need one.
    let plainSecret = "plain-" + randomBytes(12).hexString
    let spools: [String]
    let secretFiles: [String]
    let sockets: [String]
    var goodSpool: String { spools[0] }
    var goodSecretFile: String { secretFiles[0] }

    private init() {
        // tmpfs when there is one: fsync costs nothing there, and the fuzzer runs millions of requests.
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        root = base + "/hookguard-fuzz-request-\(getpid())"
        removeAtExit(root)
        let files = FileManager.default
        try! files.createDirectory(atPath: root + "/secrets", withIntermediateDirectories: true)
        func write(_ path: String, _ text: String, mode: Int) {
            try! text.write(toFile: path, atomically: false, encoding: .utf8)
            try! files.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }
        // Spools: a good one, one under a regular file, one whose new/ is a file.
        write(root + "/regular-file", "not a directory\n", mode: 0o600)
        try! files.createDirectory(atPath: root + "/broken/tmp", withIntermediateDirectories: true)
        try! files.createDirectory(atPath: root + "/broken/cur", withIntermediateDirectories: true)
        write(root + "/broken/new", "not a directory\n", mode: 0o600)
        spools = [root + "/spool", root + "/regular-file/spool", root + "/broken"]
        // Secret files: good, world-readable, comments only, a directory, missing, not a whsec_ key.
        write(root + "/secrets/good.secret", "# rotated today\n\n\(secret)\n", mode: 0o600)
        write(root + "/secrets/world.secret", "\(secret)\n", mode: 0o644)
        write(root + "/secrets/comments.secret", "# nothing yet\n\n", mode: 0o600)
        write(root + "/secrets/plain.secret", "\(plainSecret)\n", mode: 0o600)
        secretFiles = [
            root + "/secrets/good.secret", root + "/secrets/world.secret", root + "/secrets/comments.secret",
            root + "/secrets", root + "/secrets/missing.secret", root + "/secrets/plain.secret",
        ]
        // Sockets: a reader that acknowledges, no reader, a regular file.
        SocketReader.start(at: root + "/reader.sock")
        sockets = [root + "/reader.sock", root + "/nobody.sock", root + "/regular-file"]
        handler = WebhookHandler(logger: captured.logger(label: "fuzz"))
    }

    /// Absolute paths become prepared ones (chosen by the value's length);
    /// relative ones stay, for the configuration errors they give.
    func confine(_ params: inout RequestParams) {
        func choose(_ parameter: Parameter, from paths: [String]) {
            guard let value = params[parameter.rawValue], value.hasPrefix("/") else { return }
            params[parameter.rawValue] = paths[value.utf8.count % paths.count]
        }
        choose(.spool, from: spools)
        choose(.secretFile, from: secretFiles)
        choose(.socket, from: sockets)
        if let value = params[Parameter.secret.rawValue], !value.isEmpty {
            params[Parameter.secret.rawValue] = value.utf8.count % 2 == 0 ? secret : plainSecret
        }
        // Memory per request is bounded by HOOKGUARD_MAX_BODY by design; keep it to 1 MiB here.
        if let value = params[Parameter.maxBody.rawValue], let bytes = Int(value), bytes > 1 << 20 {
            params[Parameter.maxBody.rawValue] = String(1 << 20)
        }
    }

    /// Adds the headers a genuine sender would for the location's scheme,
    /// with a secret the location holds; false when there is none to sign with.
    func sign(_ params: inout RequestParams, body: [UInt8], skew: Int) -> Bool {
        guard let scheme = try? LocationConfig.scheme(params) else { return false }
        let key: String
        if let literal = params[Parameter.secret.rawValue], !literal.isEmpty {
            key = literal
        } else if params[Parameter.secretFile.rawValue] == goodSecretFile {
            key = secret
        } else {
            return false
        }
        let id = scheme.idHeader.flatMap { params[$0] }.flatMap { $0.isEmpty ? nil : $0 } ?? "msg_fuzz"
        guard
            let lines = try? SignatureSigner.headers(
                scheme, secret: Secret(key), body: body, timestamp: Timestamp.now().seconds + skew, id: id)
        else { return false }
        for line in lines { params[HeaderName(line.name).parameter] = line.value }
        return true
    }

    /// The entry an accepted delivery names is whole JSON with the body byte for byte.
    func checkStored(_ response: Response, body: [UInt8], uri: String) {
        let answer = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: String]
        guard let id = answer?["id"] else {
            require(false, "a 200 without an id: \(String(decoding: response.body, as: UTF8.self))")
            return
        }
        require(DeliveryID(parsing: id) != nil, "an id that is no delivery id: \(id)")
        guard let stored = FileManager.default.contents(atPath: goodSpool + "/new/\(id).json") else {
            return  // handed to the socket reader, or a duplicate of an entry cleared since
        }
        require(stored.last == 0x0a, "a spool entry without its final newline")
        let object = try? JSONSerialization.jsonObject(with: stored) as? [String: Any]
        require(object != nil, "a spool entry that is not a JSON object")
        let text = object?["body"] as? String
        let base64 = (object?["body_base64"] as? String).flatMap { Data(base64Encoded: $0) }
        require(text.map { Array($0.utf8) } == body || base64.map { [UInt8]($0) } == body, "the stored body differs")
        require((object?["uri"] as? String).map { Array($0.utf8) } == Array(uri.utf8), "the stored uri differs")
    }

    /// Neither the log nor the response shows a secret, unless the request
    /// itself carries it elsewhere (a token scheme's header does).
    func checkNoSecretShown(_ response: Response, params: RequestParams) {
        let elsewhere = params.values.filter { $0.key != Parameter.secret.rawValue }.map(\.value)
        let log = captured.text
        for secret in [secret, plainSecret, String(secret.dropFirst(6))]
        where !elsewhere.contains(where: { $0.contains(secret) }) {
            require(!log.contains(secret), "a secret in the log: \(log)")
            require(!FuzzSupport.contains(response.body, secret.utf8), "a secret in the response")
        }
    }

    /// Empties the spools and their dedupe records, so every input starts
    /// alike. (Records left to pile up in one spool once led to the
    /// dedupe-sweep over-read that FuzzFindingTests now builds on purpose.)
    func clear() {
        let files = FileManager.default
        for spool in spools {
            for directory in ["tmp", "new", "cur", "dedupe"] {
                let path = spool + "/" + directory
                guard let names = try? files.contentsOfDirectory(atPath: path) else { continue }
                if directory == "tmp" { require(names.isEmpty, "debris in \(path): \(names)") }
                for name in names { unlink(path + "/" + name) }
            }
        }
    }
}
