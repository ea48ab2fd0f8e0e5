import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct RequestParamsTests {
    @Test func entriesSplitAtTheFirstEqualsSign() {
        var params = RequestParams()
        params.append(entry: Array("HTTP_X_SIGNATURE=a=b".utf8))
        params.append(entry: Array("NO_EQUALS_SIGN".utf8))
        params.append(entry: Array("EMPTY=".utf8))
        #expect(params.values == ["HTTP_X_SIGNATURE": "a=b", "EMPTY": ""])
    }

    @Test func aRepeatedNameIsCombinedAsHTTPCombinesHeaders() {
        var params = RequestParams()
        params.append(entry: Array("HTTP_X_HUB_SIGNATURE_256=sha256=aa".utf8))
        params.append(entry: Array("HTTP_X_HUB_SIGNATURE_256=sha256=bb".utf8))
        #expect(params["HTTP_X_HUB_SIGNATURE_256"] == "sha256=aa, sha256=bb")
    }

    @Test func invalidUTF8IsReplacedNotDropped() {
        var params = RequestParams()
        params.append(entry: [0x41, 0x3d, 0xff, 0x42])
        #expect(params["A"] == "\u{FFFD}B")
    }
}
