import FastCGI
import Posix
import Receiver

/// Entries waiting to be tried, oldest first, each once.
struct EntryQueue {
    private var sorted: [EntryName] = []
    private var members: Set<EntryName> = []
    private var head = 0

    var count: Int { sorted.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func insert(_ entry: EntryName) {
        guard members.insert(entry).inserted else { return }
        // Most arrivals are newer than all waiting: the binary search ends at the back.
        var low = head
        var high = sorted.count
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] < entry { low = mid + 1 } else { high = mid }
        }
        sorted.insert(entry, at: low)
    }

    mutating func popFirst() -> EntryName? {
        guard head < sorted.count else { return nil }
        let entry = sorted[head]
        head += 1
        members.remove(entry)
        if head > 1024 && head * 2 > sorted.count {
            sorted.removeFirst(head)
            head = 0
        }
        return entry
    }

    mutating func removeAll() {
        sorted.removeAll()
        members.removeAll()
        head = 0
    }
}
