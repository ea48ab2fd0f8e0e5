"""One measured row: wrk against one location with one body, RSS sampled
while it runs, and the answers compared with what the receiver kept."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from servers import BENCH


@dataclass
class WrkResult:
    answered: int
    non2xx: int
    sent: int
    seconds: float
    p50_us: int
    p99_us: int
    socket_errors: int
    raw: str = field(repr=False, default="")

    @property
    def ok(self) -> int:
        """2xx answers: wrk counts every status over 399 as an error, and no
        receiver here answers 3xx."""
        return self.answered - self.non2xx

    @property
    def rate(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


def run_wrk(port: int, path: str, body: Path, signature: str, seconds: float,
            connections: int, grace: float, limit: int = 0, threads: int = 2) -> WrkResult:
    """Sends for `seconds` (or `limit` requests in all), then waits at most
    `grace` for the answers to what was sent."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds + grace:.0f}s",
            "--timeout", "60s", "-s", str(BENCH / "signed-post.lua"),
            f"http://127.0.0.1:{port}{path}", "--", path, str(body), signature, str(seconds),
            str(limit // threads), str(connections // threads)]
    with tempfile.NamedTemporaryFile(prefix="hookguard-bench-wrk-") as done:
        argv += [done.name, str(threads)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + grace + 120)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            v = dict(item.split("=", 1) for item in line.split()[1:])
            return WrkResult(
                answered=int(v["answered"]), non2xx=int(v["non2xx"]), sent=int(v["sent"]),
                seconds=float(v["seconds"]), p50_us=int(v["p50_us"]), p99_us=int(v["p99_us"]),
                socket_errors=sum(int(v[k]) for k in ("connect_errors", "read_errors",
                                                      "write_errors", "timeouts")),
                raw=out.stdout)
    raise RuntimeError(f"wrk printed no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


class RSSSampler:
    """The largest RSS a process tree reaches while a row runs."""

    def __init__(self, sample, interval: float = 0.2):
        self.sample = sample
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "RSSSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())


def settle(count, expected: int, timeout: float, quiet: float = 5.0) -> tuple[int, float]:
    """Polls `count()` until it reaches `expected` and stops growing, or it has
    not grown for `quiet` seconds (what never came will not), or the timeout;
    returns the last count and when it last grew (monotonic)."""
    last, grew = count(), time.monotonic()
    deadline = grew + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, grew = now, time.monotonic()
        elif now >= expected and time.monotonic() - grew > 0.3:
            break
        elif time.monotonic() - grew > quiet:
            break
    return last, grew
