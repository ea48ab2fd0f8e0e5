import FastCGI
import Metrics
import Posix
import Synchronization

/// How many workers there are and how many are answering a request now:
/// what the health role and the `hookguard_workers_busy` gauge report.
package final class WorkerStatus: Sendable {
    package let total: Int
    private let busy = Atomic<Int>(0)
    private let busyGauge = Gauge(label: "hookguard_workers_busy")

    package init(total: Int) {
        self.total = total
        Gauge(label: "hookguard_workers").record(total)
    }

    package var busyCount: Int { busy.load(ordering: .relaxed) }

    /// Brackets one request on one worker.
    package func working<R>(_ body: () throws -> R) rethrows -> R {
        busyGauge.record(busy.add(1, ordering: .relaxed).newValue)
        defer { busyGauge.record(busy.subtract(1, ordering: .relaxed).newValue) }
        return try body()
    }

    /// True while another request could start at once. The health request
    /// holds a worker itself, so saturation means every other one is busy.
    package var hasFreeWorker: Bool { total == 1 || busyCount < total }
}
