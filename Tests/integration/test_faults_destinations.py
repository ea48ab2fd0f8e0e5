"""Fault matrix for the forwarding destinations: a Unix socket reader (with
and without acknowledgement, with and without a spool to fall back to) and
JetStream (a real nats-server), each absent at start, dying mid-run and
coming back, and hanging (a reader that accepts and never reads; a SIGSTOPped
nats-server; a TCP listener on the NATS port that never speaks).

For `serve` (4 workers, spoken to directly over FastCGI) and for plain CGI:
every request is answered within its bound (the destination's timeout + 2 s),
200 only for what was stored or forwarded, else the fallback or 503; a
spool-only location of the same process answers in under 1 s throughout;
nothing acknowledged is lost or doubled; the destination is used again once
the fault ends, and `hookguard_destination_up` shows it going 0 then 1."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fcgi_client
import signing
from harness import (HERE, HOOKGUARD_BIN, check_binary, free_port, make_maildir, port_open,
                     start_hookguard, stop, tail, unix_socket_accepts, wait_hookguard_ready,
                     wait_until)

SECRET = "fault-secret-7d1e"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
WORKERS = 4
SOCKET_TIMEOUT_MS = 500
NATS_TIMEOUT_MS = 1000
BACKOFF_MS = 300
MARGIN = 2.0  # seconds an answer may take beyond its destination's timeout
SPOOL_ONLY_BOUND = 1.0


# --------------------------------------------------------------------------
# the destinations


class Reader:
    """socket_reader.py (acknowledging or not) on its own process."""

    def __init__(self, path: Path, log: Path, mode: str):
        self.path, self.log, self.mode = path, log, mode
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "socket_reader.py"), str(path), str(log), mode],
            stdin=subprocess.DEVNULL)
        assert wait_until(lambda: unix_socket_accepts(path), 10), "reader did not start"

    def kill(self) -> None:
        stop(self.process, signal.SIGKILL, 5)
        self.path.unlink(missing_ok=True)

    def ids(self) -> list[str]:
        if not self.log.exists():
            return []
        return [json.loads(raw.split(b"\t", 1)[1])["id"] for raw in self.log.read_bytes().splitlines()]


class Holder:
    """Accepts connections on a listening socket and holds them without
    reading or writing a byte, until `stop`."""

    def __init__(self, listener: socket.socket):
        self.listener = listener
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except (socket.timeout, OSError):
                continue

    def stop(self) -> list[bytes]:
        """Closes everything; returns what each connection held, whole lines first."""
        if self.stopping.is_set():
            return []
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()
        lines = []
        for conn in self.held:
            conn.settimeout(0.5)
            data = b""
            try:
                while chunk := conn.recv(1 << 20):
                    data += chunk
            except OSError:
                pass  # nothing more now: the rest is a line cut off
            lines += data.splitlines(keepends=True)
            conn.close()
        return lines


class StalledReader(Holder):
    """A reader on a Unix socket that accepts and never reads. `stop` reads
    what the kernel holds for it: the whole lines are what hookguard handed over."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[bytes] = []
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        super().__init__(listener)

    def stop(self) -> list[bytes]:
        self.lines += super().stop()
        self.path.unlink(missing_ok=True)
        return self.lines

    def ids(self) -> list[str]:
        return [json.loads(line)["id"] for line in self.lines if line.endswith(b"\n")]


class SilentListener(Holder):
    """A TCP listener on the NATS port that accepts and never says a word."""

    def __init__(self, port: int):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        super().__init__(listener)


