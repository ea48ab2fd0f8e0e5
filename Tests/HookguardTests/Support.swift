import Foundation
import HookguardTesting

@testable import FastCGI

func loadVectors<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Vectors")!
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
}

func params(_ values: [String: String]) -> RequestParams { RequestParams(values) }
