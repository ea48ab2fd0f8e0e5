import FastCGI
package import Posix
import Receiver

/// What an operator or a monitoring check looks at: how many deliveries wait,
/// run, wait for a retry or were given up on, and how old the oldest
/// unfinished one is.
package struct SpoolCounts: Sendable, Equatable {
    /// In `new/`: not yet claimed.
    package var new = 0
    /// In `cur/` and locked: a command is running for it.
    package var inProgress = 0
    /// In `cur/` and not locked: waiting for its next attempt, or left by a
    /// drain that stopped; the next drain runs it.
    package var retrying = 0
    /// In `failed/`: every attempt failed; `hookguard drain --retry-failed` puts them back.
    package var failed = 0
    /// Arrival of the oldest delivery in `new/` or `cur/`, in Unix milliseconds.
    package var oldestMilliseconds: UInt64?

    package init() {}

    /// Reads the spool without changing it. Telling a running delivery from a
    /// waiting one takes its lock for an instant; a drain that meets that lock
    /// tries again when it is let go.
    package init(reading spool: DrainSpool) throws(SystemError) {
        _ = try Sys.stat(spool.root)
        for entry in try optionalEntries(spool, .new) {
            new += 1
            noteArrival(entry, spool.envelopePath(entry, in: .new))
        }
        for entry in try optionalEntries(spool, .cur) {
            let path = spool.envelopePath(entry, in: .cur)
            guard let fd = try? Sys.open(path, [.readOnly, .noFollow]) else { continue }  // finished since the listing
            if (try? Sys.tryLockExclusive(fd, path: path)) == true { retrying += 1 } else { inProgress += 1 }
            Sys.closeIgnoringError(fd)
            noteArrival(entry, path)
        }
        failed = try optionalEntries(spool, .failed).count
    }

    private mutating func noteArrival(_ entry: EntryName, _ path: String) {
        var arrival = entry.arrivalMilliseconds
        if arrival == nil {
            if let st = try? Sys.stat(path) { arrival = UInt64(max(0, st.modified.seconds)) * 1000 }
        }
        guard let arrival else { return }
        oldestMilliseconds = min(oldestMilliseconds ?? arrival, arrival)
    }

    /// Seconds since the oldest unfinished delivery arrived; nil when there is none.
    package func oldestAge(now: Timestamp = .now()) -> Double? {
        oldestMilliseconds.map { Double(Int64(now.milliseconds) - Int64($0)) / 1000 }
    }
}

/// A spool's entries in one place; none when that directory does not exist
/// yet (hookguard makes `new/` and `cur/` at the first delivery, drain `failed/`).
private func optionalEntries(_ spool: DrainSpool, _ place: Place) throws(SystemError) -> [EntryName] {
    do {
        return try spool.entries(in: place)
    } catch  where error.isNotFound {
        return []
    }
}
