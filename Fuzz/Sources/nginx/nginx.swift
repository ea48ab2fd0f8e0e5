// The nginx config reader behind `hookguard doctor --nginx`: any text through
// NginxConfig.locations(in:), and any size through NginxConfig.parseSize.
// Properties: no crash; only locations that pass a HOOKGUARD_* parameter are
// reported; a body size limit is positive or absent (unlimited).
import Doctor
import FastCGI
import FuzzSupport
import HookguardTesting
import Receiver

@_cdecl("LLVMFuzzerTestOneInput")
package func fuzzNginx(_ data: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
    do {
        for location in try NginxConfig.locations(in: text) {
            require(
                location.params.keys.contains { $0.hasPrefix("HOOKGUARD_") }, "a location without HOOKGUARD_ parameters"
            )
            require(
                location.clientMaxBodySize.map { $0 > 0 } ?? true, "a body size limit of \(location.clientMaxBodySize!)"
            )
        }
    } catch {
        _ = error.description
    }
    if let size = NginxConfig.parseSize(text) {
        require(size >= 0 || text.hasPrefix("-"), "\(text.debugDescription) parsed as \(size)")
    }
    return 0
}
