import FastCGI
import Logging
import Posix

/// Answers the locations whose `HOOKGUARD_ROLE` is `metrics` (Prometheus text)
/// or `health` (for load balancers). nginx decides who may ask, with allow/deny.
struct StatusResponder: Sendable {
    let workers: WorkerStatus
    let spools: SpoolRegistry
    let render: @Sendable () -> [UInt8]

    init(workers: WorkerStatus, spools: SpoolRegistry, exposition: @escaping @Sendable () -> [UInt8]) {
        self.workers = workers
        self.spools = spools
        self.render = exposition
    }

    /// The registry's text, with each known spool's depth counted just now.
    func exposition() -> [UInt8] {
        for root in spools.known {
            if let depth = Spool(root: root).depth() { DeliveryMetrics.spoolDepth(root, entries: depth) }
        }
        return render()
    }

    func metrics(_ params: RequestParams, logger: Logger) -> Response {
        guard params.method == "GET" || params.method == "HEAD" else {
            return .text(405, "Method not allowed: read metrics with GET.", headers: [("Allow", "GET, HEAD")])
        }
        logger.debug("metrics", metadata: ["uri": "\(params.uri)"])
        return Response(
            status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")],
            body: params.method == "HEAD" ? [] : exposition())
    }

    /// 200 while a worker is free and every spool known (those written to since
    /// start, and one the health location names) takes a file; 503 otherwise.
    func health(_ params: RequestParams, logger: Logger) -> Response {
        guard params.method == "GET" || params.method == "HEAD" else {
            return .text(405, "Method not allowed: ask for health with GET.", headers: [("Allow", "GET, HEAD")])
        }
        var problems: [String] = []
        if !workers.hasFreeWorker {
            problems.append("all \(workers.total) workers busy")
        }
        var roots = Set(spools.known)
        if let named = params[Parameter.spool.rawValue], named.hasPrefix("/") { roots.insert(named) }
        for root in roots.sorted() {
            do {
                try Spool(root: root).probeWritable()
            } catch {
                problems.append("spool \(root) unwritable: \(error)")
            }
        }
        if problems.isEmpty {
            logger.debug("health", metadata: ["status": "200"])
            return .text(
                200,
                "ok: \(workers.total - workers.busyCount + 1) of \(workers.total) workers free, \(roots.count) spools writable"
            )
        }
        logger.warning("health", metadata: ["status": "503", "detail": "\(problems.joined(separator: "; "))"])
        return .text(503, "unhealthy: " + problems.joined(separator: "; "), headers: [("Retry-After", "5")])
    }
}
