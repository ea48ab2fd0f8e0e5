import Foundation
import Glibc
import HookguardTesting
import Logging
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct LaunchModeTests {
    let pid: Int32 = 4242

    func detect(
        _ environment: [String: String], standardInputIsListening: Bool = false
    ) throws(LaunchError) -> LaunchMode {
        try LaunchMode.detect(
            environment: environment, processID: pid,
            standardInputIsListeningSocket: { standardInputIsListening })
    }

    @Test func systemdSocketForThisProcessIsFd3() throws {
        let mode = try detect(["LISTEN_FDS": "1", "LISTEN_PID": "4242"])
        #expect(mode == .systemdSocket)
        #expect(mode.inheritedDescriptor == 3)
    }

    @Test func systemdWinsOverStandardInputAndIsCheckedFirst() throws {
        var probed = false
        let mode = try LaunchMode.detect(
            environment: ["LISTEN_FDS": "1", "LISTEN_PID": "4242", "REQUEST_METHOD": "POST"],
            processID: pid,
            standardInputIsListeningSocket: {
                probed = true
                return true
            })
        #expect(mode == .systemdSocket)
        #expect(!probed, "fd 0 need not be probed when systemd passed a socket")
    }

    @Test func systemdVariablesForAnotherProcessAreIgnored() throws {
        #expect(try detect(["LISTEN_FDS": "1", "LISTEN_PID": "1"]) == .interactive)
        #expect(try detect(["LISTEN_FDS": "1", "LISTEN_PID": "not-a-pid"]) == .interactive)
        #expect(try detect(["LISTEN_FDS": "1"]) == .interactive)
        #expect(
            try detect(["LISTEN_FDS": "1", "LISTEN_PID": "1"], standardInputIsListening: true)
                == .standardInputSocket)
    }

    @Test func noSystemdSocketsMeansLookFurther() throws {
        #expect(try detect(["LISTEN_FDS": "0", "LISTEN_PID": "4242", "GATEWAY_INTERFACE": "CGI/1.1"]) == .cgi)
    }

    @Test(arguments: ["2", "3", "", "one", "-1"])
    func anythingButOneSystemdSocketIsRefused(count: String) {
        #expect(throws: LaunchError.systemdSocketCount(count)) {
            try detect(["LISTEN_FDS": count, "LISTEN_PID": "4242"])
        }
        #expect(LaunchError.systemdSocketCount(count).description.contains("LISTEN_FDS=\(count)"))
    }

    @Test func listeningStandardInputIsFastCGIEvenInACGIEnvironment() throws {
        let mode = try detect(
            ["GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST"],
            standardInputIsListening: true)
        #expect(mode == .standardInputSocket)
        #expect(mode.inheritedDescriptor == 0)
    }

    @Test func cgiEnvironmentIsCGI() throws {
        #expect(try detect(["GATEWAY_INTERFACE": "CGI/1.1"]) == .cgi)
        #expect(try detect(["REQUEST_METHOD": "POST"]) == .cgi)
        #expect(try detect(["REQUEST_METHOD": "POST"]).inheritedDescriptor == nil)
    }

    @Test func nothingMeansInteractive() throws {
        #expect(try detect([:]) == .interactive)
        #expect(try detect(["GATEWAY_INTERFACE": "", "REQUEST_METHOD": "", "PATH": "/usr/bin"]) == .interactive)
    }
}

@Suite struct EnvironmentOptionsTests {
    @Test func defaults() throws {
        let options = try EnvironmentOptions(environment: ["HOOKGUARD_WORKERS": ""], defaultWorkers: 6)
        #expect(options == (try EnvironmentOptions(environment: [:], defaultWorkers: 6)))
        #expect(options.workers == 6)
        #expect(options.logLevel == .info)
    }

    @Test func secondsFromTheEnvironment() throws {
        let options = try EnvironmentOptions(
            environment: ["HOOKGUARD_READ_TIMEOUT": "0.5", "HOOKGUARD_IDLE_TIMEOUT": "30", "HOOKGUARD_GRACE": ""],
            defaultWorkers: 2)
        #expect(options.readTimeout == 0.5)
        #expect(options.idleTimeout == 30)
        #expect(options.grace == nil)
    }

    @Test(arguments: ["0", "-1", "soon", "86401"])
    func badSecondsAreNamed(value: String) {
        do {
            _ = try EnvironmentOptions(environment: ["HOOKGUARD_GRACE": value], defaultWorkers: 2)
            Issue.record("HOOKGUARD_GRACE=\(value) was accepted")
        } catch {
            #expect(error.description.contains("HOOKGUARD_GRACE=\"\(value)\""))
        }
    }

    @Test func valuesFromTheEnvironment() throws {
        let options = try EnvironmentOptions(
            environment: ["HOOKGUARD_WORKERS": "1", "HOOKGUARD_LOG_LEVEL": "DEBUG"], defaultWorkers: 6)
        #expect(options.workers == 1)
        #expect(options.logLevel == .debug)
    }

    @Test(arguments: ["0", "1025", "two", "-3", "1.5"])
    func badWorkersAreNamed(value: String) {
        do {
            _ = try EnvironmentOptions(environment: ["HOOKGUARD_WORKERS": value], defaultWorkers: 2)
            Issue.record("HOOKGUARD_WORKERS=\(value) was accepted")
        } catch {
            #expect(error.description.contains("HOOKGUARD_WORKERS=\"\(value)\""))
            #expect(error.description.contains("1 to 1024"))
        }
    }

