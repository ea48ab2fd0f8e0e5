import Foundation
import Glibc

/// A reader on a Unix stream socket that answers `ok` to every line, as a
/// delivery daemon with HOOKGUARD_SOCKET_ACK=1 would.
package enum SocketReader {
    /// Listens on `path` and serves every connection on a thread of its own.
    package static func start(at path: String) {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path.utf8) }
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        precondition(listener >= 0 && bound == 0 && listen(listener, 64) == 0, "cannot listen on \(path)")
        Thread.detachNewThread {
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 { continue }
                Thread.detachNewThread { answer(connection) }
            }
        }
    }

    private static func answer(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            let lines = buffer[0..<n].filter { $0 == 0x0a }.count
            for _ in 0..<lines { _ = send(fd, "ok\n", 3, Int32(MSG_NOSIGNAL)) }
        }
        close(fd)
    }
}
