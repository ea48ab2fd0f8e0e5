import ArgumentParser
import Doctor
import Drain
import FastCGI
import FoundationEssentials
import Posix
import Receiver

struct SpoolStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Show how many deliveries in a spool wait, run, wait for a retry or failed.",
        discussion: """
            new: not yet claimed. in progress: a drain's command is running for it. retrying: in \
            cur/ waiting for its next attempt (or left by a drain that stopped). failed: every \
            attempt failed (hookguard drain --retry-failed puts them back). oldest: the age of the \
            oldest delivery not yet done. circuit: for each running drain --to-url, its breaker \
            (closed; open, with when it probes again; probing).
            """
    )

    @Argument(help: ArgumentHelp("The spool directory: a location's HOOKGUARD_SPOOL.", valueName: "spool"))
    var spool: String

    @Flag(help: "Print one JSON object instead, for monitoring checks.")
    var json = false

    func run() throws {
        let drainSpool = DrainSpool(root: spool)
        let counts: SpoolCounts
        do {
            counts = try SpoolCounts(reading: drainSpool)
        } catch {
            throw CommandFailure("cannot read the spool: \(error)")
        }
        let age = counts.oldestAge()
        let circuits = CircuitStatus.read(drainSpool).filter(\.isLive)
        if json {
            let report = Report(spool: drainSpool.root, counts: counts, oldestAgeSeconds: age, circuits: circuits)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print(
            """
            spool        \(drainSpool.root)
            new          \(counts.new)
            in progress  \(counts.inProgress)
            retrying     \(counts.retrying)
            failed       \(counts.failed)
            oldest       \(age.map(Self.describeAge) ?? "-")
            """)
        for circuit in circuits {
            let reopens =
                circuit.reopensAt.map { " (probes again in \(Self.describeAge($0.timeIntervalSinceNow)))" } ?? ""
            print(
                "circuit      \(circuit.state)\(reopens), \(circuit.consecutiveFailures) failures in a row: \(circuit.url) (drain \(circuit.pid))"
            )
        }
    }

    private struct Report: Encodable {
        var spool: String
        var counts: SpoolCounts
        var oldestAgeSeconds: Double?
        var circuits: [CircuitStatus]

        enum CodingKeys: String, CodingKey {
            case spool, new
            case inProgress = "in_progress"
            case retrying, failed
            case oldestAgeSeconds = "oldest_age_seconds"
            case circuits
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(spool, forKey: .spool)
            try container.encode(counts.new, forKey: .new)
            try container.encode(counts.inProgress, forKey: .inProgress)
            try container.encode(counts.retrying, forKey: .retrying)
            try container.encode(counts.failed, forKey: .failed)
            try container.encode(oldestAgeSeconds, forKey: .oldestAgeSeconds)  // null when nothing waits
            // only while a drain --to-url runs
            if !circuits.isEmpty { try container.encode(circuits, forKey: .circuits) }
        }
    }

    /// `42s`, `3m 12s`, `5h 4m`, `2d 3h`.
    static func describeAge(_ seconds: Double) -> String {
        let total = max(0, Int(seconds.rounded()))
        let (days, hours, minutes, secs) = (total / 86400, total / 3600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return "\(days)d \(hours)h" }
        if hours > 0 { return "\(hours)h \(minutes)m" }
        if minutes > 0 { return "\(minutes)m \(secs)s" }
        return "\(secs)s"
    }
}
