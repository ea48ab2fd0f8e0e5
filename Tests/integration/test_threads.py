"""Threads by name: what `top -H`, gdb and sanitizer reports show for each."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from harness import (HOOKGUARD_BIN, free_port, start_hookguard, stop, tail, wait_hookguard_ready,
                     wait_until)


def thread_names(pid: int) -> list[str]:
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:  # the thread ended while being listed
            pass
    return names


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def test_serve_names_every_thread_and_the_supervisor_stays_single_threaded(tmp_path):
    sock, log = tmp_path / "hg.sock", tmp_path / "stderr.log"
    proc = start_hookguard(sock, log, tmp_path, workers=3,
                           extra_args=["--metrics-listen", f"127.0.0.1:{free_port()}"])
    try:
        wait_hookguard_ready(proc, sock, log)
        # The supervisor forks its workers' process: a thread of its own there
        # would make every fork a multi-threaded one.
        assert not [n for n in thread_names(proc.pid) if n.startswith("hg-")], thread_names(proc.pid)
        [worker] = wait_until(lambda: children(proc.pid), 5)
        expected = {"hg-signals", "hg-waiting-room", "hg-worker-1", "hg-worker-2", "hg-worker-3", "hg-metrics"}
        names = wait_until(lambda: (lambda n: n if expected <= set(n) else None)(thread_names(worker)), 5)
        assert names, f"threads of the workers' process: {thread_names(worker)}\n{tail(log)}"
        # One each: one signal thread, one waiting room, no worker twice.
        named = [n for n in names if n.startswith("hg-")]
        assert sorted(named) == sorted(expected), names
    finally:
        assert stop(proc, signal.SIGTERM, 10) == 0, tail(log)


def test_drain_names_its_threads(tmp_path):
    spool = tmp_path / "spool"
    for sub in ("tmp", "new", "cur"):
        (spool / sub).mkdir(parents=True)
    log = tmp_path / "drain.log"
    # Nothing to send: the forwarding threads wait for their first job.
    args = [str(HOOKGUARD_BIN), "drain", str(spool), "--follow", "--concurrency", "2",
            "--to-url", f"http://127.0.0.1:{free_port()}/hooks",
            "--metrics-listen", f"127.0.0.1:{free_port()}"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        assert wait_until(lambda: "msg=draining" in log.read_text() or proc.poll() is not None, 15), tail(log)
        expected = {"hg-signals", "hg-metrics", "hg-forward-1", "hg-forward-2"}
        names = wait_until(lambda: (lambda n: n if expected <= set(n) else None)(thread_names(proc.pid)), 5)
        assert names, f"threads of drain: {thread_names(proc.pid)}\n{tail(log)}"
        assert sorted(n for n in names if n.startswith("hg-")) == sorted(expected), names
    finally:
        assert stop(proc, signal.SIGTERM, 10) == 0, tail(log)
