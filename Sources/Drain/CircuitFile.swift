import FastCGI
package import FoundationEssentials
import Posix
import Receiver

/// What `hookguard spool` shows of a running `drain --to-url`'s circuit
/// breaker, read from `circuit-<pid>.json` at the spool's root.
package struct CircuitStatus: Codable, Sendable, Equatable {
    package var url: String
    /// `closed`, `open` or `probing`.
    package var state: String
    package var consecutiveFailures: Int
    /// While open: when the next probe may go out.
    package var reopensAt: Date?
    package var pid: Int32

    enum CodingKeys: String, CodingKey {
        case url, state, pid
        case consecutiveFailures = "consecutive_failures"
        case reopensAt = "reopens_at"
    }

    /// Whether the drain that wrote it still runs.
    package var isLive: Bool {
        do {
            try Sys.kill(pid, 0)
            return true
        } catch {
            return error.isNotPermitted
        }
    }

    /// Every circuit file in the spool.
    package static func read(_ spool: DrainSpool) -> [CircuitStatus] {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return files(in: spool).compactMap { path in
            guard let bytes = try? readWholeFile(path) else { return nil }
            return try? decoder.decode(CircuitStatus.self, from: Data(bytes))
        }
    }

    static func files(in spool: DrainSpool) -> [String] {
        let names = (try? listDirectory(spool.root)) ?? []
        return names.filter { $0.hasPrefix("circuit-") && $0.hasSuffix(".json") }.sorted().map { spool.root + "/" + $0 }
    }
}

/// Keeps this process's `circuit-<pid>.json` in step with its breaker.
struct CircuitFile {
    let path: String
    let staged: String
    let url: String

    /// Also removes the files of drains that are gone (killed, so they could not).
    init(spool: DrainSpool, url: String) {
        for stale in CircuitStatus.read(spool) where !stale.isLive {
            _ = try? Sys.unlinkIfPresent(spool.root + "/circuit-\(stale.pid).json")
        }
        let pid = Sys.processID
        path = spool.root + "/circuit-\(pid).json"
        staged = spool.tmp + "/circuit-\(pid).json"
        self.url = url
    }

    /// Best effort: the file is for people; a failure to write it changes nothing else.
    func write(_ breaker: URLCircuitBreaker, now: ContinuousClock.Instant) {
        let status = CircuitStatus(
            url: url, state: breaker.stateName, consecutiveFailures: breaker.consecutiveFailures,
            reopensAt: breaker.reopensAt.map { Date().addingTimeInterval(max(0, ($0 - now).seconds)) },
            pid: Sys.processID)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .secondsSince1970
        guard let bytes = try? encoder.encode(status) else { return }
        try? replaceWhole(path, with: Array(bytes) + [0x0a], stagedAt: staged)
    }

    func remove() {
        _ = try? Sys.unlinkIfPresent(path)
    }
}
