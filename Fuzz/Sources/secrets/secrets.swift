// Secret files: any bytes through Secret.parseFile, through SecretFileCache
// reading them from a real file, and each secret through the whsec_ key
// decoding of Standard Webhooks. Properties: no crash; every secret is a
// non-empty line without surrounding white space and not a # comment; the
// cache reads what parseFile parses; CRLF line ends change nothing; a key
// decoded from whsec_ (or whpk_) is non-empty and is what the base64 says.
import Doctor
import FastCGI
import Foundation
import FuzzSupport
import HookguardTesting
import Receiver

/// A file in a directory of this process's own, removed at exit.
let path: String = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hookguard-fuzz-secrets-\(getpid())")
        .path
    try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    removeAtExit(directory)
    return directory + "/fuzz.secret"
}()
let standardWebhooks = Scheme.presets["standard-webhooks"]!
let whitespace: Set<UInt8> = [0x20, 0x09, 0x0d, 0x0a]

@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzSecrets(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let contents = Array(UnsafeRawBufferPointer(start: data, count: count))
    let secrets = Secret.parseFile(contents)

    let lines = contents.split(separator: 0x0a).count
    require(secrets.count <= lines, "\(secrets.count) secrets from \(lines) lines")
    let isUTF8 = String(validating: contents, as: UTF8.self) != nil
    for secret in secrets {
        let bytes = secret.bytes
        require(!bytes.isEmpty, "an empty secret")
        require(!bytes.contains(0x0a), "a secret spanning lines")
        require(!whitespace.contains(bytes.first!) && !whitespace.contains(bytes.last!), "white space kept")
        require(bytes.first != UInt8(ascii: "#"), "a comment taken as a secret")
        require("\(secret)" == "<secret>" && String(reflecting: secret) == "<secret>", "a secret printed")
        if isUTF8 { require(FuzzSupport.contains(contents, bytes), "a secret that is not in the file") }

        if let key = try? standardWebhooks.key(from: secret) {
            require(!key.bytes.isEmpty, "an empty whsec_ key")
            let text = String(decoding: bytes, as: UTF8.self)
            // whpk_: a v1a package key; whsec_ (or bare): the HMAC key. Either is the base64
            // after the prefix, its `=` padding optional as in the standardwebhooks library.
            let prefix = key.isPublicKey ? "whpk_" : "whsec_"
            let encoded = text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
            let padded = encoded + String(repeating: "=", count: (4 - encoded.utf8.count % 4) % 4)
            require(
                Data(base64Encoded: padded).map { [UInt8]($0) } == key.bytes, "a \(prefix) key that is not the base64")
            if key.isPublicKey { require(key.bytes.count == 32, "a whpk_ key of \(key.bytes.count) bytes") }
        }
    }

    if !contents.contains(0x0d) {
        let crlf = contents.flatMap { $0 == 0x0a ? [0x0d, 0x0a] : [$0] }
        require(Secret.parseFile(crlf) == secrets, "CRLF line ends give other secrets")
    }

    // The same bytes as a secret file on disk, read by a fresh cache.
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot write \(path)")
    var offset = 0
    while offset < contents.count {
        let n = contents.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        require(n > 0, "cannot write \(path)")
        offset += n
    }
    close(fd)
    do {
        let read = try SecretFileCache().secrets(at: path)
        require(read == secrets, "the cache read other secrets than parseFile")
    } catch {
        require(secrets.isEmpty, "the cache refused a file with secrets: \(error)")
    }
    return 0
}
