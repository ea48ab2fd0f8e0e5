import Foundation
@testable import HookguardCore

/// A request body held in memory, as a web server would stream it.
struct MemoryBody: RequestBodySource {
    var bytes: [UInt8]
    var offset = 0
    /// Simulates a client that went away after this many bytes.
    var failAfter: Int? = nil

    init(_ bytes: [UInt8], failAfter: Int? = nil) {
        self.bytes = bytes
        self.failAfter = failAfter
    }

    var marksItsEnd: Bool { true }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) -> BodyChunk {
        let end = min(bytes.count, failAfter ?? bytes.count)
        let n = min(buffer.count, end - offset)
        bytes.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return BodyChunk(count: n, failed: failAfter != nil && n < buffer.count)
    }
}

/// A fresh directory under the system's temp directory, removed by the caller.
func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("hookguard-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func loadVectors<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors")!
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

func params(_ values: [String: String]) -> RequestParams { RequestParams(values) }