class NatsServer:
    """nats-server -js on loopback; its store survives a restart."""

    def __init__(self, world: "World", port: int):
        self.world, self.port = world, port
        self.url = f"nats://127.0.0.1:{port}"
        self.store = world.path / f"nats-{port}"
        self.process = None

    def start(self) -> "NatsServer":
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=open(self.world.path / "nats-server.log", "ab"))
        assert wait_until(lambda: port_open(self.port), 10), "nats-server did not start"
        return self

    def add_stream(self) -> None:
        self.tool("add-stream", "HOOKS", "hooks.>", "120")

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
        stop(self.process, signal.SIGKILL, 5)
        assert wait_until(lambda: not port_open(self.port), 5)

    def tool(self, *args: str) -> str:
        r = subprocess.run([str(self.world.nats_tool), self.url, "", *args], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def ids(self) -> list[str]:
        """hookguard's id of every message in the stream, in order."""
        return [json.loads(line)["headers"]["Hookguard-Id"] for line in self.tool("dump", "HOOKS").splitlines()]


# --------------------------------------------------------------------------
# the world: a hookguard serve, its spools, and how to talk to it


class World:
    def __init__(self, path: Path):
        self.path = path
        self.socket = path / "hg.sock"
        self.log = path / "hookguard.log"
        self.metrics_port = free_port()
        self.nats_tool = path / "nats_tool"
        self.process = None

    def start(self) -> None:
        self.process = start_hookguard(self.socket, self.log, self.path, workers=WORKERS,
                                       extra_args=["--metrics-listen", f"127.0.0.1:{self.metrics_port}"])
        wait_hookguard_ready(self.process, self.socket, self.log)

    def spool(self, name: str) -> Path:
        path = self.path / "spool" / name
        make_maildir(path)
        return path

    def params(self, location: str, body: bytes, **destination: str) -> dict[str, str]:
        return {
            "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "SCRIPT_NAME": location, "REQUEST_URI": location, "DOCUMENT_URI": location, "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost", "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": SECRET,
            "HOOKGUARD_LOCATION": location,
            "HTTP_X_SIGNATURE": signing.signature("x-signature", SECRET, body),
            **destination,
        }

    def post(self, location: str, body: bytes, **destination: str) -> "Answer":
        started = time.monotonic()
        r = fcgi_client.request(str(self.socket), self.params(location, body, **destination), body, timeout=30)
        return Answer(r.status, r.headers, r.body, time.monotonic() - started)

    def destination_up(self, destination: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        pattern = re.compile(r'^hookguard_destination_up\{destination="%s"\} (\S+)$' % re.escape(destination), re.M)
        m = pattern.search(text)
        return float(m.group(1)) if m else None


class Answer:
    def __init__(self, status: int, headers: dict, body: bytes, seconds: float):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    @property
    def id(self) -> str:
        assert self.status == 200, self
        return json.loads(self.body)["id"]

    def __repr__(self) -> str:
        return f"<{self.status} in {self.seconds:.3f}s {self.body[:120]!r}>"


@pytest.fixture(scope="module")
def world():
    check_binary()
    path = Path(tempfile.mkdtemp(prefix="hg-fault-"))  # short: Unix socket paths fit in 108 bytes
    w = World(path)
    subprocess.run(["cc", "-O1", "-o", str(w.nats_tool), str(HERE / "nats_tool.c"),
                    *subprocess.run(["pkg-config", "--cflags", "--libs", "libnats"], capture_output=True,
                                    text=True, check=True).stdout.split()], check=True)
    w.start()
    yield w
    code = stop(w.process, signal.SIGTERM, 15)
    shutil.rmtree(path, ignore_errors=True)
    assert code == 0, f"hookguard did not exit 0 on SIGTERM (got {code})"


@pytest.fixture
def cleanup():
    """Stops whatever a test started, in reverse order, even when it fails."""
    stops = []
    yield stops.append
    for stop_one in reversed(stops):
        stop_one()


class SpoolOnlyProbe:
    """Posts to a spool-only location of the same hookguard every 20 ms, from
    the start of a fault until its end (at least three times), and records
    how long each answer took."""

    def __init__(self, w: World):
        self.w = w
        self.spool = w.spool("probe")
        self.times: list[float] = []
        self.failures: list[Answer] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SpoolOnlyProbe":
        self.thread.start()
        return self

    def _run(self) -> None:
        for i in range(2000):
            if i and self.stopping.wait(0.02) and len(self.times) >= 3:
                return
            a = self.w.post("/probe", b'{"probe":%d}' % i, HOOKGUARD_SPOOL=str(self.spool))
            self.times.append(a.seconds)
            if a.status != 200 or not (self.spool / "new" / f"{a.id}.json").exists():
                self.failures.append(a)

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the spool-only probe never finished"

    def check(self) -> None:
        assert not self.failures, f"spool-only location failed: {self.failures[:3]}"
        assert len(self.times) >= 3, "the spool-only probe hardly ran"
        slowest = max(self.times)
        inside = [float(m.group(1)) for m in re.finditer(r"duration_ms=([0-9.]+).*uri=/probe\b",
                                                           self.w.log.read_text(errors="replace"))]
        assert slowest < SPOOL_ONLY_BOUND, \
            f"spool-only location took {slowest:.3f}s while another destination failed ({len(self.times)} " \
            f"probes; the slowest inside hookguard took {max(inside, default=0):.1f} ms)"


MEASURED: dict[str, list[float]] = {}


def record(case: str, answers: list[Answer]) -> None:
    """Answer times per case, printed at the end (pytest -s) for the issue's matrix."""
    MEASURED.setdefault(case, []).extend(a.seconds for a in answers)


@pytest.fixture(scope="module", autouse=True)
def print_matrix():
    yield
    if os.environ.get("FAULT_MATRIX_OUT"):
        with open(os.environ["FAULT_MATRIX_OUT"], "a") as f:
            for case, times in MEASURED.items():
                f.write(f"{case}\t{len(times)}\t{min(times):.3f}\t{max(times):.3f}\n")


def transitions(world: World, destination: str) -> list[str]:
    """The breaker's logged states for one destination, in order."""
    states = []
    for line in world.log.read_text(errors="replace").splitlines():
        if "msg=destination" in line and f"destination={destination} " in line + " ":
            m = re.search(r"\bstate=(\w+)", line)
            states.append(m.group(1) if m else "?")
    return states


def request_details(world: World, location: str) -> list[str]:
    return [line for line in world.log.read_text(errors="replace").splitlines()
            if "msg=request" in line and f"uri={location} " in line + " "]


def cut_off_count(world: World, location: str) -> int:
    """Requests to `location` the breaker answered without trying the destination."""
    return sum("cut off:" in line for line in request_details(world, location))


def not_connected_count(world: World, location: str) -> int:
    return sum("not connected" in line for line in request_details(world, location))


def check_bounded(answers: list[Answer], timeout_ms: int) -> None:
    bound = timeout_ms / 1000 + MARGIN
    slow = [a for a in answers if a.seconds > bound]
    assert not slow, f"answers beyond {bound}s: {slow[:5]}"


def split(answers: list[Answer], spool: Path | None) -> tuple[list[str], list[str]]:
    """(ids answered 200 and not in the spool, ids answered 200 and in the spool);
    every other answer is a 503 with Retry-After, and only without a spool."""
    forwarded, spooled = [], []
    for a in answers:
        if a.status == 200:
            (spooled if spool and (spool / "new" / f"{a.id}.json").exists() else forwarded).append(a.id)
        else:
            assert a.status == 503 and a.headers.get("retry-after"), a
            assert spool is None, f"a location with a spool answered {a}"
    return forwarded, spooled


def no_doubles(ids: list[str], where: str) -> None:
    assert len(ids) == len(set(ids)), f"a delivery is twice in {where}"


# --------------------------------------------------------------------------
# the socket reader under `serve`


SOCKET_CASES = [("ack", True), ("ack", False), ("no-ack", True), ("no-ack", False)]


def socket_destination(path: Path, mode: str, spool: Path | None) -> dict[str, str]:
    d = {"HOOKGUARD_SOCKET": str(path), "HOOKGUARD_SOCKET_TIMEOUT_MS": str(SOCKET_TIMEOUT_MS),
         "HOOKGUARD_BREAKER_BACKOFF_MS": str(BACKOFF_MS)}
    if mode == "no-ack":
        d["HOOKGUARD_SOCKET_ACK"] = "0"
    if spool:
        d["HOOKGUARD_SPOOL"] = str(spool)
    return d


def case_name(mode: str, with_spool: bool) -> str:
    return f"{mode}-{'spool' if with_spool else 'nospool'}"


@pytest.mark.parametrize("mode,with_spool", SOCKET_CASES, ids=[case_name(*c) for c in SOCKET_CASES])
def test_socket_absent_then_dying_then_back(world, cleanup, mode, with_spool):
    name = f"sock-{case_name(mode, with_spool)}"
    path = world.path / f"{name}.sock"
    spool = world.spool(name) if with_spool else None
    destination = socket_destination(path, mode, spool)
    label = f"unix:{path}"
    where = "spool" if spool else "no spool"

    def while_down(fault: str) -> list[Answer]:
        """The fallback, or 503, and the destination shown down."""
        got = [world.post(f"/{name}", b'{"%s":%d}' % (fault.encode(), i), **destination) for i in range(5)]
        forwarded, _ = split(got, spool)
        assert not forwarded, f"a 200 for a delivery that went nowhere ({fault})"
        assert world.destination_up(label) == 0
        record(f"socket {mode}, {where}: {fault}", got)
        return got

    def once_up(number: int) -> tuple[Reader, list[Answer]]:
        """A reader starts: used again after the back-off, by the breaker's probe."""
        reader = Reader(path, world.path / f"{name}-{number}.log", "ack" if mode == "ack" else "plain")
        cleanup(reader.kill)
        time.sleep(BACKOFF_MS / 1000 + 0.1)
        got = [world.post(f"/{name}", b'{"up":%d}' % i, **destination) for i in range(5)]
        forwarded, spooled = split(got, spool)
        assert len(forwarded) == 5 and not spooled, got
        assert world.destination_up(label) == 1
        assert wait_until(lambda: len(reader.ids()) == 5, 5)  # without ack: read by now
        return reader, got

    with SpoolOnlyProbe(world) as probe:
        answers = while_down("absent")
        first, live = once_up(1)
        first.kill()  # dies mid-run (between requests), then comes back
        answers += live + while_down("died")
        second, back = once_up(2)
        answers += back
    probe.check()
    check_bounded(answers, SOCKET_TIMEOUT_MS)

    assert transitions(world, label) == ["down", "probing", "up", "down", "probing", "up"], tail(world.log)
    # Every 200 is in one reader's log or the spool, once.
    read = first.ids() + second.ids()
    no_doubles(read, "the readers' logs")
    spooled = sorted(os.listdir(spool / "new")) if spool else []
    for a in answers:
        if a.status == 200:
            where = (a.id in read) + (f"{a.id}.json" in spooled)
            assert where == 1, f"delivery {a.id} answered 200 is in {where} places"


@pytest.mark.parametrize("mode,with_spool", SOCKET_CASES, ids=[case_name(*c) for c in SOCKET_CASES])
def test_socket_reader_that_never_reads(world, cleanup, mode, with_spool):
    """48 deliveries from 16 senders on 4 workers to a reader that accepts and
    never reads. With ack: none is answered 200 by the reader, most are cut
    off at once. Without ack a 200 only means the kernel took the line: each
    such line is whole in what the reader's connections hold."""
    name = f"stall-{case_name(mode, with_spool)}"
    path = world.path / f"{name}.sock"
    spool = world.spool(name) if with_spool else None
    destination = socket_destination(path, mode, spool)
    stalled = StalledReader(path)
    cleanup(stalled.stop)
    body = b'{"pad":"' + b"s" * 60000 + b'"}'  # a few fill a connection's socket buffer

    with SpoolOnlyProbe(world) as probe:
        with ThreadPoolExecutor(16) as pool:
            hung = list(pool.map(lambda i: world.post(f"/{name}", body, **destination), range(48)))
    probe.check()
    check_bounded(hung, SOCKET_TIMEOUT_MS)
    record(f"socket {mode}, {'spool' if spool else 'no spool'}: hung", hung)
    forwarded, spooled = split(hung, spool)
    stalled.stop()
    held = stalled.ids()
    no_doubles(held, "the stalled reader's connections")
    if mode == "ack":
        assert not forwarded, "200 without the reader's acknowledgement"
        assert transitions(world, f"unix:{path}")[:1] == ["down"]
        assert cut_off_count(world, f"/{name}") > len(hung) // 2, "the hung reader was not cut off: most requests waited"
    else:
        assert set(forwarded) <= set(held), "a 200 for a line the reader's connection does not hold"

    # It recovers: a working reader on the same path is used again.
    reader = Reader(path, world.path / f"{name}.log", "ack" if mode == "ack" else "plain")
    cleanup(reader.kill)
    time.sleep(BACKOFF_MS / 1000 + 0.1)
    back = [world.post(f"/{name}", b'{"back":%d}' % i, **destination) for i in range(3)]
    assert split(back, spool) == ([a.id for a in back], []), back
    assert wait_until(lambda: len(reader.ids()) == 3, 5) and reader.ids() == [a.id for a in back]
    assert world.destination_up(f"unix:{path}") == 1


# --------------------------------------------------------------------------
# JetStream under `serve`


def nats_destination(url: str, spool: Path | None) -> dict[str, str]:
    d = {"HOOKGUARD_NATS_URL": url, "HOOKGUARD_NATS_SUBJECT": "hooks.{scheme}",
         "HOOKGUARD_NATS_TIMEOUT_MS": str(NATS_TIMEOUT_MS), "HOOKGUARD_BREAKER_BACKOFF_MS": str(BACKOFF_MS)}
    if spool:
        d["HOOKGUARD_SPOOL"] = str(spool)
    return d


def assert_stored_once(nats: NatsServer, answers: list[Answer], spool: Path | None) -> None:
    """Every 200 is in the stream or the spool; no message twice in the stream."""
    stream = nats.ids()
    no_doubles(stream, "the stream")
    spooled = set(os.listdir(spool / "new")) if spool else set()
    for a in answers:
        if a.status == 200:
            assert a.id in stream or f"{a.id}.json" in spooled, f"{a.id} answered 200 is nowhere"


def used_again(world: World, name: str, destination: dict, nats: NatsServer, spool: Path | None,
               count: int = 5) -> list[Answer]:
    """Once the fault ends, libnats connects in the background and the
    breaker's probe finds it: deliveries reach the stream again."""
    assert wait_until(lambda: world.post(f"/{name}", b'{"probe":1}', **destination).status == 200
                      and world.destination_up(nats.url) == 1, 15), tail(world.log)
    got = [world.post(f"/{name}", b'{"again":%d}' % i, **destination) for i in range(count)]
    forwarded, spooled = split(got, spool)
    assert len(forwarded) == count and not spooled, got
    return got


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "nospool"])
def test_nats_absent_then_dying_then_back(world, cleanup, with_spool):
    name = f"nats-{'spool' if with_spool else 'nospool'}"
    spool = world.spool(name) if with_spool else None
    nats = NatsServer(world, free_port())
    cleanup(nats.kill)
    destination = nats_destination(nats.url, spool)
    answers: list[Answer] = []

    with SpoolOnlyProbe(world) as probe:
        with ThreadPoolExecutor(8) as pool:
            absent = list(pool.map(lambda i: world.post(f"/{name}", b'{"absent":%d}' % i, **destination), range(16)))
        forwarded, _ = split(absent, spool)
        assert not forwarded
        assert world.destination_up(nats.url) == 0
        assert transitions(world, nats.url)[:1] == ["down"]
        record(f"nats, {'spool' if spool else 'no spool'}: absent", absent)
        answers += absent

        nats.start()
        nats.add_stream()
        live = used_again(world, name, destination, nats, spool)
        answers += live

        nats.kill()
        dead = [world.post(f"/{name}", b'{"dead":%d}' % i, **destination) for i in range(6)]
        forwarded, _ = split(dead, spool)
        assert not forwarded, "a 200 from a dead NATS that is in no spool"
        assert world.destination_up(nats.url) == 0
        record(f"nats, {'spool' if spool else 'no spool'}: died", dead)
        answers += dead

        nats.start()
        back = used_again(world, name, destination, nats, spool)
        answers += back
    probe.check()
    check_bounded(answers, NATS_TIMEOUT_MS)
    assert transitions(world, nats.url)[-1] == "up"
    assert "down" in transitions(world, nats.url)[1:]
    assert_stored_once(nats, answers, spool)
    assert set(nats.ids()) >= {a.id for a in live + back}


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "nospool"])
def test_nats_server_stopped_mid_run(world, cleanup, with_spool):
    """SIGSTOP: connected, then nothing answers and nothing is read: 900 KB
    bodies (without a spool), then 24 deliveries from 8 senders on 4 workers."""
    name = f"natsstop-{'spool' if with_spool else 'nospool'}"
    spool = world.spool(name) if with_spool else None
    nats = NatsServer(world, free_port()).start()
    cleanup(nats.kill)
    nats.add_stream()
    destination = nats_destination(nats.url, spool)
    assert world.post(f"/{name}", b'{"before":1}', **destination).status == 200
    big = b'{"pad":"' + b"n" * 900_000 + b'"}'

    os.kill(nats.process.pid, signal.SIGSTOP)
    hung: list[Answer] = []
    try:
        with SpoolOnlyProbe(world) as probe:
            if not with_spool:
                # Large bodies, two at a time and none cut off: they fill the TCP
                # buffers until a write meets libnats' write deadline, which drops
                # the connection (a stopped server never closes it).
                heavy = dict(destination, HOOKGUARD_BREAKER_FAILURES="100")
                with ThreadPoolExecutor(2) as pool:
                    hung += pool.map(lambda i: world.post(f"/{name}", big, **heavy), range(10))
                record("nats, no spool: SIGSTOP, 900 KB bodies, not cut off", hung)
                assert not_connected_count(world, f"/{name}") > 0, "no write met its deadline"
            with ThreadPoolExecutor(8) as pool:
                hung += pool.map(lambda i: world.post(f"/{name}", b'{"small":%d}' % i, **destination), range(24))
            # Two at a time wait on it (half the workers); three failures in a row cut it off.
            def cut_off() -> bool:
                hung.append(world.post(f"/{name}", b'{"more":1}', **destination))
                return world.destination_up(nats.url) == 0
            assert wait_until(cut_off, 10), transitions(world, nats.url)
        probe.check()
    finally:
        os.kill(nats.process.pid, signal.SIGCONT)
    check_bounded(hung, NATS_TIMEOUT_MS)
    record(f"nats, {'spool' if spool else 'no spool'}: SIGSTOP", hung)
    forwarded, _ = split(hung, spool)
    assert not forwarded, "200 from a stopped server"

    after = used_again(world, name, destination, nats, spool, count=1)
    assert_stored_once(nats, hung + after, spool)


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "nospool"])
def test_nats_port_that_never_speaks(world, cleanup, with_spool):
    name = f"natssilent-{'spool' if with_spool else 'nospool'}"
    spool = world.spool(name) if with_spool else None
    port = free_port()
    silent = SilentListener(port)
    cleanup(silent.stop)
    destination = nats_destination(f"nats://127.0.0.1:{port}", spool)

    with SpoolOnlyProbe(world) as probe:
        with ThreadPoolExecutor(16) as pool:
            hung = list(pool.map(lambda i: world.post(f"/{name}", b'{"silent":%d}' % i, **destination), range(32)))
    probe.check()
    check_bounded(hung, NATS_TIMEOUT_MS)
    record(f"nats, {'spool' if spool else 'no spool'}: silent port", hung)
    forwarded, _ = split(hung, spool)
    assert not forwarded
    # One request waited for the connection attempt; the others did not wait for it.
    waited = len(hung) - cut_off_count(world, f"/{name}") - not_connected_count(world, f"/{name}")
    assert waited <= 2, f"{waited} requests waited on the silent port"

    # A real server takes the port over: used again.
    silent.stop()
    nats = NatsServer(world, port).start()
    cleanup(nats.kill)
    nats.add_stream()
    after = used_again(world, name, destination, nats, spool, count=1)
    assert after[0].id in nats.ids()


