"""Forwarding into NATS JetStream: a real nats-server -js on loopback, read back
with a small C client on Debian's libnats (nats_tool.c), independent of hookguard."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

import signing
from checks import accepted_id
from harness import HERE, LITERAL_SECRET, port_open, stop, wait_until

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
TOKEN = "nats-token-" + uuid.uuid4().hex


class JetStream:
    def __init__(self, env):
        self.env = env
        self.port = env.prefix.nats_port
        self.url = f"nats://127.0.0.1:{self.port}"
        self.store = env.path / "nats-store"
        self.tool = env.path / "nats_tool"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store),
             "--auth", TOKEN],
            stdout=subprocess.DEVNULL, stderr=open(self.env.path / "nats-server.log", "ab"))
        assert wait_until(lambda: port_open(self.port), 10), "nats-server did not start"

    def stop(self):
        stop(self.process, signal.SIGTERM, 10)
        assert wait_until(lambda: not port_open(self.port), 5)

    def run(self, *args: str) -> str:
        r = subprocess.run([str(self.tool), self.url, TOKEN, *args], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def messages(self) -> list[dict]:
        return [json.loads(line) for line in self.run("dump", "HOOKS").splitlines()]


@pytest.fixture(scope="module")
def jetstream(env):
    token_file = env.path / "secrets" / "nats.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    js = JetStream(env)
    subprocess.run(["cc", "-O1", "-o", str(js.tool), str(HERE / "nats_tool.c"),
                    *subprocess.run(["pkg-config", "--cflags", "--libs", "libnats"], capture_output=True,
                                    text=True, check=True).stdout.split()], check=True)
    js.start()
    js.run("add-stream", "HOOKS", "hooks.>", "120")
    yield js
    if js.process.poll() is None:
        js.stop()


def deliver(env, path: str, body: bytes, delivery: str, event: str = "push"):
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    headers.update(signing.sign("github", LITERAL_SECRET, body))
    return env.post(path, body, headers)


def test_deliveries_arrive_byte_exact_with_headers(env, jetstream):
    sent = {}
    for i, body in enumerate([b'{"ref":"refs/heads/main"}', bytes(range(256)), b'{"n":"\\u00e9 \xc3\xa9"}']):
        delivery = str(uuid.uuid4())
        sent[delivery] = (accepted_id(env, deliver(env, "/t/nats", body, delivery, event=f"push{i}")), body, i)
    stored = {m["headers"].get("Nats-Msg-Id"): m for m in jetstream.messages()}
    for delivery, (delivery_id, body, i) in sent.items():
        message = stored[f"github:{delivery}"]
        assert message["subject"] == f"hooks.github.push{i}"
        assert message["headers"]["Hookguard-Id"] == delivery_id
        assert message["headers"]["Hookguard-Scheme"] == "github"
        assert message["headers"]["Hookguard-Event"] == f"push{i}"
        data = base64.b64decode(message["data"])
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        envelope = json.loads(data)
        assert envelope["id"] == delivery_id and envelope["delivery_id"] == delivery
        got = envelope["body"].encode() if "body" in envelope else base64.b64decode(envelope["body_base64"])
        assert got == body


def test_a_retried_delivery_is_stored_once(env, jetstream):
    delivery = str(uuid.uuid4())
    body = b'{"retry":true}'
    mark = env.log_mark()
    first = accepted_id(env, deliver(env, "/t/nats", body, delivery))
    second = accepted_id(env, deliver(env, "/t/nats", body, delivery))
    assert first != second
    copies = [m for m in jetstream.messages() if m["headers"].get("Nats-Msg-Id") == f"github:{delivery}"]
    assert len(copies) == 1 and copies[0]["headers"]["Hookguard-Id"] == first
    env.assert_logged(mark, "reason=duplicate", "delivery_id=" + delivery)


def test_event_names_cannot_steer_the_subject(env, jetstream):
    delivery = str(uuid.uuid4())
    accepted_id(env, deliver(env, "/t/nats", b'{"steer":1}', delivery, event="a.*.> b..c"))
    message = next(m for m in jetstream.messages() if m["headers"].get("Nats-Msg-Id") == f"github:{delivery}")
    assert message["subject"] == "hooks.github.a._.__b._.c"  # "*", ">" and " " become "_", empty tokens "_"


def test_server_down_falls_back_to_the_spool_or_503_and_recovers(env, jetstream):
    jetstream.stop()
    try:
        mark = env.log_mark()
        body = b'{"while":"down"}'
        delivery = str(uuid.uuid4())
        delivery_id = accepted_id(env, deliver(env, "/t/nats-spool", body, delivery))
        assert env.read_entry("nats-fallback", delivery_id)["body"] == body.decode()
        env.assert_logged(mark, "reason=fell-back-to-spool", f"id={delivery_id}")
        r = deliver(env, "/t/nats", body, str(uuid.uuid4()))
        assert r.status == 503 and r.header("Retry-After"), r
        env.assert_logged(mark, "reason=nats-unavailable")
    finally:
        jetstream.start()
    # libnats reconnects on its own; deliveries reach the stream again.
    delivery = str(uuid.uuid4())
    assert wait_until(lambda: deliver(env, "/t/nats", b'{"back":1}', delivery).status == 200, 10)
    assert any(m["headers"].get("Nats-Msg-Id") == f"github:{delivery}" for m in jetstream.messages())


def test_doctor_says_whether_nats_answers(env, jetstream):
    from harness import HOOKGUARD_BIN

    def doctor(url: str) -> tuple[int, str]:
        r = subprocess.run([str(HOOKGUARD_BIN), "doctor", "--param", "HOOKGUARD_SCHEME=github",
                            "--param", f"HOOKGUARD_SECRET={LITERAL_SECRET}", "--param", f"HOOKGUARD_NATS_URL={url}",
                            "--param", "HOOKGUARD_NATS_SUBJECT=hooks.{scheme}"], capture_output=True, text=True)
        return r.returncode, r.stdout

    code, out = doctor(jetstream.url)
    assert code == 0 and f"✓ parameters: NATS {jetstream.url} answers" in out, out
    code, out = doctor(f"nats://127.0.0.1:{env.prefix.port}")  # nginx, not NATS
    assert code == 1 and "not a NATS server" in out, out


def test_drain_replays_the_spool_into_the_stream_once_nats_is_back(env, jetstream):
    from harness import HOOKGUARD_BIN
    already = str(uuid.uuid4())
    accepted_id(env, deliver(env, "/t/nats-spool", b'{"published":"before"}', already))  # in the stream
    spool = env.spool("nats-fallback")
    before = env.listing("nats-fallback")
    jetstream.stop()
    sent = {}
    try:
        for i in range(5):
            delivery = str(uuid.uuid4())
            sent[delivery] = accepted_id(env, deliver(env, "/t/nats-spool", b'{"down":%d}' % i, delivery))
        # The sender retries the one JetStream already has (its 200 was lost on the way back).
        sent[already] = accepted_id(env, deliver(env, "/t/nats-spool", b'{"published":"before"}', already))
    finally:
        jetstream.start()
    assert len(env.listing("nats-fallback") - before) == 6

    r = subprocess.run([str(HOOKGUARD_BIN), "drain", str(spool), "--to-nats", jetstream.url, "hooks.{scheme}.{event}",
                        "--nats-token-file", str(env.path / "secrets" / "nats.token"), "--backoff", "200ms",
                        "--log-level", "warning"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not os.listdir(spool / "new") and not os.listdir(spool / "cur"), "deliveries left in the spool"

    messages = jetstream.messages()
    for delivery in sent:
        copies = [m for m in messages if m["headers"].get("Nats-Msg-Id") == f"github:{delivery}"]
        assert len(copies) == 1, f"{delivery}: {len(copies)} copies in the stream"
    for delivery, delivery_id in sent.items():
        if delivery != already:
            message = next(m for m in messages if m["headers"]["Nats-Msg-Id"] == f"github:{delivery}")
            assert message["headers"]["Hookguard-Id"] == delivery_id
            assert json.loads(base64.b64decode(message["data"]))["id"] == delivery_id
