"""The disk's state before measuring: on this ext4 (no journal), file creates
slow to ~1 ms for minutes after many deletions, which would measure the
filesystem's housekeeping instead of the receivers. Creates are timed in a
loop until they are fast again, for a bounded time."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path


def create_latency_us(directory: Path, files: int = 200) -> float:
    """Median time to create (and close) one new empty file, in µs. The probe
    files are left in place: deleting them would slow the next creates."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.monotonic_ns()
    times = []
    for i in range(files):
        start = time.perf_counter()
        fd = os.open(directory / f"{stamp}-{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def wait_for_fast_creates(directory: Path, threshold_us: float, timeout: float, say) -> float:
    deadline = time.monotonic() + timeout
    while True:
        latency = create_latency_us(directory)
        if latency <= threshold_us:
            say(f"file creates: median {latency:.0f} µs (≤ {threshold_us:.0f} µs): measuring")
            return latency
        if time.monotonic() >= deadline:
            say(f"file creates still slow after {timeout:.0f} s (median {latency:.0f} µs "
                f"> {threshold_us:.0f} µs): measuring anyway, the durable rows will show it")
            return latency
        say(f"file creates slow (median {latency:.0f} µs > {threshold_us:.0f} µs): waiting")
        time.sleep(5)
