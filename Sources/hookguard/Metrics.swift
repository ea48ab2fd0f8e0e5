import Doctor
import Drain
import FastCGI
import Logging
import Metrics
import Posix
import Prometheus
import Receiver

/// Bootstraps swift-metrics with the Prometheus registry and returns what renders it.
func bootstrapMetrics() -> @Sendable () -> [UInt8] {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    // Deliveries take well under a millisecond until a disk or a reader stalls.
    factory.defaultDurationHistogramBuckets = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    MetricsSystem.bootstrap(factory)
    return { registry.emitToBuffer() }
}

/// `--metrics-listen`: a plain HTTP endpoint answering `GET /metrics`, one
/// request per connection, on its own thread.
final class MetricsEndpoint: Sendable {
    private let listener: Listener
    private let thread: WorkerThread

    init(listener: Listener, text: @escaping @Sendable () -> [UInt8], logger: Logger) {
        self.listener = listener
        thread = WorkerThread(named: "hg-metrics") {
            // Ends when the listener is shut down (accept fails).
            while let client = try? listener.accept() {
                MetricsEndpoint.answer(client, text: text)
                Sys.closeIgnoringError(client)
            }
        }
        logger.notice("metrics", metadata: ["listen": "\(listener.address)"])
    }

    /// Stops answering; the caller closes the listener.
    func stop() {
        try? Sys.shutdown(listener.fd)
        thread.join()
    }

    private static func answer(_ client: Int32, text: () -> [UInt8]) {
        var head = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1024)
        while head.count < 8192, !head.ends(with: [13, 10, 13, 10]) {
            // A client that says nothing for 2 s is dropped.
            guard (try? Sys.waitReadable(client, milliseconds: 2000)) == true,
                let n = try? Sys.read(client, into: &chunk),
                n > 0
            else { return }
            head += chunk[0..<n]
        }
        let requestLine = head.prefix { $0 != 13 && $0 != 10 }.split(separator: 32).map {
            String(decoding: $0, as: UTF8.self)
        }
        let (status, body): (String, [UInt8]) =
            switch (requestLine.first, requestLine.dropFirst().first?.split(separator: "?").first) {
            case ("GET", "/metrics"?): ("200 OK", text())
            case ("GET", _): ("404 Not Found", Array("Metrics are at /metrics.\n".utf8))
            default: ("405 Method Not Allowed", Array("Read metrics with GET.\n".utf8))
            }
        var response = Array(
            "HTTP/1.1 \(status)\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                .utf8)
        response += body
        var offset = 0
        while offset < response.count, let n = try? Sys.send(client, response, from: offset), n > 0 {
            offset += n
        }
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}
