import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check locations' HOOKGUARD_* parameters the way a request would use them.",
        discussion: """
            Reads the locations of an nginx config (--nginx), or one location's parameters \
            (--env-file, --param). Prints one line per check, ✓ or ✗ with the fix, and exits \
            non-zero when any check fails.
            """
    )

    @Option(
        help: ArgumentHelp(
            "An nginx config file whose locations pass fastcgi_param HOOKGUARD_* lines.", valueName: "file"))
    var nginx: [String] = []

    @Option(help: ArgumentHelp("A file of NAME=VALUE lines: one location's parameters.", valueName: "file"))
    var envFile: String?

    @Option(help: ArgumentHelp("One parameter of the location, e.g. HOOKGUARD_SCHEME=tito.", valueName: "NAME=VALUE"))
    var param: [String] = []

    @Option(help: ArgumentHelp("The user hookguard runs as (default: you).", valueName: "name"))
    var user: String?

    func validate() throws {
        guard !nginx.isEmpty || envFile != nil || !param.isEmpty else {
            throw ValidationError("name what to check: --nginx FILE, or --env-file FILE / --param NAME=VALUE")
        }
        if let user, ServiceUser.named(user) == nil { throw ValidationError("no user named \"\(user)\"") }
        for item in param where !item.contains("=") {
            throw ValidationError("--param \"\(item)\" is not NAME=VALUE")
        }
    }

    func run() throws {
        let serviceUser = user.flatMap(ServiceUser.named) ?? ServiceUser.current()
        let doctor = LocationDoctor(user: serviceUser)
        var failed = false
        func report(_ where: String, _ checks: [DoctorCheck]) {
            for check in checks {
                print(
                    "\(check.passed ? "✓" : "✗") \(`where`): \(check.passed ? check.what : "\(check.what) — fix: \(check.fix ?? "")")"
                )
                failed = failed || !check.passed
            }
        }

        for file in nginx {
            let text: String
            do {
                text = String(decoding: try readWholeFile(file), as: UTF8.self)
            } catch {
                throw CommandFailure("cannot read the nginx configuration: \(error)")
            }
            let locations: [NginxLocation]
            do {
                locations = try NginxConfig.locations(in: text)
            } catch {
                throw ValidationError("\(file): \(error)")
            }
            if locations.isEmpty {
                report(
                    file,
                    [
                        DoctorCheck(
                            passed: false, what: "no location passes HOOKGUARD_* parameters",
                            fix: "add fastcgi_param HOOKGUARD_SCHEME … to the locations hookguard answers")
                    ])
            }
            for location in locations {
                report(
                    "location \(location.name)",
                    doctor.check(RequestParams(location.params), nginxBodyLimit: .some(location.clientMaxBodySize)))
            }
        }

        if envFile != nil || !param.isEmpty {
            var values: [String: String] = [:]
            if let envFile { values = try Self.readEnvFile(envFile) }
            for item in param {
                let parts = item.split(separator: "=", maxSplits: 1)
                values[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            report("parameters", doctor.check(RequestParams(values)))
        }
        if failed { throw ExitCode.failure }
    }

    /// `NAME=VALUE` lines; `#` comments, blank lines, `export ` and surrounding quotes allowed.
    static func readEnvFile(_ path: String) throws -> [String: String] {
        let text: String
        do {
            text = String(decoding: try readWholeFile(path), as: UTF8.self)
        } catch {
            throw CommandFailure("cannot read the --env-file: \(error)")
        }
        var values: [String: String] = [:]
        for raw in text.split(separator: "\n") {
            var line = String(raw.trimmingASCIIWhitespace())
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            var value = String(line[line.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[String(line[..<equals])] = value
        }
        return values
    }
}
