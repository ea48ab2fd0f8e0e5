import Metrics
import Synchronization

/// How many workers there are and how many are answering a request now:
/// what the health role and the `hookguard_workers_busy` gauge report.
public final class WorkerStatus: Sendable {
    public let total: Int
    private let busy = Atomic<Int>(0)
    private let busyGauge = Gauge(label: "hookguard_workers_busy")

    public init(total: Int) {
        self.total = total
        Gauge(label: "hookguard_workers").record(total)
    }

    public var busyCount: Int { busy.load(ordering: .relaxed) }

    /// Brackets one request on one worker.
    public func working<R>(_ body: () throws -> R) rethrows -> R {
        busyGauge.record(busy.add(1, ordering: .relaxed).newValue)
        defer { busyGauge.record(busy.subtract(1, ordering: .relaxed).newValue) }
        return try body()
    }

    /// True while another request could start at once. The health request
    /// holds a worker itself, so saturation means every other one is busy.
    public var hasFreeWorker: Bool { total == 1 || busyCount < total }
}
