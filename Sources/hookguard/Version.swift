extension Hookguard {
    /// hookguard's one version: `hookguard --version` prints it, and
    /// scripts/package names the Debian package after it (its changelog's
    /// newest entry must say the same).
    static let version = "0.1.0"
}