    @Test func badLogLevelListsTheLevels() {
        do {
            _ = try EnvironmentOptions(environment: ["HOOKGUARD_LOG_LEVEL": "loud"], defaultWorkers: 2)
            Issue.record("HOOKGUARD_LOG_LEVEL=loud was accepted")
        } catch {
            #expect(error.description.contains("HOOKGUARD_LOG_LEVEL=\"loud\""))
            #expect(error.description.contains("trace"))
            #expect(error.description.contains("critical"))
        }
    }
}

/// A pipe whose ends the test closes itself.
private struct Pipe {
    let read: Int32
    let write: Int32

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw SystemError("pipe", errno: errno) }
        read = fds[0]
        write = fds[1]
    }

    /// Everything written until the write end is closed, read on another thread.
    func drain() -> OnThread<[UInt8]> {
        let fd = read
        return OnThread {
            var all: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                all += chunk[..<n]
            }
            return all
        }
    }
}

/// Work on a thread of its own: blocking pipe I/O must not hold one of the
/// few threads Swift Testing runs every test on (two, on a two-core machine).
final class OnThread<T: Sendable>: Sendable {
    private let value = Locked<T?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () -> T) {
        Thread.detachNewThread { [self] in
            let result = body()
            value.withLock { $0 = result }
            done.signal()
        }
    }

    func wait() -> T {
        done.wait()
        return value.withLock { $0! }
    }
}

@Suite struct CGIResponseTests {
    @Test func headThenBody() {
        let response = Outcome.methodNotAllowed("GET").response
        let text = String(decoding: CGIResponseWriter.bytes(of: response), as: UTF8.self)
        let body = "Method not allowed: webhooks are POSTed.\n"
        #expect(
            text == "Status: 405 Method Not Allowed\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nAllow: POST\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
    }

    @Test func writesEveryByteThroughShortWrites() throws {
        // Far more than a pipe holds (64 KiB): write(2) returns short counts.
        let body = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let response = Response(status: 200, headers: [("Content-Type", "application/octet-stream")], body: body)
        let pipe = try Pipe()
        let reader = pipe.drain()
        try CGIResponseWriter.write(response, to: pipe.write)
        close(pipe.write)
        let written = reader.wait()
        close(pipe.read)
        #expect(written == CGIResponseWriter.bytes(of: response))
        #expect(written.count == Array(response.cgiHead.utf8).count + body.count)
    }

    @Test func aBadOutputIsAnError() {
        // Not a closed pipe: tests run in parallel, and its number may be reused at once.
        do {
            try CGIResponseWriter.write(.text(200, "ok"), to: -1)
            Issue.record("writing to fd -1 succeeded")
        } catch {
            #expect(error.errno == EBADF)
            #expect(error.description.hasPrefix("write(standard output)"))
        }
    }
}

@Suite struct FileDescriptorBodyTests {
    fileprivate func source(_ bytes: [UInt8], closeWriter: Bool = true) throws -> (FileDescriptorBody, Pipe) {
        let pipe = try Pipe()
        try writeAll(pipe.write, bytes, path: "test pipe")
        if closeWriter { close(pipe.write) }
        return (FileDescriptorBody(fd: pipe.read), pipe)
    }

    @Test func readsExactlyContentLength() throws {
        let bytes = Array("{\"café\": true}".utf8)
        var (body, pipe) = try source(bytes + Array("trailing".utf8))
        defer { close(pipe.read) }
        #expect(try RequestBody.read(from: &body, contentLength: bytes.count, limit: 1024) == bytes)
    }

    @Test func shortBodyIsIncomplete() throws {
        var (body, pipe) = try source(Array("short".utf8))
        defer { close(pipe.read) }
        #expect(throws: BodyError.incomplete(expected: 10, received: 5)) {
            try RequestBody.read(from: &body, contentLength: 10, limit: 1024)
        }
    }

    @Test func withoutLengthReadsToTheEnd() throws {
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
        let pipe = try Pipe()
        defer { close(pipe.read) }
        let writer = OnThread {
            try? writeAll(pipe.write, bytes, path: "test pipe")
            close(pipe.write)
        }
        var body = FileDescriptorBody(fd: pipe.read)
        #expect(try RequestBody.read(from: &body, contentLength: nil, limit: 1 << 20) == bytes)
        writer.wait()
    }

    @Test func aStalledWriterEndsTheBodyAfterTheTimeout() throws {
        let pipe = try Pipe()
        defer {
            close(pipe.read)
            close(pipe.write)
        }
        try writeAll(pipe.write, Array("half".utf8), path: "test pipe")
        var body = FileDescriptorBody(fd: pipe.read, timeout: 0.2)
        let start = ContinuousClock.now
        #expect(throws: BodyError.incomplete(expected: 8, received: 4)) {
            try RequestBody.read(from: &body, contentLength: 8, limit: 1024)
        }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(190) && waited < .seconds(5), "waited \(waited)")
    }

    @Test func aBadDescriptorFails() {
        var body = FileDescriptorBody(fd: -1)
        #expect(throws: BodyError.incomplete(expected: 4, received: 0)) {
            try RequestBody.read(from: &body, contentLength: 4, limit: 1024)
        }
    }
}
