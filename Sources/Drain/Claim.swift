import FastCGI
package import Posix
import Receiver

/// A delivery this process holds: its envelope open and `flock`ed, in `cur/`.
///
/// The lock, not the directory, says who owns an entry. Every step that moves
/// or removes an envelope in `new/` or `cur/` is taken while holding its lock,
/// and the kernel drops the lock when the last descriptor on it closes, so an
/// entry in `cur/` whose lock can be taken has no live owner and is reclaimed.
/// A command is started with the descriptor as its fd 3, so a command that
/// outlives a killed drain still holds its delivery: no second drain runs it
/// until that command has ended.
package final class Claim {
    package let entry: EntryName
    package let spool: DrainSpool
    /// Open read-only on the envelope; holds the lock.
    package let fd: Int32
    /// Earlier failed attempts; nil for a delivery never tried (or retried from `failed/`).
    package let record: AttemptRecord?
    /// Taken over from `cur/` (a retry, or the leftover of a drain that died)
    /// rather than claimed from `new/`.
    package let reclaimed: Bool
    private var held = true

    init(entry: EntryName, spool: DrainSpool, fd: Int32, record: AttemptRecord?, reclaimed: Bool) {
        self.entry = entry
        self.spool = spool
        self.fd = fd
        self.record = record
        self.reclaimed = reclaimed
    }

    deinit { release() }

    package var envelopePath: String { spool.envelopePath(entry, in: .cur) }
    package var failedAttempts: Int { record?.attempts ?? 0 }

    /// The envelope's bytes, read through the held descriptor.
    package func readEnvelope() throws(SystemError) -> [UInt8] {
        try readAll(fd, path: envelopePath)
    }

    /// The command succeeded: the envelope is removed, then its record.
    /// (A crash between the two leaves only a record, which `repairRecords` removes.)
    package func complete() throws(SystemError) {
        defer { release() }
        try Sys.unlinkIfPresent(envelopePath)
        try Sys.unlinkIfPresent(spool.recordPath(entry, in: .cur))
    }

    /// An attempt failed and another is due later: the record is replaced
    /// whole and the delivery, still in `cur/`, is let go until then.
    package func recordFailure(_ record: AttemptRecord) throws(SystemError) {
        defer { release() }
        try spool.writeRecord(record, for: entry)
    }

    /// An attempt failed, but a process the command left behind still holds
    /// the delivery's lock (its fd 3): the record is replaced and the claim
    /// handed on whole, lock and descriptor, for the next attempt. Letting it
    /// go would leave the delivery to that process's lifetime.
    package func recordFailureKeepingHold(_ record: AttemptRecord) throws(SystemError) -> Claim {
        do {
            try spool.writeRecord(record, for: entry)
        } catch {
            release()
            throw error
        }
        held = false
        return Claim(entry: entry, spool: spool, fd: fd, record: record, reclaimed: true)
    }

    /// The last attempt failed: the record is written in `cur/` first (a crash
    /// after it leaves a delivery that is moved without running again), then
    /// the envelope moves to `failed/`, then the record follows it (a crash
    /// between the two is finished by `repairRecords`).
    package func giveUp(_ record: AttemptRecord) throws(SystemError) {
        defer { release() }
        try spool.writeRecord(record, for: entry)
        try Sys.rename(envelopePath, spool.envelopePath(entry, in: .failed))
        try Sys.renameIfPresent(spool.recordPath(entry, in: .cur), spool.recordPath(entry, in: .failed))
    }

    /// Lets the delivery go as it is (in `cur/`, record unchanged), for the
    /// next drain or a later attempt.
    package func release() {
        guard held else { return }
        held = false
        Sys.closeIgnoringError(fd)
    }
}

/// What came of trying to take an entry.
package enum Acquisition {
    case claimed(Claim)
    /// Another process holds the entry. The descriptor stays open so that
    /// trying again (`acquire(_:reusing:)`) needs no new open, whose close
    /// would wake the other drains watching `cur/`.
    case busy(fd: Int32)
    /// Done, given up on, or moved elsewhere by someone else.
    case gone
}

