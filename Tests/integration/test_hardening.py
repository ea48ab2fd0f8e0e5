"""Hostile input and faults: hookguard answers, keeps serving, loses nothing, leaves no debris."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fcgi_client
import signing
from checks import accepted_id
from harness import LITERAL_SECRET, start_hookguard, stop, wait_hookguard_ready, wait_until


def post_literal(env, path: str, body: bytes, extra: dict | None = None, secret: str = LITERAL_SECRET):
    headers = {"Content-Type": "application/json"}
    headers.update(signing.sign("x-signature", secret, body))
    headers.update(extra or {})
    return env.post(path, body, headers)


def spool_files_are_ids_only(env, name: str) -> None:
    for sub in ("new", "tmp", "cur"):
        for entry in env.listing(name, sub):
            stem = entry.removesuffix(".json")
            assert entry.endswith(".json") and len(stem) == 36 and set(stem) <= set("0123456789abcdef-"), \
                f"{name}/{sub}/{entry} is not hookguard's own id"


# --------------------------------------------------------------------------
# hostile input


def fcgi_literal(sock: Path, spool: Path, body: bytes, extra: dict | None = None, secret: str = LITERAL_SECRET):
    params = {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/direct", "CONTENT_LENGTH": str(len(body)),
        "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": LITERAL_SECRET, "HOOKGUARD_SPOOL": str(spool),
        "HTTP_X_SIGNATURE": signing.signature("x-signature", secret, body),
    }
    params.update(extra or {})
    return fcgi_client.request(str(sock), params, body)


def test_a_64_kib_header_and_10000_headers(env):
    """nginx cannot pass either over FastCGI (its request record is capped at
    64 KiB) and answers 500 itself; sent straight to hookguard's socket, both
    are taken and recorded whole."""
    mark = env.log_mark()
    big = "v" * (64 * 1024)
    many = {f"X-Many-{i}": str(i) for i in range(10_000)}
    for headers in ({"X-Big": big}, many):
        r = post_literal(env, "/t/literal", b'{"big":1}', headers)
        assert r.status in (400, 500) and b"nginx" in r.body, r  # nginx refused it itself
    assert "reason=accepted" not in env.log_since(mark)

    spool = env.path / "spool" / "direct-headers"
    body = b'{"big":2}'
    r = fcgi_literal(env.prefix.socket, spool, body, {"HTTP_X_BIG": big})
    assert r.status == 200, r
    entry = json.loads((spool / "new" / f"{json.loads(r.body)['id']}.json").read_bytes())
    assert entry["headers"]["x-big"] == big
    r = fcgi_literal(env.prefix.socket, spool, body, {f"HTTP_X_MANY_{i}": str(i) for i in range(10_000)})
    assert r.status == 200, r
    entry = json.loads((spool / "new" / f"{json.loads(r.body)['id']}.json").read_bytes())
    assert sum(1 for k in entry["headers"] if k.startswith("x-many-")) == 10_000


def test_a_body_longer_than_content_length_is_refused(env):
    spool = env.path / "spool" / "direct-overlong"
    body = b'{"exact":1}'
    params = {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/direct", "CONTENT_LENGTH": str(len(body)),
        "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": LITERAL_SECRET, "HOOKGUARD_SPOOL": str(spool),
        "HTTP_X_SIGNATURE": signing.signature("x-signature", LITERAL_SECRET, body),
    }
    mark = env.log_mark()
    r = fcgi_client.request(str(env.prefix.socket), params, body + b"; smuggled")
    assert r.status == 400, r
    env.assert_logged(mark, "reason=body-overlong")
    assert not (spool / "new").exists() or not os.listdir(spool / "new")


def raw_http(env, request: bytes, port: int | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port or env.prefix.port2), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_nul_and_invalid_utf8_in_headers_and_uri(env):
    body = b'{"hostile":"bytes"}'
    sig = signing.signature("x-signature", LITERAL_SECRET, body).encode()
    mark = env.log_mark()
    # Invalid UTF-8 in a header value and in the URI's query: passed on, body intact.
    answer = raw_http(env, b"POST /t/literal?q=%ff%fe\xff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      b"X-Signature: " + sig + b"\r\nX-Odd: caf\xe9\xff\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    delivery_id = json.loads(answer.split(b"\r\n\r\n", 1)[1])["id"]
    entry = env.read_entry("literal", delivery_id)
    assert entry["body"] == body.decode() and "x-odd" in entry["headers"]
    # NUL in a header: nginx refuses it before hookguard; hookguard keeps serving.
    answer = raw_http(env, b"POST /t/literal HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      b"X-Signature: " + sig + b"\x00x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    accepted_id(env, post_literal(env, "/t/literal", b'{"after":"nul"}'))


def test_a_repeated_signature_header_is_refused(env):
    body = b'{"twice":1}'
    good = signing.signature("x-signature", LITERAL_SECRET, body).encode()
    bad = signing.signature("x-signature", "forged", body).encode()
    for first, second in ((good, bad), (bad, good), (good, good)):
        mark = env.log_mark()
        answer = raw_http(env, b"POST /t/literal HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                          b"X-Signature: " + first + b"\r\nX-Signature: " + second +
                          b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert answer.startswith(b"HTTP/1.1 500"), answer[:200]
        env.assert_logged(mark, "reason=signature-malformed")


def test_json_looking_bodies_that_are_not_json_are_not_parsed(env):
    for body in (b'{"a":', b'{"a":1}}', b"[" * 10_000, b'{"a":"\\ud800"}', b"null\x00"):
        delivery_id = accepted_id(env, post_literal(env, "/t/literal", body))
        entry = env.read_entry("literal", delivery_id)
        stored = entry["body"].encode() if "body" in entry else None
        assert stored == body or "body_base64" in entry


def test_path_traversal_never_reaches_a_file_name(env):
    traversal = "../../../../tmp/hookguard-escape"
    before = set(os.listdir("/tmp"))
    r = env.deliver("github", b'{"escape":1}', {"X-GitHub-Event": traversal, "X-GitHub-Delivery": traversal})
    delivery_id = accepted_id(env, r)
    assert env.read_entry("github", delivery_id)["event"] == traversal
    answer = raw_http(env, b"POST /t/literal/../literal/%2e%2e/%2e%2e HTTP/1.1\r\nHost: t\r\n"
                      b"Connection: close\r\nContent-Length: 2\r\n\r\n{}")
    assert b" 200 " not in answer.split(b"\r\n")[0]
    assert not any(n.startswith("hookguard-escape") for n in set(os.listdir("/tmp")) - before)
    for name in ("github", "literal"):
        spool_files_are_ids_only(env, name)


def test_slow_clients_never_hold_a_worker(env):
    """More slow senders than hookguard has workers: nginx buffers them, others go through."""
    stop_sending = threading.Event()
    body = b'{"slow":"' + b"s" * 4000 + b'"}'
    sig = signing.signature("x-signature", LITERAL_SECRET, body).encode()

    def slow_sender():
        with socket.create_connection(("127.0.0.1", env.prefix.port2), timeout=20) as s:
            s.sendall(b"POST /t/literal HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Signature: " + sig +
                      b"\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), 200):
                if stop_sending.is_set():
                    return
                s.sendall(body[i:i + 200])
                time.sleep(0.05)
            assert s.recv(100).startswith(b"HTTP/1.1 200")

    senders = [threading.Thread(target=slow_sender) for _ in range(12)]  # hookguard has 8 workers
    for t in senders:
        t.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        for i in range(5):
            accepted_id(env, post_literal(env, "/t/literal", b'{"fast":%d}' % i))
        assert time.monotonic() - started < 2.0, "fast deliveries waited behind slow senders"
    finally:
        for t in senders:
            t.join(30)


# --------------------------------------------------------------------------
# the FastCGI socket as a trust boundary


def crafted(env, payload: bytes, read: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect(str(env.prefix.socket))
        s.sendall(payload)
        try:
            s.shutdown(socket.SHUT_WR)
            return s.recv(65536) if read else b""
        except OSError:
            return b""


def record(rtype: int, content: bytes, request_id: int = 1) -> bytes:
    return struct.pack(">BBHHBx", 1, rtype, request_id, len(content), 0) + content


def test_crafted_fastcgi_records_do_not_stop_the_server(env):
    begin = record(1, struct.pack(">HB5x", 1, 0))
    huge_lengths = struct.pack(">II", 0xFFFFFFF0, 0xFFFFFFF0) + b"A" * 32  # 4-byte lengths, near 2^32
    cases = {
        "oversized parameter lengths": begin + record(4, huge_lengths) + record(4, b""),
        "lengths whose sum overflows": begin + record(4, struct.pack(">II", 0x80000000 | 0x7FFFFFF0, 0x80000010) + b"B" * 64),
        "truncated record header": begin + b"\x01\x04\x00",
        "record claiming more content than sent": begin + struct.pack(">BBHHBx", 1, 4, 1, 60000, 0) + b"x" * 10,
        "unknown record type and role": record(1, struct.pack(">HB5x", 99, 0)) + record(77, b"zz"),
        "garbage": os.urandom(4096),
    }
    for name, payload in cases.items():
        crafted(env, payload)
        assert env.hookguard.poll() is None, f"hookguard died on {name}\n" + env.diag()
        accepted_id(env, post_literal(env, "/t/literal", b'{"after":"%s"}' % name.encode()))


# --------------------------------------------------------------------------
# faults


@pytest.fixture
def small_filesystem(env):
    mount_point = env.path / "tmpfs"
    mount_point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0750", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_full_filesystem_is_503_with_no_partial_entry_and_recovers(env, small_filesystem):
    body = b'{"fill":"' + b"f" * 100_000 + b'"}'
    answers = [post_literal(env, "/t/tmpfs", body) for _ in range(8)]
    statuses = [r.status for r in answers]
    assert 200 in statuses and 503 in statuses, statuses
    assert all(r.header("Retry-After") for r in answers if r.status == 503)
    spool = small_filesystem / "spool"
    assert not os.listdir(spool / "tmp"), "a partial entry was left in tmp/"
    accepted = {json.loads(r.body)["id"] for r in answers if r.status == 200}
    assert {n.removesuffix(".json") for n in os.listdir(spool / "new")} == accepted
    for name in os.listdir(spool / "new"):
        assert json.loads((spool / "new" / name).read_bytes())["body"] == body.decode()
    # Space comes back: deliveries are accepted again at once.
    for name in os.listdir(spool / "new"):
        (spool / "new" / name).unlink()
    accepted_id(env, post_literal(env, "/t/tmpfs", body))


def test_secret_file_removed_at_run_time_then_restored(env):
    path = env.path / "secrets" / "runtime.secret"
    path.write_text(LITERAL_SECRET + "\n")
    path.chmod(0o600)
    accepted_id(env, post_literal(env, "/t/runtime-secret", b'{"secret":"present"}'))
    path.unlink()
    mark = env.log_mark()
    r = post_literal(env, "/t/runtime-secret", b'{"secret":"gone"}')
    assert r.status == 500 and LITERAL_SECRET.encode() not in r.body, r
    env.assert_logged(mark, "reason=config-invalid", "runtime.secret")
    path.write_text(LITERAL_SECRET + "\n")
    path.chmod(0o644)
    mark = env.log_mark()
    assert post_literal(env, "/t/runtime-secret", b'{"secret":"open"}').status == 500
    env.assert_logged(mark, "readable by everyone")
    path.chmod(0o600)
    accepted_id(env, post_literal(env, "/t/runtime-secret", b'{"secret":"restored"}'))


def test_more_clients_than_workers_are_queued_not_dropped(env):
    with ThreadPoolExecutor(64) as pool:  # hookguard has 8 workers
        answers = list(pool.map(lambda i: post_literal(env, "/t/literal", b'{"queued":%d}' % i), range(256)))
    assert [r.status for r in answers] == [200] * 256


def test_kill_9_under_load_loses_no_acknowledged_delivery(tmp_path):
    sock, log = tmp_path / "hg.sock", tmp_path / "hg.log"
    spool = tmp_path / "spool"
    proc = start_hookguard(sock, log, tmp_path, workers=4)
    wait_hookguard_ready(proc, sock, log)
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + 10

    def sender(n: int):
        i = 0
        while time.monotonic() < stop_at:
            body = b'{"sender":%d,"n":%d,"pad":"%s"}' % (n, i, b"p" * random.randint(0, 20000))
            i += 1
            params = {
                "REQUEST_METHOD": "POST", "REQUEST_URI": "/kill", "CONTENT_LENGTH": str(len(body)),
                "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": LITERAL_SECRET,
                "HOOKGUARD_SPOOL": str(spool),
                "HTTP_X_SIGNATURE": signing.signature("x-signature", LITERAL_SECRET, body),
            }
            try:
                r = fcgi_client.request(str(sock), params, body, timeout=2)
            except OSError:
                return  # the server is gone
            if r.status == 200:
                with lock:
                    acknowledged[json.loads(r.body)["id"]] = body

    senders = [threading.Thread(target=sender, args=(n,)) for n in range(16)]
    for t in senders:
        t.start()
    assert wait_until(lambda: len(acknowledged) >= 200, 10), "load did not build up"
    proc.send_signal(signal.SIGKILL)
    proc.wait(5)
    for t in senders:
        t.join(15)

    entries = {n.removesuffix(".json"): n for n in os.listdir(spool / "new")}
    for delivery_id, body in acknowledged.items():
        assert delivery_id in entries, f"acknowledged {delivery_id} is not in new/"
    for name in entries.values():
        envelope = json.loads((spool / "new" / name).read_bytes())  # whole, parseable
        if envelope["id"] in acknowledged:
            assert envelope["body"].encode() == acknowledged[envelope["id"]]

    # Restarted over the stale socket, it serves at once.
    proc = start_hookguard(sock, log, tmp_path, workers=4)
    try:
        wait_hookguard_ready(proc, sock, log, timeout=5)
        body = b'{"after":"restart"}'
        r = fcgi_client.request(str(sock), {
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/kill", "CONTENT_LENGTH": str(len(body)),
            "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": LITERAL_SECRET, "HOOKGUARD_SPOOL": str(spool),
            "HTTP_X_SIGNATURE": signing.signature("x-signature", LITERAL_SECRET, body)}, body)
        assert r.status == 200
    finally:
        assert stop(proc, signal.SIGTERM, 10) == 0


def test_no_descriptor_growth_over_many_requests(env):
    fds = lambda: len(os.listdir(f"/proc/{env.hookguard.pid}/fd"))
    for i in range(50):
        post_literal(env, "/t/literal", b'{"warm":%d}' % i)
    before = fds()
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(
            lambda i: post_literal(env, "/t/literal", b'{"fd":%d}' % i,
                                   secret=LITERAL_SECRET if i % 2 else "forged").status, range(2000)))
    assert statuses.count(200) == 1000 and statuses.count(500) == 1000
    assert fds() <= before + 2, f"descriptors grew from {before} to {fds()}"


def test_non_loopback_tcp_listen_is_refused(tmp_path):
    log = tmp_path / "hg.log"
    r = subprocess.run([str(os.environ.get("HOOKGUARD_BIN") or Path(__file__).resolve().parents[2] / ".build/debug/hookguard"),
                        "serve", "--listen", "0.0.0.0:19999"], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "not a loopback address" in r.stderr and "--allow-remote" in r.stderr


def test_user_flag_drops_privileges(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    work = Path(tempfile.mkdtemp(prefix="hookguard-user-"))  # reachable by nobody, unlike tmp_path
    work.chmod(0o755)
    os.chown(work, nobody.pw_uid, nobody.pw_gid)
    sock, log = work / "hg.sock", tmp_path / "hg.log"
    proc = start_hookguard(sock, log, tmp_path, workers=2, extra_args=["--user", "nobody"])
    try:
        wait_hookguard_ready(proc, sock, log)
        def uids():  # the socket accepts (into its backlog) a moment before the switch
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return set(next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1:])
        assert wait_until(lambda: uids() == {str(nobody.pw_uid)}, 5), uids()
        assert sock.stat().st_uid == nobody.pw_uid
        body = b'{"as":"nobody"}'
        r = fcgi_client.request(str(sock), {
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/u", "CONTENT_LENGTH": str(len(body)),
            "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": LITERAL_SECRET, "HOOKGUARD_SPOOL": str(work / "spool"),
            "HTTP_X_SIGNATURE": signing.signature("x-signature", LITERAL_SECRET, body)}, body)
        assert r.status == 200
        entry = next((work / "spool" / "new").iterdir())
        assert entry.stat().st_uid == nobody.pw_uid and entry.stat().st_mode & 0o777 == 0o640
        assert (work / "spool").stat().st_mode & 0o777 == 0o750
    finally:
        assert stop(proc, signal.SIGTERM, 10) == 0
    assert not sock.exists()
    shutil.rmtree(work)
