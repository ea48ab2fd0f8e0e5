import FastCGI
import Posix

/// What a location's secrets become under its scheme: the keys, and the lines
/// of its secret file that cannot be one. A bad line is reported and skipped,
/// so adding one during a rotation does not stop the lines that work.
package struct LocationKeys: Sendable {
    package var keys: [Secret] = []
    package var unusable: [UnusableSecret] = []

    /// `literal` is HOOKGUARD_SECRET: a problem with it is the location's
    /// error. `file` is HOOKGUARD_SECRET_FILE's path and numbered lines: the
    /// location fails only when no line of it (and no literal) is usable.
    package init(
        _ scheme: Scheme, literal: Secret?, file: (path: String, lines: [(line: Int, secret: Secret)])?
    ) throws(ConfigError) {
        if let literal {
            do {
                keys.append(try scheme.key(from: literal))
            } catch {
                throw ConfigError(.secret, error.problem)
            }
        }
        guard let file else { return }
        for (line, secret) in file.lines {
            do {
                keys.append(try scheme.key(from: secret))
            } catch {
                unusable.append(UnusableSecret(path: file.path, line: line, problem: error.problem))
            }
        }
        if keys.isEmpty, let first = unusable.first {
            throw ConfigError(.secretFile, "no usable secret: \(first)")
        }
    }
}

/// One line of a secret file that cannot be a key for the location's scheme.
package struct UnusableSecret: Sendable, Equatable, Hashable, CustomStringConvertible {
    package var path: String
    package var line: Int
    package var problem: String

    package init(path: String, line: Int, problem: String) {
        self.path = path
        self.line = line
        self.problem = problem
    }

    package var description: String { "\(path) line \(line): \(problem)" }
}
