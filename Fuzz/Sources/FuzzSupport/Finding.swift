import Foundation
import Posix

/// Stops the run with a message when a property does not hold: libFuzzer
/// saves the input that broke it as a crash.
package func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    guard !condition else { return }
    let text = "hookguard fuzz finding: \(message())\n"
    FileHandle.standardError.write(Data(text.utf8))
    fatalError("hookguard fuzz finding")
}

/// Whether `needle` occurs in `haystack`, byte for byte.
package func contains(_ haystack: some Collection<UInt8>, _ needle: some Collection<UInt8>) -> Bool {
    let hay = Array(haystack)
    let pin = Array(needle)
    guard !pin.isEmpty, pin.count <= hay.count else { return pin.isEmpty }
    return (0...(hay.count - pin.count)).contains { start in hay[start..<(start + pin.count)].elementsEqual(pin) }
}

/// A fresh random value for each process: what the fuzzer can never learn.
package func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

private let removals = Locked<[String]>([])

/// Removes `path` (a directory tree this process made) when the fuzzer exits.
package func removeAtExit(_ path: String) {
    let first = removals.withLock { paths in
        paths.append(path)
        return paths.count == 1
    }
    if first {
        atexit {
            for path in removals.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
        }
    }
}
