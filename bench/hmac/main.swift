// hmac-bench: the HMAC step of a 5 MiB delivery, hookguard's own
// MessageAuthentication.code over the body in place, against
// `openssl speed -hmac sha256` on the same size. Built in release by bench/run
// and run at its end; not part of `swift test`.
//
//   hmac-bench [SECONDS]
import Foundation
import Receiver

let size = 5 * 1024 * 1024
let seconds = CommandLine.arguments.dropFirst().first.flatMap(Double.init) ?? 3
let key = Array("bench-secret-5b9d2e0f".utf8)
var body = [UInt8](repeating: 0, count: size)
for i in body.indices { body[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// HMACs of the whole body, in place, for about `seconds`; bytes per second.
@MainActor func hookguardThroughput() -> (bytesPerSecond: Double, runs: Int) {
    var runs = 0
    var sink: UInt8 = 0
    let start = now()
    var elapsed = 0.0
    body.withUnsafeBytes { message in
        repeat {
            sink ^= try! MessageAuthentication.code(.sha256, key: key, message: message)[0]
            runs += 1
            elapsed = now() - start
        } while elapsed < seconds
    }
    if sink == 0x5a && runs < 0 { print(sink) }  // keeps the loop's result alive
    return (Double(runs * size) / elapsed, runs)
}

/// `openssl speed -hmac sha256 -bytes 5242880`: its machine-readable +F line
/// gives bytes per second.
@MainActor func opensslThroughput() -> Double? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "openssl", "speed", "-mr", "-hmac", "sha256", "-bytes", String(size),
        "-seconds", String(Int(seconds.rounded(.up))),
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    for line in output.split(separator: "\n") where line.hasPrefix("+F:") {
        if let value = line.split(separator: ":").last.flatMap({ Double($0) }) { return value }
    }
    return nil
}

/// Nanoseconds per HMAC of a small body (a 1.5 KB delivery): the fixed cost per request.
@MainActor func smallBodyNanoseconds(_ size: Int) -> Double {
    let small = Array(body[0..<size])
    let runs = 200_000
    var sink: UInt8 = 0
    let start = now()
    small.withUnsafeBytes { message in
        for _ in 0..<runs { sink ^= try! MessageAuthentication.code(.sha256, key: key, message: message)[0] }
    }
    let elapsed = now() - start
    if sink == 0x5a && runs < 0 { print(sink) }
    return elapsed / Double(runs) * 1e9
}

let mib = 1024.0 * 1024.0
// Alternating, best of three each: the machine is shared and noisy.
var ours: [Double] = []
var theirs: [Double] = []
for _ in 0..<3 {
    ours.append(hookguardThroughput().bytesPerSecond)
    if let value = opensslThroughput() { theirs.append(value) }
}
let best = ours.max()!
print(
    String(
        format: "hookguard MessageAuthentication.code, 5 MiB: %.0f MiB/s (%.2f ms per body)",
        best / mib, Double(size) / best * 1000))
print(
    String(
        format: "hookguard MessageAuthentication.code, 1.5 KB: %.0f ns per body (best of 3)",
        (0..<3).map { _ in smallBodyNanoseconds(1536) }.min()!))
if let reference = theirs.max() {
    print(String(format: "openssl speed -hmac sha256 -bytes %d: %.0f MiB/s", size, reference / mib))
    print(String(format: "ratio: %.1f%% of openssl", best / reference * 100))
} else {
    print("openssl speed did not run: no reference")
}
