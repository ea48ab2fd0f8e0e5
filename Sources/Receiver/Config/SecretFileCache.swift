import FastCGI
import Posix

/// Secret files, read once and read again when they change (another inode,
/// size, modification or change time), so a secret is rotated by rewriting
/// its file. Each request costs one `stat`.
package final class SecretFileCache: Sendable {
    private struct Entry {
        /// The file as it was read; any difference in a later `stat` reads it again.
        var status: FileStatus
        var secrets: [(line: Int, secret: Secret)]
    }

    private let entries = Locked<[String: Entry]>([:])

    package init() {}

    package func secrets(at path: String) throws(ConfigError) -> [Secret] {
        try numberedSecrets(at: path).map(\.secret)
    }

    /// The file's secrets with their line numbers.
    package func numberedSecrets(at path: String) throws(ConfigError) -> [(line: Int, secret: Secret)] {
        let st: FileStatus
        do {
            st = try Sys.stat(path)
        } catch {
            throw ConfigError(.secretFile, "cannot read \(path): \(error.reason)")
        }
        guard st.kind == .regular else {
            throw ConfigError(.secretFile, "\(path) is not a regular file")
        }
        // A secret everyone on the machine can read is no longer a secret.
        guard st.permissions & 0o004 == 0 else {
            throw ConfigError(.secretFile, "\(path) is readable by everyone; refusing it (chmod o-rwx \(path))")
        }
        if let cached = entries.withLock({ $0[path] }), cached.status == st {
            return cached.secrets
        }
        let contents: [UInt8]
        do {
            contents = try readWholeFile(path)
        } catch {
            throw ConfigError(.secretFile, "cannot read \(path): \(error.reason)")
        }
        let secrets = Secret.parseFileLines(contents)
        guard !secrets.isEmpty else {
            throw ConfigError(.secretFile, "\(path) holds no secret (only blank or # lines)")
        }
        entries.withLock { $0[path] = Entry(status: st, secrets: secrets) }
        return secrets
    }
}