# --------------------------------------------------------------------------
# plain CGI: one bounded attempt per process


def cgi(world: World, location: str, body: bytes, **destination: str) -> Answer:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOOKGUARD_") and k not in ("LISTEN_FDS", "LISTEN_PID")}
    env.update(world.params(location, body, **destination))
    started = time.monotonic()
    with open(world.path / "cgi.log", "ab") as log:
        r = subprocess.run([str(HOOKGUARD_BIN)], env=env, input=body, stdout=subprocess.PIPE, stderr=log,
                           timeout=30)
    seconds = time.monotonic() - started
    assert r.returncode == 0, f"CGI exit {r.returncode}\n{tail(world.path / 'cgi.log')}"
    head, _, out = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].removeprefix("Status: ").split()[0])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return Answer(status, headers, out, seconds)


CGI_FAULTS = ["socket-absent", "socket-stalled", "nats-absent", "nats-silent", "nats-stopped"]


@pytest.mark.parametrize("with_spool", [True, False], ids=["spool", "nospool"])
@pytest.mark.parametrize("fault", CGI_FAULTS)
def test_cgi_gets_one_bounded_attempt(world, cleanup, fault, with_spool):
    name = f"cgi-{fault}-{'spool' if with_spool else 'nospool'}"
    spool = world.spool(name) if with_spool else None
    port = free_port()
    path = world.path / f"{name}.sock"
    nats = None
    if fault.startswith("socket"):
        destination, timeout_ms = socket_destination(path, "ack", spool), SOCKET_TIMEOUT_MS
        if fault == "socket-stalled":
            stalled = StalledReader(path)
            cleanup(stalled.stop)
    else:
        destination, timeout_ms = nats_destination(f"nats://127.0.0.1:{port}", spool), NATS_TIMEOUT_MS
        if fault == "nats-silent":
            silent = SilentListener(port)
            cleanup(silent.stop)
        if fault == "nats-stopped":
            nats = NatsServer(world, port).start()
            cleanup(nats.kill)
            nats.add_stream()
            os.kill(nats.process.pid, signal.SIGSTOP)
    answers = [cgi(world, f"/{name}", b'{"cgi":"fault"}', **destination)]
    check_bounded(answers, timeout_ms)
    record(f"CGI {fault}, {'spool' if spool else 'no spool'}", answers)
    forwarded, spooled = split(answers, spool)
    assert not forwarded

    # The fault ends: the next CGI request uses the destination.
    if fault == "socket-stalled":
        stalled.stop()
    if fault == "nats-silent":
        silent.stop()
    if fault.startswith("socket"):
        reader = Reader(path, world.path / f"{name}.log", "ack")
        cleanup(reader.kill)
    elif nats:
        os.kill(nats.process.pid, signal.SIGCONT)
    else:
        nats = NatsServer(world, port).start()
        cleanup(nats.kill)
        nats.add_stream()
    ok = cgi(world, f"/{name}", b'{"cgi":"back"}', **destination)
    assert split([ok], spool) == ([ok.id], []), ok
    if nats:
        assert_stored_once(nats, answers + [ok], spool)
        assert ok.id in nats.ids()
    else:
        assert reader.ids() == [ok.id]
