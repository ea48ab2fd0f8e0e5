import FastCGI
import Posix
import Receiver

/// How long a failed delivery waits before its next attempt: `base` after the
/// first failure, then twice as long after each further one, never more than `cap`.
package struct Backoff: Sendable, Equatable {
    package var base: Duration
    package var cap: Duration

    package init(base: Duration, cap: Duration = .seconds(3600)) {
        self.base = base
        self.cap = cap
    }

    /// The wait after the `failures`-th failed attempt (1 for the first).
    package func delay(afterFailure failures: Int) -> Duration {
        let doublings = max(0, failures - 1)
        // Past 62 doublings any positive base is beyond any cap.
        guard doublings < 62 else { return base > .zero ? cap : .zero }
        let seconds = base.seconds * Double(1 << doublings)
        return seconds >= cap.seconds ? cap : base * (1 << doublings)
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    package var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }

    /// Parses a duration as the command line takes it: a number and a unit,
    /// `ms`, `s`, `m` or `h` (`250ms`, `1.5s`, `10m`); a bare number is seconds.
    package init?(parsing text: String) {
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        var number = Substring(text)
        var scale = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            number = text.dropLast(unit.suffix.count)
            scale = unit.seconds
            break
        }
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
            let value = Double(number), value.isFinite
        else { return nil }
        let seconds = value * scale
        guard seconds < 1e12 else { return nil }
        self = .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// Short text for logs and records: `250ms`, `1.5s`, `30s`.
    package var shortDescription: String {
        let value = seconds
        if value < 1 { return "\(Int((value * 1000).rounded()))ms" }
        if value == value.rounded() { return "\(Int(value))s" }
        return "\((value * 1000).rounded() / 1000)s"
    }
}
