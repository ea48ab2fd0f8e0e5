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


def block_stat(path: Path) -> Path | None:
    """/sys's stat file of the block device holding `path` (the whole disk's
    when `path` is on a partition whose stat lacks the flush fields)."""
    st = os.stat(path)
    device = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    for candidate in (device / "stat", device.resolve().parent / "stat"):
        try:
            if len(candidate.read_text().split()) >= 17:
                return candidate
        except OSError:
            continue
    return None


def flushes(stat: Path | None) -> int | None:
    """Flush requests the device has completed (field 16 of its stat file,
    kernel 5.5 and later); None where the device does not say."""
    if stat is None:
        return None
    return int(stat.read_text().split()[15])
