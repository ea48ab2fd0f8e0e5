import Glibc

/// A command started with `posix_spawn` in a process group of its own, its
/// standard input and error on non-blocking pipes drain reads and writes, its
/// standard output drain's own. Signals are as a fresh program expects them:
/// none blocked, SIGPIPE back at its default (drain ignores it, so that a
/// command which does not read its input cannot kill drain).
package struct ChildProcess {
    package let pid: Int32
    /// Drain's end of the command's standard input.
    package let stdin: Int32
    /// Drain's end of the command's standard error.
    package let stderr: Int32

    /// Starts `executable` (an absolute path) with `arguments` (argv, the
    /// first included) and `environment` (`NAME=value`). `inherit` is given
    /// to the command as its descriptor 3.
    package static func spawn(
        executable: String, arguments: [String], environment: [String], inherit: Int32
    ) throws(SystemError) -> ChildProcess {
        let input = try makePipe(nonBlocking: .write)
        let errors: (read: Int32, write: Int32)
        do {
            errors = try makePipe(nonBlocking: .read)
        } catch {
            close(input.read)
            close(input.write)
            throw error
        }

        // The posix_spawn family returns an error number rather than setting errno.
        func check(_ call: String, _ status: Int32) throws(SystemError) {
            if status != 0 { throw SystemError(call, path: executable, errno: status) }
        }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        var pid: pid_t = 0
        do {
            try check("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
            defer { posix_spawn_file_actions_destroy(&actions) }
            // In this order, so that a source that happens to be 0, 2 or 3 is copied before it is replaced.
            // A copy that could not be arranged would start the command without its lock on fd 3.
            try check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, input.read, 0))
            try check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, errors.write, 2))
            try check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, inherit, 3))

            try check("posix_spawnattr_init", posix_spawnattr_init(&attributes))
            defer { posix_spawnattr_destroy(&attributes) }
            try check(
                "posix_spawnattr_setflags",
                posix_spawnattr_setflags(
                    &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
            try check("posix_spawnattr_setpgroup", posix_spawnattr_setpgroup(&attributes, 0))
            var none = sigset_t()
            sigemptyset(&none)
            try check("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attributes, &none))
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for signal in [SIGPIPE, SIGTERM, SIGINT, SIGCHLD] { sigaddset(&defaults, signal) }
            try check("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attributes, &defaults))

            let status = withCStrings(arguments) { argv in
                withCStrings(environment) { envp in
                    posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
                }
            }
            try check("posix_spawn", status)
        } catch {
            close(input.read)
            close(errors.write)
            close(input.write)
            close(errors.read)
            throw error
        }
        close(input.read)
        close(errors.write)
        return ChildProcess(pid: pid, stdin: input.write, stderr: errors.read)
    }

    /// Sends `signal` to the command's whole process group, so what it
    /// started goes too.
    package func signalGroup(_ signal: Int32) {
        do {
            try Sys.killGroup(pid, signal)
        } catch {
            try? Sys.kill(pid, signal)
        }
    }
}

/// Where `command` would be run from: itself when it holds a slash, else the
/// first executable file of that name along `PATH`.
package func resolveExecutable(_ command: String, path: String?) -> String? {
    func isExecutableFile(_ candidate: String) -> Bool {
        var st = stat()
        return stat(candidate, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0
    }
    if command.contains("/") {
        return isExecutableFile(command) ? absolutePath(command) : nil
    }
    for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":", omittingEmptySubsequences: false) {
        let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + command
        if isExecutableFile(candidate) { return absolutePath(candidate) }
    }
    return nil
}

/// A pipe whose ends are both close-on-exec (the command gets copies through
/// `dup2`); the end named by `nonBlocking` (drain's own) does not block. The
/// command's end must block: it shares that flag with its copy.
package func makePipe(nonBlocking: PipeEnd) throws(SystemError) -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    try syscall("pipe") { pipe(&fds) }
    let own = nonBlocking == .read ? fds[0] : fds[1]
    do {
        for fd in fds { try syscall("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) } }
        // Drain's end must not block: its one thread would wait on a command for ever.
        try setNonBlocking(own)
    } catch {
        close(fds[0])
        close(fds[1])
        throw error
    }
    return (fds[0], fds[1])
}

package func setNonBlocking(_ fd: Int32) throws(SystemError) {
    let flags = try syscall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
    try syscall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}

package enum PipeEnd { case read, write }

/// Calls `body` with a NULL-terminated C array of copies of `strings`.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
