import CLinux
import Glibc

/// An epoll instance that waits for input on a few descriptors.
///
/// Unlike poll(2), a descriptor can be watched so that input on it wakes
/// only one of the instances sleeping on it (`EPOLLEXCLUSIVE`): threads that
/// each watch a shared queue in their own instance are woken one at a time.
package struct InputWait: Sendable {
    private let epoll: Int32

    package init() throws(SystemError) {
        epoll = try syscall("epoll_create1") { hookguard_epoll_create() }
    }

    /// Watches `fd` for input (level-triggered); `wakingOne`: input on it
    /// wakes one of the instances sleeping on it, not all.
    package func watch(_ fd: Int32, wakingOne: Bool = false) throws(SystemError) {
        try syscall("epoll_ctl(EPOLL_CTL_ADD)") { hookguard_epoll_watch_input(epoll, fd, wakingOne ? 1 : 0) }
    }

    /// Sleeps until a watched descriptor has input and returns those that
    /// have (at most 16); a signal does not end the wait.
    package func wait() throws(SystemError) -> [Int32] {
        var fds = [Int32](repeating: -1, count: 16)
        let count = try syscall("epoll_wait") { hookguard_epoll_wait_input(epoll, &fds, Int32(fds.count), -1) }
        return Array(fds[..<Int(count)])
    }

    package func close() { Glibc.close(epoll) }
}
