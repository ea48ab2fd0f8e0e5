import Posix
import Receiver

/// The `location` blocks of an nginx config that pass `HOOKGUARD_*`
/// parameters, with the `client_max_body_size` in force for each.
package struct NginxLocation: Sendable, Equatable {
    /// As written after `location`, e.g. `= /hooks/tito`.
    package var name: String
    package var params: [String: String]
    /// Bytes; nil when unlimited (`0`).
    package var clientMaxBodySize: Int?
}

package enum NginxConfigError: Error, CustomStringConvertible {
    case unbalanced(line: Int)
    case unterminated(line: Int)

    package var description: String {
        switch self {
        case .unbalanced(let line): "unbalanced braces near line \(line)"
        case .unterminated(let line): "unterminated quote or directive near line \(line)"
        }
    }
}

package enum NginxConfig {
    /// nginx's own default when no `client_max_body_size` is set.
    package static let defaultClientMaxBodySize = 1024 * 1024

    package static func locations(in text: String) throws(NginxConfigError) -> [NginxLocation] {
        var tokens = try tokenize(text)
        var result: [NginxLocation] = []
        // A stack of the blocks we are in: their name and the body size limit in force.
        struct Block {
            var name: [String]
            var bodySize: Int?
            var params: [String: String]
        }
        var stack = [Block(name: ["main"], bodySize: defaultClientMaxBodySize, params: [:])]
        var statement: [String] = []
        while !tokens.isEmpty {
            let (token, line) = tokens.removeFirst()
            switch token {
            case "{":
                let inherited = stack.last!.bodySize
                stack.append(Block(name: statement, bodySize: inherited, params: [:]))
                statement = []
            case "}":
                guard statement.isEmpty, stack.count > 1 else { throw .unbalanced(line: line) }
                let block = stack.removeLast()
                if block.name.first == "location", block.params.keys.contains(where: { $0.hasPrefix("HOOKGUARD_") }) {
                    result.append(
                        NginxLocation(
                            name: block.name.dropFirst().joined(separator: " "), params: block.params,
                            clientMaxBodySize: block.bodySize))
                }
            case ";":
                if statement.first == "fastcgi_param", statement.count >= 3 {
                    stack[stack.count - 1].params[statement[1]] = statement[2]
                } else if statement.first == "client_max_body_size", statement.count == 2 {
                    stack[stack.count - 1].bodySize = parseSize(statement[1]).flatMap { $0 == 0 ? nil : $0 }
                }
                statement = []
            default:
                statement.append(token)
            }
        }
        guard stack.count == 1 else { throw .unbalanced(line: text.split(separator: "\n").count) }
        guard statement.isEmpty else { throw .unterminated(line: text.split(separator: "\n").count) }
        return result
    }

    /// `25m`, `512k`, `1g` or bytes; nil for what nginx would refuse too
    /// (a sign, other characters, a size past `Int.max`).
    package static func parseSize(_ text: String) -> Int? {
        let lower = text.lowercased()
        let units: [Character: Int] = ["k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024]
        var digits = Substring(lower)
        var factor = 1
        if let unit = lower.last, let multiplier = units[unit] {
            digits = lower.dropLast()
            factor = multiplier
        }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let number = Int(digits) else {
            return nil
        }
        let (size, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : size
    }

    private static func tokenize(_ text: String) throws(NginxConfigError) -> [(String, Int)] {
        var tokens: [(String, Int)] = []
        var current = ""
        var quote: Character? = nil
        var comment = false
        var escaped = false
        var line = 1
        func flush() {
            if !current.isEmpty { tokens.append((current, line)) }
            current = ""
        }
        for char in text {
            if char == "\n" { line += 1 }
            if comment {
                if char == "\n" { comment = false }
                continue
            }
            if let open = quote {
                if escaped {
                    current.append(char)
                    escaped = false
                } else if char == "\\" {
                    escaped = true
                } else if char == open {
                    tokens.append((current, line))
                    current = ""
                    quote = nil
                } else {
                    current.append(char)
                }
                continue
            }
            switch char {
            case "#" where current.isEmpty: comment = true
            case "\"" where current.isEmpty, "'" where current.isEmpty: quote = char
            case " ", "\t", "\n", "\r": flush()
            case "{", "}", ";":
                flush()
                tokens.append((String(char), line))
            default: current.append(char)
            }
        }
        if quote != nil { throw .unterminated(line: line) }
        flush()
        return tokens
    }
}
