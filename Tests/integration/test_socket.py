"""Forwarding to a Unix socket reader: framing, order, ack, fallback, restarts."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import signing
from checks import accepted_id
from harness import HERE, LITERAL_SECRET, stop, unix_socket_accepts, wait_until


# HOOKGUARD_BREAKER_BACKOFF_MS of the /t/socket* locations: a reader started
# this long after a failure is tried again by the next delivery.
BREAKER_BACKOFF = 0.1


class Reader:
    """socket_reader.py running as its own process on PREFIX/run/reader.sock."""

    def __init__(self, env, mode: str):
        self.path = env.path / "run" / "reader.sock"
        self.log = env.path / f"reader-{mode}-{time.monotonic_ns()}.log"
        self.mode = mode
        self.process = None

    def start(self) -> "Reader":
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "socket_reader.py"), str(self.path), str(self.log), self.mode],
            stdin=subprocess.DEVNULL)
        assert wait_until(lambda: unix_socket_accepts(self.path), 10), "reader did not start"
        time.sleep(BREAKER_BACKOFF * 1.5)  # past the back-off of a fault an earlier test left
        return self

    def kill(self) -> None:
        stop(self.process, signal.SIGKILL, 5)
        if self.path.exists():
            self.path.unlink()

    def lines(self) -> list[tuple[int, dict]]:
        """(connection number, envelope) for every whole line the reader got."""
        if not self.log.exists():
            return []
        result = []
        for raw in self.log.read_bytes().splitlines(keepends=True):
            connection, line = raw.split(b"\t", 1)
            assert line.endswith(b"\n")
            result.append((int(connection), json.loads(line)))
        return result

    def wait_lines(self, count: int, timeout: float = 10) -> list[tuple[int, dict]]:
        assert wait_until(lambda: len(self.lines()) >= count, timeout), \
            f"reader got {len(self.lines())} lines, expected {count}"
        return self.lines()


@pytest.fixture
def reader(env):
    started = []

    def start(mode: str) -> Reader:
        r = Reader(env, mode).start()
        started.append(r)
        return r

    yield start
    for r in started:
        r.kill()


def post(env, path: str, body: bytes) -> "Response":
    headers = {"Content-Type": "application/json"}
    headers.update(signing.sign("x-signature", LITERAL_SECRET, body))
    return env.post(path, body, headers)


def envelope_body(envelope: dict) -> bytes:
    if "body" in envelope:
        return envelope["body"].encode()
    return base64.b64decode(envelope["body_base64"])


def test_deliveries_arrive_whole_byte_exact_and_in_order(env, reader):
    r = reader("plain")
    bodies = [b'{"n":%d,"text":"line\\nbreak"}' % i for i in range(20)]
    bodies += [bytes(range(0x20)) + b'"\\ \xc3\xa9', b"\xff\xfe binary", b""]
    ids = [accepted_id(env, post(env, "/t/socket", b)) for b in bodies]
    lines = r.wait_lines(len(bodies))
    assert [e["id"] for _, e in lines] == ids, "deliveries out of order or missing"
    for (_, envelope), body in zip(lines, bodies):
        assert envelope_body(envelope) == body
        assert envelope["scheme"] == "x-signature" and envelope["uri"] == "/t/socket"
    # Sequential requests: the same worker connection is reused, not one per delivery.
    assert len({c for c, _ in lines}) < len(bodies)


def test_concurrent_deliveries_never_interleave_on_a_connection(env, reader):
    r = reader("plain")
    bodies = [b'{"concurrent":%d,"pad":"%s"}' % (i, b"p" * (i * 997 % 70000)) for i in range(100)]

    def send(body: bytes) -> str:
        # Half the workers may wait on the reader at once; a sender retries the
        # 503 of a delivery cut off beyond that (no spool here to take it).
        for _ in range(100):
            r = post(env, "/t/socket", body)
            if r.status != 503:
                break
            time.sleep(0.01)
        return accepted_id(env, r)

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(send, bodies))
    lines = r.wait_lines(len(bodies))  # each parsed as one whole JSON line
    assert sorted(e["id"] for _, e in lines) == sorted(ids), "a delivery missing or doubled"
    assert sorted(envelope_body(e) for _, e in lines) == sorted(bodies)
    assert len({c for c, _ in lines}) <= 16, "more connections than concurrent workers"


def test_ack_mode_answers_after_the_reader_acknowledged(env, reader):
    r = reader("ack")
    delivery_id = accepted_id(env, post(env, "/t/socket-ack", b'{"ack":true}'))
    assert [e["id"] for _, e in r.lines()] == [delivery_id], "200 before the reader had the line"


@pytest.mark.parametrize("mode", ["never-ack", "refuse", "close-mid-line"])
def test_ack_failures_fall_back_to_the_spool(env, reader, mode):
    reader(mode)
    mark = env.log_mark()
    body = b'{"fallback":"%s"}' % mode.encode()
    delivery_id = accepted_id(env, post(env, "/t/socket-ack-spool", body))
    entry = env.read_entry("socket-ack-fallback", delivery_id)
    assert envelope_body(entry) == body
    env.assert_logged(mark, "reason=fell-back-to-spool", f"id={delivery_id}")
    env.assert_tmp_empty("socket-ack-fallback")


@pytest.mark.parametrize("mode", ["never-ack", "refuse", "close-mid-line"])
def test_ack_failures_without_spool_are_503(env, reader, mode):
    reader(mode)
    mark = env.log_mark()
    r = post(env, "/t/socket-ack", b'{"no":"spool"}')
    assert r.status == 503, r
    assert r.header("Retry-After"), r
    env.assert_logged(mark, "reason=socket-unavailable", "status=503")


def test_reader_closing_mid_line_without_ack_is_retried_then_503(env, reader):
    """Without ack, a hang-up is seen only while hookguard is still writing: a
    line larger than the socket's buffer (4 MiB) is cut off by the reader."""
    reader("close-mid-line")
    mark = env.log_mark()
    r = post(env, "/t/socket", b'{"a":"' + b"x" * (4 << 20) + b'"}')
    assert r.status == 503, r
    env.assert_logged(mark, "reason=socket-unavailable")


