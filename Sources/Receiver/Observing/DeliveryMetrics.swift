import FastCGI
import Metrics
import Posix

/// The counters and histograms every request and forward updates, through
/// swift-metrics: what the metrics role and `--metrics-listen` expose.
package enum DeliveryMetrics {
    package static func request(_ outcome: Outcome, location: String, scheme: String?, bytes: Int?, nanoseconds: UInt64)
    {
        let dimensions = [
            ("location", location), ("scheme", scheme ?? "none"),
            ("outcome", outcome.kind.rawValue), ("reason", outcome.reason.description),
        ]
        Counter(label: "hookguard_deliveries_total", dimensions: dimensions).increment()
        Timer(label: "hookguard_request_duration_seconds", dimensions: [("location", location)])
            .recordNanoseconds(Int64(nanoseconds))
        if let bytes {
            Counter(label: "hookguard_received_bytes_total", dimensions: [("location", location)]).increment(by: bytes)
        }
    }

    package static func forward(to destination: DestinationName, succeeded: Bool, nanoseconds: UInt64) {
        Timer(
            label: "hookguard_forward_duration_seconds",
            dimensions: [("destination", destination.metricsLabel), ("result", succeeded ? "ok" : "failed")]
        ).recordNanoseconds(Int64(nanoseconds))
    }

    package static func spoolDepth(_ spool: String, entries: Int) {
        Gauge(label: "hookguard_spool_depth", dimensions: [("spool", spool)]).record(entries)
    }
}
