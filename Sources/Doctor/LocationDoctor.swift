package import FastCGI
import Posix
import Receiver

/// One finding of `hookguard doctor`: what was checked, and how to fix it when it failed.
package struct DoctorCheck: Sendable, Equatable {
    package var passed: Bool
    package var what: String
    package var fix: String?

    package init(passed: Bool, what: String, fix: String?) {
        self.passed = passed
        self.what = what
        self.fix = fix
    }

    static func pass(_ what: String) -> DoctorCheck { DoctorCheck(passed: true, what: what, fix: nil) }
    static func fail(_ what: String, fix: String) -> DoctorCheck { DoctorCheck(passed: false, what: what, fix: fix) }

    package var line: String { passed ? "✓ \(what)" : "✗ \(what) — fix: \(fix ?? "")" }
}

/// The user hookguard runs as, to judge what it may read and write.
package struct ServiceUser: Sendable {
    package var name: String
    package var uid: UInt32
    package var groups: Set<UInt32>

    package static func current() -> ServiceUser {
        let uid = Sys.effectiveUserID
        let name = Sys.accountName(of: uid) ?? String(uid)
        return ServiceUser(name: name, uid: uid, groups: Sys.groupIDs(ofAccount: name, primary: Sys.effectiveGroupID))
    }

    package static func named(_ name: String) -> ServiceUser? {
        guard let account = Sys.account(named: name) else { return nil }
        return ServiceUser(name: name, uid: account.uid, groups: Sys.groupIDs(ofAccount: name, primary: account.gid))
    }

    /// Whether this user may access a file with status `st` under `need` (4 read, 2 write, 1 search).
    func may(_ need: UInt32, _ st: FileStatus) -> Bool {
        if uid == 0 { return true }
        let mode = st.permissions
        if st.owner == uid { return mode & (need << 6) == need << 6 }
        if groups.contains(st.group) { return mode & (need << 3) == need << 3 }
        return mode & need == need
    }
}

