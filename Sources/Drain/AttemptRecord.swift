import FastCGI
package import FoundationEssentials
package import Posix
import Receiver

/// What drain remembers about a delivery whose command failed: how many
/// attempts failed, when the next one is due, and how the last one ended.
/// Stored as JSON in `<id>.attempts` beside the envelope (in `cur/` while it
/// is retried, in `failed/` once drain gave up), so the count survives
/// restarts and an operator can read why a delivery failed.
package struct AttemptRecord: Codable, Sendable, Equatable {
    /// Attempts that ran to an end and failed. An attempt cut short by drain's
    /// own death or shutdown is not counted: its outcome is unknown.
    package var attempts: Int
    package var lastAttemptAt: Date
    /// Not before this time is the delivery run again; nil once it is in `failed/`.
    package var nextAttemptAt: Date?
    /// The last attempt's end in words: "exit status 3", "killed by signal 9",
    /// "timed out after 30s", "could not start: …", "envelope unreadable: …",
    /// and for `drain --to-url` "HTTP 503: …", "request failed: …".
    package var outcome: String
    package var exitStatus: Int?
    package var signal: Int?
    package var timedOut: Bool
    /// The end of what the last attempt wrote to standard error (at most
    /// `AttemptRecord.stderrTailBytes` bytes, invalid UTF-8 replaced).
    package var stderrTail: String
    /// `drain --to-url`: the last answer's status, when there was an answer.
    package var httpStatus: Int?
    /// `drain --to-url`: the start of the last answer's body (invalid UTF-8 replaced).
    package var responseHead: String?

    package static let stderrTailBytes = 4096

    package init(
        attempts: Int, lastAttemptAt: Date, nextAttemptAt: Date?, outcome: String,
        exitStatus: Int? = nil, signal: Int? = nil, timedOut: Bool = false, stderrTail: String = "",
        httpStatus: Int? = nil, responseHead: String? = nil
    ) {
        self.attempts = attempts
        self.lastAttemptAt = lastAttemptAt
        self.nextAttemptAt = nextAttemptAt
        self.outcome = outcome
        self.exitStatus = exitStatus
        self.signal = signal
        self.timedOut = timedOut
        self.stderrTail = stderrTail
        self.httpStatus = httpStatus
        self.responseHead = responseHead
    }

    enum CodingKeys: String, CodingKey {
        case attempts
        case lastAttemptAt = "last_attempt_at"
        case nextAttemptAt = "next_attempt_at"
        case outcome
        case exitStatus = "exit_status"
        case signal
        case timedOut = "timed_out"
        case stderrTail = "stderr_tail"
        case httpStatus = "http_status"
        case responseHead = "response_head"
    }

    package func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Self.dateStyle))
        }
        // Encoding plain values into JSON cannot fail.
        return Array(try! encoder.encode(self)) + [0x0a]
    }

    package init(decoding bytes: [UInt8]) throws {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            return try Self.dateStyle.parse(text)
        }
        self = try decoder.decode(AttemptRecord.self, from: Data(bytes))
    }

    private static let dateStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

extension DrainSpool {
    /// The record beside an envelope; nil when there is none. A record that
    /// cannot be read as one (cut short by a power loss, edited by hand) counts
    /// as none: the delivery then starts its attempts afresh, which loses no
    /// delivery.
    package func readRecord(_ entry: EntryName, in place: Place) -> AttemptRecord? {
        guard let bytes = try? readWholeFile(recordPath(entry, in: place)) else { return nil }
        return try? AttemptRecord(decoding: bytes)
    }

    /// Replaces the record in `cur/` whole: written to `tmp/`, flushed, renamed
    /// into place, so a reader sees the old record or the new one, never a part.
    /// Only the holder of the delivery's lock writes it.
    package func writeRecord(_ record: AttemptRecord, for entry: EntryName) throws(SystemError) {
        try replaceWhole(recordPath(entry, in: .cur), with: record.encoded(), stagedAt: tmp + "/" + entry.recordFile)
    }
}
