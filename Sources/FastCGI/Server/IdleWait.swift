import Posix

/// What an idle worker sleeps on: the stop pipe and the waiting room's
/// `ready` pipe, in the worker's own epoll instance.
///
/// `ready` wakes one sleeping worker per connection handed over. With
/// poll(2) every handover woke every idle worker (16 by default) and all but
/// one found nothing to take: on two cores, wake-ups and context switches
/// were the largest kernel costs in `bench/run`'s socket row. The stop pipe
/// wakes them all.
struct IdleWait {
    enum Woken {
        case stop
        case ready
    }

    private let input: InputWait
    private let wakeFd: Int32

    init(wakeFd: Int32, ready: Int32) throws(SystemError) {
        input = try InputWait()
        do throws(SystemError) {
            try input.watch(wakeFd)
            try input.watch(ready, wakingOne: true)
        } catch {
            input.close()
            throw error
        }
        self.wakeFd = wakeFd
    }

    /// Sleeps until the server stops or a connection may be ready (another
    /// worker may still take it first). A failed wait counts as a stop: the
    /// worker must not spin on it.
    func wait() -> Woken {
        guard let woken = try? input.wait() else { return .stop }
        return woken.contains(wakeFd) ? .stop : .ready
    }

    func close() { input.close() }
}
