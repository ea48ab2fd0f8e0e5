"""`hookguard drain --to-url`: real deliveries, spooled through the private
nginx, POSTed to a real HTTP service on loopback (http_service.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import signing
from checks import accepted_id
from drain_support import DRAIN_LOCATION, DRAIN_SPOOL, listing, make_spool, move_delivery, record_of
from harness import HOOKGUARD_BIN, check_binary, free_port, wait_until
from http_service import Answer, Service, closed_port, make_tls

EMPTY = {"new": [], "cur": [], "failed": []}


@pytest.fixture
def work(env):
    """A private spool; services and drains started here are stopped at the end."""
    check_binary()
    base = Path(tempfile.mkdtemp(prefix="drain-http-", dir=env.path))

    class Work:
        path = base
        spool = make_spool(base / "spool")
        services: list[Service] = []
        drains: list[subprocess.Popen] = []
        log = base / "drain.log"

        def service(self, answer=None, **kw) -> Service:
            s = Service(answer, **kw)
            self.services.append(s)
            return s

        def args(self, url: str, *options: str) -> list[str]:
            return [str(HOOKGUARD_BIN), "drain", str(self.spool), "--to-url", url, *options]

        def run(self, url: str, *options: str, timeout: float = 60) -> subprocess.CompletedProcess:
            r = subprocess.run(self.args(url, *options), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
            self.log.write_bytes(self.log.read_bytes() + r.stderr if self.log.exists() else r.stderr)
            return r

        def start(self, url: str, *options: str) -> subprocess.Popen:
            with open(self.log, "ab") as out:
                p = subprocess.Popen(self.args(url, *options), stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            self.drains.append(p)
            return p

        def text(self) -> str:
            return self.log.read_text(errors="replace") if self.log.exists() else ""

        def left(self) -> dict[str, list[str]]:
            return {sub: listing(self.spool, sub) for sub in ("new", "cur", "failed")}

        def deliver(self, bodies: list[bytes], content_types: list[str] | None = None, workers: int = 8) -> list[str]:
            """POSTs each body, signed, through nginx to /t/drain and moves the
            envelopes into this spool; returns the ids, oldest first."""
            types = content_types or ["application/json"] * len(bodies)

            def post(pair):
                body, content_type = pair
                headers = {"Content-Type": content_type, "X-Trace": "t-" + str(len(body)),
                           **signing.sign("x-signature", env.literal_secret, body)}
                return accepted_id(env, env.post(DRAIN_LOCATION, body, headers))

            with ThreadPoolExecutor(max_workers=workers) as pool:
                ids = list(pool.map(post, zip(bodies, types)))
            for delivery_id in ids:
                move_delivery(env, DRAIN_SPOOL, delivery_id, self.spool)
            return sorted(ids)

    w = Work()
    yield w
    for p in w.drains:
        if p.poll() is None:
            p.kill()
            p.wait()
    for s in w.services:
        s.close()
    shutil.rmtree(base, ignore_errors=True)


def out(r: subprocess.CompletedProcess) -> str:
    return f"\nexit {r.returncode}\n--- stderr\n{r.stderr.decode(errors='replace')[-3000:]}"


def envelope(spool_copy: dict, delivery_id: str) -> dict:
    return spool_copy[delivery_id]


def read_envelopes(spool: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (spool / "new").glob("*.json")}


def body_of(env_json: dict) -> bytes:
    return env_json["body"].encode() if "body" in env_json else base64.b64decode(env_json["body_base64"])


# --------------------------------------------------------------------------


def test_500_deliveries_arrive_once_byte_exact_with_their_headers_in_order(work):
    bodies = [json.dumps({"n": i, "name": "Zoë"}, ensure_ascii=False).encode() for i in range(496)]
    bodies += [b"", b"\xff\xfe\x00binary\x80", os.urandom(1 << 20), b"x" * (1 << 20)]
    types = ["application/json"] * 496 + ["application/octet-stream"] * 4
    ids = work.deliver(bodies, types)
    sent = read_envelopes(work.spool)
    service = work.service()
    r = work.run(service.url, "--timeout", "20s")
    assert r.returncode == 0, out(r)
    assert work.left() == EMPTY
    got = service.snapshot()
    assert [q.id for q in got] == ids, "each once, oldest first (concurrency 1)"
    for q in got:
        e = sent[q.id]
        assert q.body == body_of(e)
        assert q.path == "/hooks/in"
        for name, value in e["headers"].items():
            if name in ("content-length", "connection", "host"):
                continue
            assert q.header(name) == value, (name, q.headers)
            assert q.count(name) == 1
        assert q.header("Content-Length") == str(len(q.body))
        assert q.header("Hookguard-Scheme") == "x-signature"
        assert q.header("Hookguard-Attempt") == "1"
        assert q.header("Hookguard-Received-At") == e["received_at"]
        assert q.header("Expect") is None
    assert {q.header("Content-Type") for q in got} == {"application/json", "application/octet-stream"}
    assert b"" in {q.body for q in got} and b"\xff\xfe\x00binary\x80" in {q.body for q in got}
    # Kept alive: one connection carried them all.
    assert len({q.connection for q in got}) == 1, {q.connection for q in got}
    assert work.text().count("msg=delivered") == 500


def test_503_with_retry_after_twice_then_200_is_delivered_on_the_third_attempt(work):
    [delivery_id] = work.deliver([b'{"retry":"after"}'])

    def answer(request):
        if len(service.snapshot()) <= 2:
            return Answer(503, {"Retry-After": "1"}, b"busy, come back")
        return Answer(200)

    service = work.service(answer)
    r = work.run(service.url, "--backoff", "100ms", "--max-attempts", "5")
    assert r.returncode == 0, out(r)
    got = service.snapshot()
    assert [q.header("Hookguard-Attempt") for q in got] == ["1", "2", "3"]
    assert all(q.id == delivery_id for q in got)
    assert got[1].at - got[0].at >= 1.0 and got[2].at - got[1].at >= 1.0, [q.at for q in got]
    assert work.left() == EMPTY
    assert work.text().count('outcome="HTTP 503: busy, come back"') == 2, work.text()


def test_400_moves_the_delivery_to_failed_after_one_attempt(work):
    [delivery_id] = work.deliver([b'{"bad":true}'])
    service = work.service(lambda request: Answer(400, body=b"unknown field bad"))
    r = work.run(service.url, "--backoff", "100ms")
    assert r.returncode == 0, out(r)
    assert len(service.snapshot()) == 1
    assert work.left()["failed"] == [f"{delivery_id}.attempts", f"{delivery_id}.json"]
    record = record_of(work.spool, "failed", delivery_id)
    assert record["http_status"] == 400 and record["attempts"] == 1
    assert record["response_head"] == "unknown field bad"
    assert "refused" in work.text() and "status=400" in work.text()


def test_400_is_retried_with_retry_client_errors(work):
    work.deliver([b'{"bad":"then good"}'])
    service = work.service(lambda request: Answer(400 if len(service.snapshot()) == 1 else 204, body=b""))
    r = work.run(service.url, "--backoff", "100ms", "--retry-client-errors")
    assert r.returncode == 0, out(r)
    assert [q.header("Hookguard-Attempt") for q in service.snapshot()] == ["1", "2"]
    assert work.left() == EMPTY


def test_connection_refused_then_the_service_comes_up(work):
    [delivery_id] = work.deliver([b'{"wait":"for me"}'])
    port = closed_port()
    drain = work.start(f"http://127.0.0.1:{port}/hooks/in", "--backoff", "200ms", "--max-attempts", "50",
                       "--circuit-pause", "200ms")
    assert wait_until(lambda: "request failed" in work.text(), 15), work.text()
    service = work.service(port=port)
    assert drain.wait(20) == 0, work.text()
    assert [q.id for q in service.snapshot()] == [delivery_id]
    assert work.left() == EMPTY


def test_a_service_slower_than_the_timeout_is_retried_never_twice_at_once(work):
    ids = work.deliver([b'{"slow":1}', b'{"slow":2}'])
    timeout, backoff = 0.5, 1.0

    def answer(request):
        return Answer(200, delay=1.5 if request.header("Hookguard-Attempt") == "1" else 0)

    service = work.service(answer)
    r = work.run(service.url, "--timeout", "500ms", "--backoff", "1s", "--concurrency", "4")
    assert r.returncode == 0, out(r)
    by_id = service.by_id()
    assert sorted(by_id) == ids
    for delivery_id, requests in by_id.items():
        assert [q.header("Hookguard-Attempt") for q in requests] == ["1", "2"], requests
        # The second went out only after the first timed out and the backoff passed.
        assert requests[1].at - requests[0].at >= timeout + backoff - 0.05, [q.at for q in requests]
    assert work.text().count("timed out after 500ms") == 2
    assert work.left() == EMPTY


def test_kill_9_in_the_middle_then_restart_delivers_everything(work):
    ids = work.deliver([json.dumps({"n": i}).encode() for i in range(300)])
    service = work.service(lambda request: Answer(204, body=b"", delay=0.003))
    drain = work.start(service.url, "--concurrency", "4")
    assert wait_until(lambda: len(service.snapshot()) >= 100, 30), work.text()
    drain.send_signal(signal.SIGKILL)
    drain.wait()
    assert len(service.snapshot()) < 300, "killed too late to mean anything"
    assert list(work.spool.glob("circuit-*.json")), "a killed drain cannot remove its circuit file"
    r = work.run(service.url, "--concurrency", "4")
    assert r.returncode == 0, out(r)
    assert set(service.by_id()) == set(ids)
    assert work.left() == EMPTY
    assert not list(work.spool.glob("circuit-*.json")), "the next drain removes it"


def test_https_with_a_ca_file_and_a_certificate_that_does_not_match(work):
    ca_file, good = make_tls(work.path / "tls-good", ["127.0.0.1"])
    _, wrong = make_tls(work.path / "tls-wrong", ["other.example"])
    work.deliver([b'{"tls":1}'])
    right = work.service(tls=good)
    r = work.run(right.url, "--ca-file", str(ca_file))
    assert r.returncode == 0, out(r)
    assert len(right.snapshot()) == 1 and work.left() == EMPTY

    # Without the CA file the system's trust store does not know it: refused.
    [second] = work.deliver([b'{"tls":2}'])
    r = work.run(right.url, "--max-attempts", "1")
    assert r.returncode == 0, out(r)
    assert len(right.snapshot()) == 1
    assert "certificate" in record_of(work.spool, "failed", second)["outcome"]

    # Signed by the trusted CA but for another name: refused too.
    shutil.rmtree(work.spool / "failed")
    mismatched = work.service(tls=wrong)
    [third] = work.deliver([b'{"tls":3}'])
    r = work.run(mismatched.url, "--ca-file", str(ca_file), "--max-attempts", "1")
    assert r.returncode == 0, out(r)
    assert mismatched.snapshot() == []
    outcome = record_of(work.spool, "failed", third)["outcome"]
    assert "127.0.0.1" in outcome or "certificate" in outcome or "SSL" in outcome, outcome


def test_resigned_with_standard_webhooks_verified_by_the_official_library(work):
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = "whsec_" + base64.b64encode(b"hookguard-hop-secret-0123456789ab").decode()
    secret_file = work.path / "hop.secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    bodies = [json.dumps({"event": "paid", "n": i}).encode() for i in range(3)]
    ids = work.deliver(bodies)
    service = work.service()
    r = work.run(service.url, "--sign", "standard-webhooks", "--secret-file", str(secret_file))
    assert r.returncode == 0, out(r)
    hook = standardwebhooks.Webhook(secret)
    got = service.snapshot()
    assert [q.id for q in got] == ids
    for q in got:
        headers = {k.lower(): v for k, v in q.headers}
        assert hook.verify(q.body, headers) == json.loads(q.body)
        assert headers["webhook-id"] == q.id
    tampered = {k.lower(): v for k, v in got[0].headers}
    with pytest.raises(Exception):
        hook.verify(got[0].body + b" ", tampered)


def test_unix_socket_upstream_with_extra_headers(work):
    socket_path = work.path / "app.sock"
    service = work.service(unix_path=socket_path)
    token = work.path / "token"
    token.write_text("s3cret-token\n")
    [delivery_id] = work.deliver([b'{"via":"unix"}'])
    r = work.run(f"unix:{socket_path}:/hooks/unix", "--header", "X-Env: test", "--header-file", f"Authorization:{token}",
                 "--drop-header", "X-Trace")
    assert r.returncode == 0, out(r)
    [q] = service.snapshot()
    assert q.path == "/hooks/unix" and q.id == delivery_id
    assert q.header("X-Env") == "test" and q.header("Authorization") == "s3cret-token"
    assert q.header("X-Trace") is None and q.header("X-Signature") is not None
    assert "s3cret-token" not in work.text()


def test_a_down_service_opens_the_circuit_shown_by_spool_and_counted_in_metrics(work):
    work.deliver([json.dumps({"n": i}).encode() for i in range(3)])
    service = work.service(lambda request: Answer(503, body=b"down"))
    port = free_port()
    drain = work.start(service.url, "--follow", "--backoff", "100ms", "--circuit-failures", "2",
                       "--circuit-pause", "30s", "--concurrency", "1", "--metrics-listen", f"127.0.0.1:{port}")
    assert wait_until(lambda: "circuit open" in work.text(), 15), work.text()
    time.sleep(0.5)
    assert len(service.snapshot()) == 2, "no request while the circuit is open"
    status = subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.spool)], capture_output=True, text=True, timeout=10)
    assert re.search(r"circuit +open \(probes again in \d+s\), 2 failures in a row: " + re.escape(service.url),
                     status.stdout), status.stdout
    report = json.loads(subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.spool), "--json"], capture_output=True,
                                       text=True, timeout=10).stdout)
    assert report["circuits"][0]["state"] == "open" and report["circuits"][0]["url"] == service.url
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert re.search(r'hookguard_forwarded_total\{(outcome="retried",status_class="5xx"|status_class="5xx",outcome="retried")\} 2',
                     metrics), metrics
    assert "hookguard_forward_duration_seconds_bucket" in metrics
    drain.send_signal(signal.SIGTERM)
    assert drain.wait(10) == 0
    assert not list(work.spool.glob("circuit-*.json"))


def test_shutdown_grace_cuts_a_request_short_and_keeps_the_delivery(work):
    [delivery_id] = work.deliver([b'{"slow":"shutdown"}'])
    service = work.service(lambda request: Answer(200, delay=5))
    drain = work.start(service.url, "--timeout", "30s", "--grace", "500ms")
    assert wait_until(lambda: service.snapshot(), 15)
    started = time.monotonic()
    drain.send_signal(signal.SIGTERM)
    assert drain.wait(10) == 0, work.text()
    assert time.monotonic() - started < 0.5 + 2, "grace plus curl's progress tick"
    assert "stopped by shutdown" in work.text()
    assert work.left()["cur"] == [f"{delivery_id}.json"]
