import FastCGI
package import Posix

/// Remembers, beside a spool, which sender ids were accepted within a window,
/// so that a sender's retry of a delivery we already took is answered with the
/// first delivery's id instead of being spooled again.
///
/// One record per sender id: `SPOOL/dedupe/<hex SHA-256 of scheme NUL id>`
/// (the sender's text never becomes a path). Whoever holds the record's
/// `flock` decides; the lock is per open file, so it orders threads of one
/// process and separate processes alike, and dies with its holder:
///
/// 1. open the record, creating it empty if missing (`O_CREAT|O_EXCL` first),
///    and lock it; if the name now points elsewhere (swept), start again;
/// 2. a record holding an id written within the window: a duplicate;
/// 3. otherwise (empty, unreadable, expired) this request owns the delivery:
///    it stores it, and only after the store succeeded writes its own id into
///    the record (`commit`), then unlocks.
///
/// So a record never claims a delivery that did not reach the spool. A crash
/// between store and commit leaves an empty record: the retry is spooled again
/// (at least once, never lost). A copy arriving while the first is being
/// stored waits for the lock, then answers with the first's id.
package final class DuplicateRecords: Sendable {
    /// How long a copy waits for the first copy to be stored before it is
    /// answered 503 (the sender retries later).
    package let lockWaitMilliseconds: Int
    /// Expired records are removed at most this often per spool, by the
    /// request that finds the sweep due.
    package let sweepIntervalSeconds: Int

    private let prepared = Locked<Set<String>>([])
    private let lastSweep = Locked<[String: Int]>([:])

    package init(lockWaitMilliseconds: Int = 5000, sweepIntervalSeconds: Int = 60) {
        self.lockWaitMilliseconds = lockWaitMilliseconds
        self.sweepIntervalSeconds = sweepIntervalSeconds
    }

    package static func directory(ofSpool spool: String) -> String { spool + "/dedupe" }

    /// The record's file name for a sender's id under a scheme.
    package static func recordName(senderID: String, scheme: String) throws(CryptoFailure) -> String {
        try MessageAuthentication.sha256(Array(scheme.utf8) + [0] + Array(senderID.utf8)).hexString
    }

    /// Takes the record for `senderID`: either the first delivery's id, or
    /// the right (and duty) to deliver it and then `commit`.
    package func claim(
        senderID: String, scheme: String, spool: String, window: Int, now: Timestamp
    ) throws(DuplicateRecordError) -> DuplicateClaim {
        let directory = Self.directory(ofSpool: spool)
        do {
            if !prepared.withLock({ $0.contains(directory) }) {
                try makeDirectories(directory)
                prepared.withLock { _ = $0.insert(directory) }
            }
        } catch {
            throw .system(error)
        }
        sweepIfDue(directory, window: window, now: now)

        let path: String
        do {
            path = directory + "/" + (try Self.recordName(senderID: senderID, scheme: scheme))
        } catch {
            throw .crypto(error)
        }
        let deadline = monotonicNanoseconds() + UInt64(lockWaitMilliseconds) * 1_000_000
        var remadeDirectory = false
        while true {
            let opened: Int32?
            do throws(SystemError) {
                opened = try Self.openRecord(path)
            } catch  where error.isNotFound {
                guard !remadeDirectory else { throw .system(error) }
                remadeDirectory = true  // the spool was removed under us
                do { try makeDirectories(directory) } catch { throw .system(error) }
                continue
            } catch {
                throw .system(error)
            }
            guard let fd = opened else { continue }  // swept in between
            let record = DeliveryRecord(fd: fd, path: path)

            while true {
                let locked: Bool
                do { locked = try Sys.tryLockExclusive(fd, path: path) } catch { throw .system(error) }
                if locked { break }
                guard monotonicNanoseconds() < deadline else { throw .busy }
                Sys.sleep(seconds: 0.002)
            }
            let held: FileStatus
            do { held = try Sys.fstat(fd, path: path) } catch { throw .system(error) }
            guard let named = try? Sys.stat(path), named.isSameFile(as: held) else {
                continue  // swept while we waited: that inode is no record any more
            }
            if held.size > 0, let first = record.storedID(),
                now.seconds - held.modified.seconds < window
            {
                return .duplicate(of: first)
            }
            return .first(record)
        }
    }

    /// Opens the record at `path`, creating it empty when missing; nil when
    /// it was there but removed before it could be opened.
    private static func openRecord(_ path: String) throws(SystemError) -> Int32? {
        do {
            return try Sys.open(path, [.readWrite, .create, .exclusive], mode: 0o640)
        } catch  where error.alreadyExists {
            do {
                return try Sys.open(path, .readWrite)
            } catch  where error.isNotFound {
                return nil
            }
        }
    }

    /// Removes records older than the window that nobody holds. A record is
    /// unlinked only under its lock, so a request waiting for it notices.
    private func sweepIfDue(_ directory: String, window: Int, now: Timestamp) {
        let due = lastSweep.withLock { last -> Bool in
            if let previous = last[directory], now.seconds - previous < sweepIntervalSeconds,
                now.seconds >= previous
            {
                return false
            }
            last[directory] = now.seconds
            return true
        }
        guard due, let names = try? listDirectory(directory) else { return }
        for name in names where name.utf8.count == 64 {
            let path = directory + "/" + name
            guard let named = try? Sys.stat(path), now.seconds - named.modified.seconds >= window,
                let fd = try? Sys.open(path, .readWrite)
            else { continue }
            defer { Sys.closeIgnoringError(fd) }
            guard (try? Sys.tryLockExclusive(fd, path: path)) == true else { continue }  // in use
            guard let held = try? Sys.fstat(fd, path: path), let stillNamed = try? Sys.stat(path),
                stillNamed.inode == held.inode, now.seconds - held.modified.seconds >= window
            else { continue }
            Sys.removeLeftover(path)
        }
    }
}