/// Checks a location's parameters the way a request would use them, without sending one.
package struct LocationDoctor: Sendable {
    package var user: ServiceUser

    package init(user: ServiceUser) {
        self.user = user
    }

    package func check(_ params: RequestParams, nginxBodyLimit: Int?? = .none) -> [DoctorCheck] {
        switch Role(params) {
        case .receiver: break
        case let role?: return [.pass("role \(role.rawValue)")]
        case nil:
            let role = params[Parameter.role.rawValue] ?? ""
            return [.fail("unknown role \"\(role)\"", fix: "set HOOKGUARD_ROLE to metrics or health, or remove it")]
        }
        let config: LocationConfig
        do {
            config = try LocationConfig(params: params)
        } catch {
            return [.fail(error.description, fix: fix(for: error))]
        }
        var checks: [DoctorCheck] = [.pass("scheme \(config.scheme.name) (header \(config.scheme.signatureHeader))")]
        if let path = config.secretFile { checks += secretFile(path, scheme: config.scheme) }
        if let spool = config.spool { checks += spoolChecks(spool) }
        if let socket = config.socket { checks.append(socketCheck(socket.path)) }
        if let nats = config.nats { checks.append(natsCheck(nats.url)) }
        if case .some(let limit) = nginxBodyLimit {
            checks.append(bodyLimit(hookguard: config.maxBody, nginx: limit))
        }
        return checks
    }

    private func fix(for error: ConfigError) -> String {
        switch error.parameter {
        case .scheme:
            "set HOOKGUARD_SCHEME to one of: \((Scheme.presets.keys.sorted() + ["custom"]).joined(separator: ", "))"
        case .secretFile, .secret: "set HOOKGUARD_SECRET_FILE to an absolute path of a file with the sender's secret"
        case .spool: "set HOOKGUARD_SPOOL (an absolute directory) or HOOKGUARD_SOCKET"
        default: "correct \(error.parameter.rawValue) as the message says"
        }
    }

    func secretFile(_ path: String, scheme: Scheme? = nil) -> [DoctorCheck] {
        guard let st = try? Sys.stat(path) else {
            return [
                .fail(
                    "secret file \(path) is missing", fix: "create it with the sender's secret, one per line, mode 0640"
                )
            ]
        }
        guard st.kind == .regular else {
            return [.fail("secret file \(path) is not a regular file", fix: "point HOOKGUARD_SECRET_FILE at a file")]
        }
        var checks: [DoctorCheck] = []
        if user.may(4, st) && parentsSearchable(path) {
            checks.append(.pass("secret file \(path) readable by \(user.name)"))
        } else {
            checks.append(
                .fail(
                    "secret file \(path) is not readable by \(user.name)",
                    fix: "chgrp the file to a group of \(user.name) and chmod 0640 (and let it reach the directory)"))
        }
        if st.permissions & 0o004 != 0 {
            checks.append(.fail("secret file \(path) is readable by everyone", fix: "chmod o-rwx \(path)"))
        } else {
            checks.append(.pass("secret file \(path) not world-readable"))
        }
        if let contents = try? readWholeFile(path) {
            if Secret.parseFile(contents).isEmpty {
                checks.append(
                    .fail("secret file \(path) holds no secret", fix: "write the sender's secret on a line of its own"))
            } else {
                checks.append(.pass("secret file \(path) holds \(Secret.parseFile(contents).count) secret(s)"))
            }
            if let scheme {
                checks += secretLines(path, Secret.parseFileLines(contents), scheme: scheme)
            }
        }
        return checks
    }

    /// Each line that cannot be a key for the scheme: skipped when serving,
    /// so a location keeps working on its other lines, but a mistake.
    func secretLines(_ path: String, _ lines: [(line: Int, secret: Secret)], scheme: Scheme) -> [DoctorCheck] {
        var unusable: [UnusableSecret] = []
        for (line, secret) in lines {
            do {
                _ = try scheme.key(from: secret)
            } catch {
                unusable.append(UnusableSecret(path: path, line: line, problem: error.problem))
            }
        }
        guard !unusable.isEmpty else {
            return lines.isEmpty ? [] : [.pass("secret file \(path): every secret is a \(scheme.name) key")]
        }
        return unusable.map { bad in
            .fail(
                "secret file \(bad) (skipped; \(lines.count - unusable.count) usable line(s) left)",
                fix: "correct line \(bad.line) of \(path) or remove it")
        }
    }

    func spoolChecks(_ root: String) -> [DoctorCheck] {
        guard let st = try? Sys.stat(root) else {
            // hookguard creates it: its nearest existing ancestor must let it.
            var ancestor = root
            var found: FileStatus?
            while found == nil, let slash = ancestor.lastIndex(of: "/"), slash != ancestor.startIndex {
                ancestor = String(ancestor[..<slash])
                found = try? Sys.stat(ancestor)
            }
            if let found, found.kind == .directory && user.may(3, found) {
                return [.pass("spool \(root) will be created by \(user.name) in \(ancestor)")]
            }
            return [
                .fail(
                    "spool \(root) is missing and \(user.name) cannot create it in \(ancestor)",
                    fix: "mkdir -p \(root) && chown \(user.name) \(root) && chmod 0750 \(root)")
            ]
        }
        guard st.kind == .directory else {
            return [.fail("spool \(root) is not a directory", fix: "point HOOKGUARD_SPOOL at a directory")]
        }
        var checks: [DoctorCheck] = []
        var devices: Set<UInt64> = [st.device]
        var problems: [String] = []
        for sub in ["tmp", "new", "cur"] {
            let path = root + "/" + sub
            guard let sst = try? Sys.stat(path) else {
                if !user.may(3, st) { problems.append("\(sub)/ missing and cannot be created") }
                continue
            }
            guard sst.kind == .directory else {
                problems.append("\(sub)/ is not a directory")
                continue
            }
            devices.insert(sst.device)
            if (sub == "tmp" || sub == "new") && !user.may(3, sst) {
                problems.append("\(sub)/ not writable by \(user.name)")
            }
        }
        if problems.isEmpty {
            checks.append(.pass("spool \(root) writable by \(user.name)"))
        } else {
            checks.append(
                .fail(
                    "spool \(root): \(problems.joined(separator: ", "))",
                    fix: "chown -R \(user.name) \(root) and make tmp/ new/ cur/ directories"))
        }
        if devices.count == 1 {
            checks.append(.pass("spool \(root): tmp/ new/ cur/ on one filesystem"))
        } else {
            checks.append(
                .fail(
                    "spool \(root): tmp/ new/ cur/ span filesystems, so rename is not atomic",
                    fix: "keep the whole spool on one filesystem (no mount inside it)"))
        }
        return checks
    }

    func socketCheck(_ path: String) -> DoctorCheck {
        do {
            let connection = try ReaderConnection.open(path, deadline: Deadline(milliseconds: 1000))
            connection.close()
            return .pass("socket \(path) accepts connections")
        } catch {
            return .fail(
                "socket \(path): \(error.detail)", fix: "start the reader on \(path), or fall back with HOOKGUARD_SPOOL"
            )
        }
    }

    /// A NATS server greets every new connection with an `INFO {…}` line.
    func natsCheck(_ url: String) -> DoctorCheck {
        let address = url.split(separator: "/").dropFirst().first.map(String.init) ?? ""
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return .fail("NATS \(url): no host:port in the URL", fix: "set HOOKGUARD_NATS_URL to nats://HOST:PORT")
        }
        let host = String(address[..<colon])
        let connected: Int32?
        do {
            connected = try Sys.connectTCP(host: host, port: port, timeoutSeconds: 2)
        } catch {
            return .fail(
                "NATS \(url): \(error.reason)", fix: "start nats-server -js there, or fall back with HOOKGUARD_SPOOL")
        }
        guard let fd = connected else {
            return .fail("NATS \(url): cannot resolve \(host)", fix: "check the host in HOOKGUARD_NATS_URL")
        }
        defer { Sys.closeIgnoringError(fd) }
        var greeting = [UInt8](repeating: 0, count: 5)
        let n = try? Sys.receive(fd, into: &greeting, waitingForAll: true, path: url)
        guard n == 5, greeting == Array("INFO ".utf8) else {
            return .fail(
                "NATS \(url): something answers, but not a NATS server", fix: "point HOOKGUARD_NATS_URL at nats-server")
        }
        return .pass("NATS \(url) answers")
    }

    func bodyLimit(hookguard: Int, nginx: Int?) -> DoctorCheck {
        guard let nginx else { return .pass("nginx sets no body limit; hookguard's is \(hookguard) bytes") }
        if nginx >= hookguard {
            return .pass("nginx client_max_body_size \(nginx) ≥ HOOKGUARD_MAX_BODY \(hookguard)")
        }
        return .fail(
            "nginx client_max_body_size \(nginx) < HOOKGUARD_MAX_BODY \(hookguard): nginx refuses larger deliveries itself",
            fix:
                "set client_max_body_size \(max(1, (hookguard + 1024 * 1024 - 1) / (1024 * 1024)))m in this server or location"
        )
    }

    private func parentsSearchable(_ path: String) -> Bool {
        var dir = path
        while let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
            dir = String(dir[..<slash])
            guard let st = try? Sys.stat(dir), user.may(1, st) else { return false }
        }
        return true
    }
}
