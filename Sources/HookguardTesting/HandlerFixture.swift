package import FastCGI
import Foundation
package import Receiver

/// A handler with a temporary directory and a captured log of its own, the
/// directory removed with the fixture: what the handler tests share.
package final class HandlerFixture: Sendable {
    package let dir: String
    package let log = CapturedLog()
    package let handler: WebhookHandler

    package init() throws {
        dir = try makeTemporaryDirectory()
        handler = WebhookHandler(logger: log.logger())
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// The names in the spool's `new/` under `dir`.
    package func spooled(_ spool: String = "spool") -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir + "/" + spool + "/new")) ?? []
    }

    package func handle(_ params: RequestParams, body: [UInt8] = []) -> Response {
        var source = MemoryBody(body)
        return handler.handle(params, body: &source)
    }
}
