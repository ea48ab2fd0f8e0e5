"""The spool's promise, read off the system calls of a real run.

A private hookguard (no supervisor, so one process) runs under `strace -f`
while 16 clients deliver concurrently over FastCGI. For every delivery
answered 200, the trace must show, in the order the kernel saw them:

  its file written in tmp/ and closed
  → a filesystem flush (syncfs) that began after that and ended
  → its rename into new/
  → a flush that began after the rename and ended: the next batch's syncfs,
    or an fsync of new/
  → the answer written to the FastCGI connection.

strace prints a call whose completion is interleaved with another thread's
call as `<unfinished ...>` then `<... resumed>`; a line printed whole had no
traced event of another thread between its start and its end. So the order
of the lines is the order of the events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import HOOKGUARD_BIN, make_maildir, stop, tail, wait_hookguard_ready
from test_lifecycle import fcgi_delivery

STRACE = shutil.which("strace")
CLIENTS = 16
PER_CLIENT = 12

LINE = re.compile(r"^(?P<pid>\d+)\s+(?:<\.\.\. (?P<resumed>\w+) resumed>|(?P<call>\w+)\()(?P<rest>.*)$")


@dataclass
class Call:
    pid: int
    name: str
    text: str  # arguments and result, as strace printed them (both halves when split)
    start: int  # line index of its entry
    end: int | None = None  # line index of its return (None: never returned in the trace)


def parse(trace: str) -> list[Call]:
    calls: list[Call] = []
    pending: dict[int, Call] = {}
    for index, line in enumerate(trace.splitlines()):
        m = LINE.match(line)
        if not m:
            continue
        pid = int(m["pid"])
        if m["resumed"]:
            call = pending.pop(pid, None)
            if call is not None:
                call.text += m["rest"]
                call.end = index
            continue
        call = Call(pid, m["call"], m["rest"], index)
        if m["rest"].endswith("<unfinished ...>"):
            pending[pid] = call
        else:
            call.end = index
        calls.append(call)
    return calls


def returned_ok(call: Call) -> bool:
    return call.end is not None and re.search(r"\)\s+=\s+\d+", call.text) is not None


@pytest.fixture
def traced(tmp_path_factory):
    if STRACE is None:
        pytest.skip("strace is not installed (scripts/lib/install-deps test installs it)")
    work = Path(tempfile.mkdtemp(prefix="hg-order-"))
    sock, log, trace = work / "hg.sock", work / "hookguard.log", work / "trace"
    spool = work / "spool"
    make_maildir(spool)
    logfile = open(log, "ab")
    # LeakSanitizer cannot run under ptrace: the traced (ASan) hookguard's exit
    # would otherwise write a report of that, failing scripts/test's check.
    env = dict(os.environ, ASAN_OPTIONS=":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"])))
    proc = subprocess.Popen(
        [STRACE, "-f", "-qq", "-yy", "-s", "400", "-o", str(trace),
         "-e", "trace=openat,write,close,sync_file_range,syncfs,fsync,fdatasync,rename,renameat,renameat2",
         str(HOOKGUARD_BIN), "serve", "--no-supervisor", "--listen", f"unix:{sock}", "--workers", "16"],
        stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile, cwd=work, env=env)
    logfile.close()
    try:
        wait_hookguard_ready(proc, sock, log, timeout=30)
        yield work, sock, spool, trace, log
    finally:
        # SIGTERM to strace would only detach it and leave hookguard running:
        # hookguard (strace's child) is stopped, and strace ends with it.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            stop(proc, signal.SIGKILL, 5)
        shutil.rmtree(work, ignore_errors=True)


def test_every_200_follows_a_file_flush_a_rename_and_a_directory_flush(traced):
    work, sock, spool, trace, log = traced
    answered: dict[str, bytes] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(PER_CLIENT):
            body = json.dumps({"client": n, "delivery": i, "pad": "x" * 1200}).encode()
            try:
                r = fcgi_delivery(sock, spool, body)
            except OSError as e:
                with lock:
                    failures.append(f"client {n}: {e}")
                return
            with lock:
                if r.status == 200:
                    answered[json.loads(r.body)["id"]] = body
                else:
                    failures.append(f"client {n}: {r.status} {r.body[:200]!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "clients still waiting after 120 s"
    assert not failures, f"{failures[:5]}\n{tail(log)}"
    assert len(answered) == CLIENTS * PER_CLIENT

    calls = parse(trace.read_text(errors="replace"))
    filesystem_flushes = [c for c in calls if c.name == "syncfs" and returned_ok(c)]
    directory_flushes = [c for c in calls if c.name in ("fsync", "fdatasync") and returned_ok(c)
                         and re.match(r"\d+<[^>]*/new>", c.text)]
    assert filesystem_flushes, "no syncfs in the trace"

    def first(predicate, after: int = -1) -> Call | None:
        return next((c for c in calls if c.start > after and predicate(c)), None)

    for delivery_id, body in answered.items():
        name = f"{delivery_id}.json"
        staged = first(lambda c: c.name == "openat" and f"/tmp/{name}" in c.text and "O_CREAT" in c.text)
        assert staged is not None and staged.end is not None, f"{name}: no create in tmp/ traced"
        fd = int(re.search(r"=\s+(\d+)<", staged.text)[1])
        closed = first(lambda c: c.pid == staged.pid and c.name == "close" and c.text.startswith(f"{fd}<"),
                       after=staged.start)
        assert closed is not None and closed.end is not None, f"{name}: its staged file was never closed"
        renamed = first(lambda c: c.name.startswith("rename") and f"/tmp/{name}" in c.text
                        and f"/new/{name}" in c.text, after=closed.end)
        assert renamed is not None and returned_ok(renamed), f"{name}: no rename into new/ after its close"
        answer = first(lambda c: c.name == "write" and "UNIX" in c.text
                       and delivery_id in c.text, after=renamed.start)
        assert answer is not None, f"{name}: no answer carrying its id on the FastCGI connection"

        assert any(closed.end < f.start and f.end < renamed.start for f in filesystem_flushes), \
            f"{name}: renamed into new/ with no syncfs between its close and its rename"
        assert any(renamed.end < f.start and f.end < answer.start for f in filesystem_flushes + directory_flushes), \
            f"{name}: answered with no flush between its rename and its answer"
        assert (spool / "new" / name).exists()

    # How many deliveries a flush serves depends on how fast the clients are
    # (under a sanitizer and strace, batches are small): GroupSyncTests checks
    # the sharing with a slow flush, and bench/run counts device flushes.
    assert not list((spool / "tmp").iterdir()), "files left in tmp/"