/// The outcome of `DuplicateRecords.claim`.
package enum DuplicateClaim {
    /// Accepted before, within the window, as this id.
    case duplicate(of: DeliveryID)
    /// Not seen (or expired): deliver it, then `commit` the new id.
    case first(DeliveryRecord)
}

package enum DuplicateRecordError: Error, Sendable {
    case system(SystemError)
    /// Another copy held the record for longer than the wait.
    case busy
    /// The record's name (a SHA-256) could not be computed.
    case crypto(CryptoFailure)
}

/// A locked record: the lock holds until `release()`, or until the record
/// is no longer referenced.
package final class DeliveryRecord {
    private var fd: Int32
    private let path: String

    fileprivate init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { release() }

    /// Unlocks and closes the record; later copies of the delivery may look.
    package func release() {
        if fd >= 0 { Sys.closeIgnoringError(fd) }
        fd = -1
    }

    fileprivate func storedID() -> DeliveryID? {
        var buffer = [UInt8](repeating: 0, count: 64)
        guard let n = try? Sys.pread(fd, into: &buffer, from: 0, path: path), n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self).trimmingASCIIWhitespace()
        return DeliveryID(parsing: String(text))
    }

    /// Records `id` as the delivery this sender id was accepted as. Call it
    /// only once the delivery is stored. A failure here leaves the record
    /// empty, so a retry would be stored again: at least once, never lost.
    ///
    /// Not flushed to disk: the record outlives any restart of hookguard (the
    /// kernel keeps it), and all a power loss can cost is a duplicate later,
    /// which is the same at-least-once promise; two more fsyncs per delivery
    /// would buy nothing a reader can rely on.
    package func commit(_ id: DeliveryID) throws(SystemError) {
        let line = Array((id.text + "\n").utf8)
        try Sys.ftruncate(fd, size: 0, path: path)
        try Sys.pwriteAll(fd, line, at: 0, path: path)
    }
}
