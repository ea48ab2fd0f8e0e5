internal import CCurl
import FastCGI
import Posix
import Receiver
import Synchronization

/// Where `drain --to-url` sends deliveries: an `http://` or `https://` URL,
/// or `unix:/path/to.sock:/uri` for a service listening on a Unix socket.
package struct HTTPEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// The URL curl asks for (for a Unix socket, `http://localhost` + the URI).
    package let url: String
    package let unixSocket: String?
    /// As the operator wrote it: for logs, metrics and `hookguard spool`.
    package let description: String

    package init(parsing text: String) throws(HTTPEndpointError) {
        description = text
        if text.hasPrefix("unix:") {
            let rest = text.dropFirst("unix:".count)
            guard let colon = rest.firstIndex(of: ":"), rest.first == "/" else { throw .badUnixForm(text) }
            let uri = rest[rest.index(after: colon)...]
            guard uri.first == "/" else { throw .badUnixForm(text) }
            unixSocket = String(rest[..<colon])
            url = "http://localhost" + uri
        } else {
            guard text.hasPrefix("http://") || text.hasPrefix("https://"), text.count > 8 else {
                throw .unsupported(text)
            }
            unixSocket = nil
            url = text
        }
        guard !url.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7f }) else { throw .unsupported(text) }
    }
}

package enum HTTPEndpointError: Error, Sendable, CustomStringConvertible {
    case unsupported(String)
    case badUnixForm(String)

    package var description: String {
        switch self {
        case .unsupported(let text): "\"\(text)\" is not an http:// or https:// URL nor unix:/path:/uri"
        case .badUnixForm(let text): "\"\(text)\": a Unix-socket upstream is unix:/path/to.sock:/uri"
        }
    }
}

/// A response as drain needs it: the status, when to come back, and the
/// start of the body for the log and the attempt record.
package struct HTTPResponse: Sendable, Equatable {
    package var status: Int
    /// The `Retry-After` header's wait (seconds or an HTTP date), when there was one.
    package var retryAfter: Duration?
    /// At most `HTTPConnection.bodyHeadBytes` bytes.
    package var bodyHead: [UInt8]

    package init(status: Int, retryAfter: Duration? = nil, bodyHead: [UInt8] = []) {
        self.status = status
        self.retryAfter = retryAfter
        self.bodyHead = bodyHead
    }
}

/// A request that got no response.
package struct HTTPTransferError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// Over the per-request timeout (connecting included).
        case timedOut
        /// Cut short by `TransferAbort` (drain's shutdown grace ran out).
        case aborted
        /// Connection refused or reset, DNS, TLS (a certificate that does not verify), …
        case failed
    }

    package let kind: Kind
    /// curl's words for it.
    package let message: String

    package var description: String { message }
}

/// Set from any thread to end the transfers of every connection holding it
/// within about a second (curl's progress callback reads it).
package final class TransferAbort: Sendable {
    private let flag = Atomic<Bool>(false)

    package init() {}

    package func abort() { flag.store(true, ordering: .relaxed) }
    package var isAborted: Bool { flag.load(ordering: .relaxed) }
}

