package import Posix

/// A fresh directory under $TMPDIR (or /tmp), for the caller to remove.
package func makeTemporaryDirectory(prefix: String = "hookguard-tests") throws(SystemError) -> String {
    try Posix.makeTemporaryDirectory(prefix: prefix)
}
