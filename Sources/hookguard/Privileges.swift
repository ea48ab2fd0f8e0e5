import ArgumentParser
import Posix

/// The unprivileged account `serve --user` runs as once its sockets are open.
struct ServiceAccount {
    let name: String
    let uid: UInt32
    let gid: UInt32

    init(named name: String) throws {
        guard let account = Sys.account(named: name) else { throw ValidationError("--user: no user named \"\(name)\"") }
        self.name = name
        (uid, gid) = account
    }

    /// Takes on the account's groups and ids for good: no way back to root.
    func become() throws {
        do {
            try Sys.become(name, uid: uid, gid: gid)
        } catch {
            throw ValidationError("--user \(name): cannot switch to it (\(error.reason)); start as root")
        }
        guard !Sys.canBecomeRoot, Sys.effectiveUserID == uid else {
            throw ValidationError("--user \(name): could regain root after switching; refusing to run")
        }
    }
}
