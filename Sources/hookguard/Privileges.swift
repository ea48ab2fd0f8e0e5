import ArgumentParser
import Glibc

/// The unprivileged account `serve --user` runs as once its sockets are open.
struct ServiceAccount {
    let name: String
    let uid: uid_t
    let gid: gid_t

    init(named name: String) throws {
        guard let entry = getpwnam(name) else { throw ValidationError("--user: no user named \"\(name)\"") }
        self.name = name
        uid = entry.pointee.pw_uid
        gid = entry.pointee.pw_gid
    }

    /// Takes on the account's groups and ids for good: no way back to root.
    func become() throws {
        guard initgroups(name, gid) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw ValidationError("--user \(name): cannot switch to it (\(String(cString: strerror(errno)))); start as root")
        }
        guard setuid(0) != 0, geteuid() == uid else {
            throw ValidationError("--user \(name): could regain root after switching; refusing to run")
        }
    }
}