def test_reader_absent(env):
    assert not (env.path / "run" / "reader.sock").exists()
    mark = env.log_mark()
    r = post(env, "/t/socket", b'{"absent":1}')
    assert r.status == 503 and r.header("Retry-After"), r
    line = env.assert_logged(mark, "reason=socket-unavailable")
    assert "reader.sock" in line
    body = b'{"absent":2}'
    delivery_id = accepted_id(env, post(env, "/t/socket-spool", body))
    assert envelope_body(env.read_entry("socket-fallback", delivery_id)) == body


def test_a_restarted_reader_is_reconnected(env, reader):
    first = reader("plain")
    accepted_id(env, post(env, "/t/socket", b'{"before":1}'))
    first.wait_lines(1)
    first.kill()
    second = reader("plain")
    # The workers' idle connections went to the dead reader; each must notice and reconnect.
    ids = [accepted_id(env, post(env, "/t/socket", b'{"after":%d}' % i)) for i in range(10)]
    assert [e["id"] for _, e in second.wait_lines(10)] == ids


def test_reader_restarted_during_300_concurrent_deliveries(env, reader):
    """Every 200 is in the reader's log or the spool; none twice in the spool."""
    first = reader("ack")
    bodies = [b'{"restart":%d}' % i for i in range(300)]
    answers: dict[bytes, int] = {}
    ids: dict[bytes, str] = {}
    restarted = threading.Event()
    restarted_reader = []

    hundred_answered = threading.Event()

    def send(body: bytes):
        r = post(env, "/t/socket-ack-spool", body)
        answers[body] = r.status
        if r.status == 200:
            ids[body] = json.loads(r.body)["id"]
        if len(answers) >= 100:
            hundred_answered.set()

    def restart():
        hundred_answered.wait(30)
        first.kill()
        time.sleep(0.05)
        restarted_reader.append(reader("ack"))
        restarted.set()

    before = env.listing("socket-ack-fallback")
    restarter = threading.Thread(target=restart)
    restarter.start()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(send, bodies))
    restarter.join()
    assert restarted.is_set()

    assert set(answers.values()) == {200}, f"non-200 answers: {[s for s in answers.values() if s != 200][:5]}"
    read = set()
    for log in (first.log, restarted_reader[0].log):
        for raw in log.read_bytes().splitlines():
            read.add(envelope_body(json.loads(raw.split(b"\t", 1)[1])))
    spooled = []
    for name in env.listing("socket-ack-fallback") - before:
        spooled.append(envelope_body(json.loads((env.spool("socket-ack-fallback") / "new" / name).read_bytes())))
    assert len(spooled) == len(set(spooled)), "a delivery is twice in the spool"
    first_got = {envelope_body(e) for _, e in first.lines()}
    assert 0 < len(first_got) < len(bodies), "the restart did not fall in the middle of the run"
    missing = [b for b in bodies if b not in read and b not in set(spooled)]
    assert not missing, f"{len(missing)} deliveries answered 200 are nowhere: {missing[:3]}"
    env.assert_tmp_empty("socket-ack-fallback")