/// One libcurl easy handle: the only Swift code that touches libcurl. It
/// keeps its connection alive between requests, so a drain worker that owns
/// one reuses it. Not thread-safe (libcurl's easy handles are not): one per
/// thread, never shared.
package final class HTTPConnection {
    package static let bodyHeadBytes = 512

    package struct Options: Sendable {
        /// The whole request, connecting included.
        package var timeout: Duration
        package var connectTimeout: Duration
        /// Certificates to trust instead of the system's (PEM).
        package var caFile: String?

        package init(timeout: Duration, connectTimeout: Duration, caFile: String? = nil) {
            self.timeout = timeout
            self.connectTimeout = connectTimeout
            self.caFile = caFile
        }
    }

    private let handle: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let sink: ResponseSink
    private let abort: TransferAbort

    /// A body sink and abort flag at stable addresses for curl's callbacks.
    private final class ResponseSink {
        var head: [UInt8] = []
        let abort: TransferAbort
        init(abort: TransferAbort) { self.abort = abort }
    }

    /// curl_global_init, once, before the first handle (Swift runs a static's
    /// initialiser once, whichever thread gets there first).
    private static let globalInit: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))

    package init(endpoint: HTTPEndpoint, options: Options, abort: TransferAbort) throws(HTTPSetupError) {
        guard Self.globalInit == CURLE_OK, let handle = curl_easy_init() else {
            throw HTTPSetupError(option: "curl_easy_init", message: "libcurl could not start")
        }
        self.handle = handle
        self.abort = abort
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        sink = ResponseSink(abort: abort)
        let sinkPointer = Unmanaged.passUnretained(sink).toOpaque()
        let milliseconds = { (duration: Duration) in max(1, Int(duration.seconds * 1000)) }
        var settings: [(String, CURLcode)] = [
            ("CURLOPT_NOSIGNAL", hookguard_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)),
            ("CURLOPT_ERRORBUFFER", hookguard_curl_set_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)),
            ("CURLOPT_URL", endpoint.url.withCString { hookguard_curl_set_pointer(handle, CURLOPT_URL, $0) }),
            ("CURLOPT_PROTOCOLS_STR", hookguard_curl_set_pointer(handle, CURLOPT_PROTOCOLS_STR, "http,https")),
            ("CURLOPT_HTTP_VERSION", hookguard_curl_set_long(handle, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1)),
            ("CURLOPT_POST", hookguard_curl_set_long(handle, CURLOPT_POST, 1)),
            ("CURLOPT_TIMEOUT_MS", hookguard_curl_set_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(options.timeout))),
            (
                "CURLOPT_CONNECTTIMEOUT_MS",
                hookguard_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(options.connectTimeout))
            ),
            ("CURLOPT_TCP_KEEPALIVE", hookguard_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)),
            ("CURLOPT_SSL_VERIFYPEER", hookguard_curl_set_long(handle, CURLOPT_SSL_VERIFYPEER, 1)),
            ("CURLOPT_SSL_VERIFYHOST", hookguard_curl_set_long(handle, CURLOPT_SSL_VERIFYHOST, 2)),
            (
                "CURLOPT_WRITEFUNCTION",
                hookguard_curl_set_write_function(handle) { data, size, count, context in
                    let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
                    let total = size * count
                    let wanted = min(total, HTTPConnection.bodyHeadBytes - sink.head.count)
                    if wanted > 0, let data {
                        data.withMemoryRebound(to: UInt8.self, capacity: wanted) {
                            sink.head.append(contentsOf: UnsafeBufferPointer(start: $0, count: wanted))
                        }
                    }
                    return total  // the rest is read and dropped
                }
            ),
            ("CURLOPT_WRITEDATA", hookguard_curl_set_pointer(handle, CURLOPT_WRITEDATA, sinkPointer)),
            (
                "CURLOPT_XFERINFOFUNCTION",
                hookguard_curl_set_progress_function(handle) { context, _, _, _, _ in
                    Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue().abort.isAborted ? 1 : 0
                }
            ),
            ("CURLOPT_XFERINFODATA", hookguard_curl_set_pointer(handle, CURLOPT_XFERINFODATA, sinkPointer)),
            ("CURLOPT_NOPROGRESS", hookguard_curl_set_long(handle, CURLOPT_NOPROGRESS, 0)),
        ]
        if let socket = endpoint.unixSocket {
            settings.append(
                (
                    "CURLOPT_UNIX_SOCKET_PATH",
                    socket.withCString { hookguard_curl_set_pointer(handle, CURLOPT_UNIX_SOCKET_PATH, $0) }
                ))
        }
        if let caFile = options.caFile {
            settings.append(
                ("CURLOPT_CAINFO", caFile.withCString { hookguard_curl_set_pointer(handle, CURLOPT_CAINFO, $0) }))
        }
        if let (option, code) = settings.first(where: { $0.1 != CURLE_OK }) {
            curl_easy_cleanup(handle)
            errorBuffer.deallocate()
            throw HTTPSetupError(option: option, message: String(cString: curl_easy_strerror(code)))
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    /// POSTs `body` as it is with exactly `headers` (curl adds `Host` and
    /// `Content-Length` only). Blocks for at most the timeout.
    package func post(headers: [(name: String, value: String)], body: [UInt8]) -> Result<
        HTTPResponse, HTTPTransferError
    > {
        // Without these, curl would add its own for a POST: an `Expect:
        // 100-continue` pause for large bodies, a form Content-Type, `Accept: */*`.
        var list: UnsafeMutablePointer<curl_slist>? = nil
        defer { curl_slist_free_all(list) }
        let suppressed = ["expect", "content-type", "accept"].filter { name in
            !headers.contains { $0.name.lowercased() == name }
        }
        for line in headers.map(Self.headerLine) + suppressed.map({ "\($0):" }) {
            guard let appended = curl_slist_append(list, line) else {
                return .failure(HTTPTransferError(kind: .failed, message: "out of memory for the request headers"))
            }
            list = appended
        }
        sink.head.removeAll(keepingCapacity: true)
        errorBuffer[0] = 0
        let code: CURLcode = body.withUnsafeBytes { bytes in
            // A non-null pointer even for an empty body: null would make curl read a callback.
            let pointer = bytes.baseAddress ?? UnsafeRawPointer(errorBuffer)
            guard hookguard_curl_set_pointer(handle, CURLOPT_HTTPHEADER, list) == CURLE_OK,
                hookguard_curl_set_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(bytes.count)) == CURLE_OK,
                hookguard_curl_set_pointer(handle, CURLOPT_POSTFIELDS, pointer) == CURLE_OK
            else { return CURLE_FAILED_INIT }
            let code = curl_easy_perform(handle)
            _ = hookguard_curl_set_pointer(handle, CURLOPT_POSTFIELDS, nil)
            _ = hookguard_curl_set_pointer(handle, CURLOPT_HTTPHEADER, nil)
            return code
        }
        guard code == CURLE_OK else {
            let detail = errorBuffer[0] != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
            let kind: HTTPTransferError.Kind =
                switch code {
                case CURLE_OPERATION_TIMEDOUT: .timedOut
                case CURLE_ABORTED_BY_CALLBACK: .aborted
                default: .failed
                }
            return .failure(HTTPTransferError(kind: kind, message: detail))
        }
        var status = 0
        _ = hookguard_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, retryAfter: retryAfter(), bodyHead: sink.head))
    }

    private func retryAfter() -> Duration? {
        var header: UnsafeMutablePointer<curl_header>? = nil
        guard curl_easy_header(handle, "Retry-After", 0, UInt32(CURLH_HEADER), -1, &header) == CURLHE_OK,
            let value = header?.pointee.value
        else { return nil }
        return Self.retryAfter(String(cString: value), now: Sys.wallClock().seconds)
    }

    /// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date
    /// (parsed by curl); a date in the past is no wait; nonsense is nil.
    package static func retryAfter(_ value: String, now: Int) -> Duration? {
        let text = value.trimmingCharacters(in: " \t")
        if !text.isEmpty, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
            return Int(text).map { .seconds($0) } ?? .seconds(Int.max / 1_000_000_000_000)
        }
        let date = curl_getdate(text, nil)
        guard date >= 0 else { return nil }
        return .seconds(max(0, date - now))
    }

    /// `Name: value`; an empty value needs curl's `Name;` form (`Name:` removes the header).
    private static func headerLine(_ header: (name: String, value: String)) -> String {
        header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
    }
}

/// A connection that could not be set up: which option curl refused.
package struct HTTPSetupError: Error, Sendable, CustomStringConvertible {
    package let option: String
    package let message: String

    package var description: String { "\(option): \(message)" }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let skip = Set(set)
        var slice = Substring(self)
        while let first = slice.first, skip.contains(first) { slice.removeFirst() }
        while let last = slice.last, skip.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