extension DrainSpool {
    /// Takes an entry wherever it waits, `new/` or `cur/`: opens the envelope,
    /// locks it without waiting, and only then looks at where it is. From
    /// `new/` it is renamed into `cur/` (any record left in `cur/` for it is
    /// stale and removed first: a delivery in `new/` starts afresh); in `cur/`
    /// its record says how many attempts failed.
    package func acquire(_ entry: EntryName, reusing heldFD: Int32? = nil) throws(SystemError) -> Acquisition {
        let fd: Int32
        if let heldFD {
            fd = heldFD
        } else {
            guard let opened = try openEnvelope(entry) else { return .gone }
            fd = opened
        }
        let own: FileStatus
        do throws(SystemError) {
            own = try Sys.fstat(fd, path: envelopePath(entry, in: .cur))
            guard try Sys.tryLockExclusive(fd, path: envelopePath(entry, in: .cur)) else {
                // Its holder may already have removed it or moved it to failed/, and not yet closed it.
                guard isSameFile(own, envelopePath(entry, in: .new)) || isSameFile(own, envelopePath(entry, in: .cur))
                else {
                    Sys.closeIgnoringError(fd)
                    return .gone
                }
                return .busy(fd: fd)
            }
        } catch {
            Sys.closeIgnoringError(fd)
            throw error
        }
        // Ours now, and nobody moves a locked envelope: find where it is.
        let waiting = envelopePath(entry, in: .new)
        if isSameFile(own, waiting) {
            do {
                try Sys.unlinkIfPresent(recordPath(entry, in: .cur))
                try Sys.rename(waiting, envelopePath(entry, in: .cur))
            } catch {
                Sys.closeIgnoringError(fd)
                throw error
            }
            return .claimed(Claim(entry: entry, spool: self, fd: fd, record: nil, reclaimed: false))
        }
        if isSameFile(own, envelopePath(entry, in: .cur)) {
            return .claimed(
                Claim(
                    entry: entry, spool: self, fd: fd, record: readRecord(entry, in: .cur), reclaimed: true))
        }
        Sys.closeIgnoringError(fd)
        return .gone
    }

    private func openEnvelope(_ entry: EntryName) throws(SystemError) -> Int32? {
        for place in [Place.new, .cur] {
            let path = envelopePath(entry, in: place)
            do {
                return try Sys.open(path, [.readOnly, .noFollow])
            } catch  where error.isNotFound {
                continue
            }
        }
        return nil
    }

    /// Finishes what a crash left half done between two steps, so no record
    /// outlives or strays from its envelope: a record in `cur/` whose envelope
    /// reached `failed/` follows it there; any other record without its
    /// envelope is removed, as are staged records in `tmp/` older than a minute.
    /// Returns how many files it moved or removed.
    @discardableResult
    package func repairRecords(now: Timestamp = .now()) throws(SystemError) -> Int {
        var repaired = 0
        for name in try listDirectory(cur) {
            guard let entry = EntryName(recordFile: name), !exists(envelopePath(entry, in: .cur)) else { continue }
            if exists(envelopePath(entry, in: .failed)) && !exists(recordPath(entry, in: .failed)) {
                if try Sys.renameIfPresent(recordPath(entry, in: .cur), recordPath(entry, in: .failed)) {
                    repaired += 1
                }
            } else if try Sys.unlinkIfPresent(recordPath(entry, in: .cur)) {
                repaired += 1
            }
        }
        for name in try listDirectory(failed) {
            guard let entry = EntryName(recordFile: name), !exists(envelopePath(entry, in: .failed)) else { continue }
            if try Sys.unlinkIfPresent(recordPath(entry, in: .failed)) { repaired += 1 }
        }
        for name in try listDirectory(tmp) where EntryName(recordFile: name) != nil {
            let path = tmp + "/" + name
            guard let st = try? Sys.lstat(path), st.modified.seconds < now.seconds - 60 else { continue }
            if try Sys.unlinkIfPresent(path) { repaired += 1 }
        }
        return repaired
    }

    /// Puts every delivery in `failed/` back into `new/` for a fresh set of
    /// attempts: the envelope moves first, then its record is removed (a crash
    /// between the two leaves a record that `repairRecords` removes).
    package func retryFailed() throws(SystemError) -> [EntryName] {
        var moved: [EntryName] = []
        for entry in try entries(in: .failed) {
            guard try Sys.renameIfPresent(envelopePath(entry, in: .failed), envelopePath(entry, in: .new)) else {
                continue
            }
            try Sys.unlinkIfPresent(recordPath(entry, in: .failed))
            moved.append(entry)
        }
        return moved
    }
}

private func isSameFile(_ own: FileStatus, _ path: String) -> Bool {
    (try? Sys.lstat(path))?.isSameFile(as: own) ?? false
}
