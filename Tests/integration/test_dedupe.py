"""HOOKGUARD_DEDUPE: a sender's retry of a delivery already accepted is
answered with the first delivery's id and spooled once, also when the copies
arrive together on several workers or two hookguard processes, and across a
restart. Records live in SPOOL/dedupe/ and expire."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fcgi_client
import signing
from checks import UUID7, accepted_id, check_entry
from harness import check_binary, start_hookguard, stop, tail, wait_hookguard_ready

COPIES = 8


def entries_with(env, spool: str, delivery_id: str) -> list[str]:
    """Spool entries of this spool whose envelope has this sender id."""
    found = []
    for name in env.listing(spool):
        e = json.loads((env.spool(spool) / "new" / name).read_text())
        if e.get("delivery_id") == delivery_id:
            found.append(e["id"])
    return found


def record_name(scheme: str, sender_id: str) -> str:
    """The record's file name, computed here independently: SHA-256 of scheme NUL id."""
    return hashlib.sha256(scheme.encode() + b"\0" + sender_id.encode()).hexdigest()


def at_once(n: int, send) -> list:
    """Runs send(i) n times, released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        return send(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_retry_is_answered_with_the_first_id(env):
    body = b'{"type": "invoice.paid", "n": 1}'
    msg = f"msg_{os.urandom(6).hex()}"
    first = signing.sign_stamped("standard-webhooks", env.secrets["standard-webhooks"], body, delivery_id=msg)
    first_id = accepted_id(env, env.post("/hooks/standard-webhooks", body, first))
    mark = env.log_mark()
    time.sleep(1.1)
    # A sender's retry is signed anew: same id, a later timestamp.
    retry = signing.sign_stamped("standard-webhooks", env.secrets["standard-webhooks"], body, delivery_id=msg)
    assert retry["webhook-timestamp"] != first["webhook-timestamp"]
    r = env.post("/hooks/standard-webhooks", body, retry)
    assert accepted_id(env, r) == first_id
    line = env.assert_logged(mark, "reason=duplicate", "status=200")
    assert f"id={first_id}" in line and f"delivery_id={msg}" in line, line
    assert entries_with(env, "standard-webhooks", msg) == [first_id]

    # The record sits beside the spool, named by a hash, holding hookguard's id.
    record = env.spool("standard-webhooks") / "dedupe" / record_name("standard-webhooks", msg)
    assert record.read_text().strip() == first_id
    assert all(len(n) == 64 and msg not in n for n in os.listdir(record.parent))


def test_forged_copy_with_a_real_id_claims_nothing(env):
    body = b'{"n": 2}'
    msg = f"msg_{os.urandom(6).hex()}"
    forged = signing.sign_stamped("standard-webhooks", signing.new_secret("standard-webhooks"), body,
                                  delivery_id=msg)
    assert env.post("/hooks/standard-webhooks", body, forged).status == 500
    genuine = signing.sign_stamped("standard-webhooks", env.secrets["standard-webhooks"], body, delivery_id=msg)
    first_id = accepted_id(env, env.post("/hooks/standard-webhooks", body, genuine))
    assert entries_with(env, "standard-webhooks", msg) == [first_id]


@pytest.mark.parametrize("location", ["standard-webhooks", "dedupe-github"])
def test_copies_arriving_together_are_spooled_once(env, location):
    body = json.dumps({"together": location, "nonce": os.urandom(4).hex()}).encode()
    sender_id = f"together-{os.urandom(6).hex()}"
    if location == "standard-webhooks":
        path = "/hooks/standard-webhooks"
        headers = signing.sign_stamped("standard-webhooks", env.secrets["standard-webhooks"], body,
                                       delivery_id=sender_id)
    else:
        path = "/t/dedupe-github"
        headers = {**signing.sign("github", env.secrets["github"], body), "X-GitHub-Delivery": sender_id,
                   "X-GitHub-Event": "push"}
    mark = env.log_mark()
    answers = at_once(COPIES, lambda i: env.post(path, body, headers))
    ids = [accepted_id(env, r) for r in answers]
    assert len(set(ids)) == 1, f"copies answered with different ids: {ids}"
    assert entries_with(env, location, sender_id) == ids[:1], "spooled more than once" + env.diag()
    check_entry(env, location, ids[0], scheme=location.replace("dedupe-", ""), uri=path, body=body)
    log = env.log_since(mark)
    assert log.count("reason=duplicate") == COPIES - 1, log
    env.assert_tmp_empty(location)


def test_expired_record_lets_the_delivery_in_again(env):
    """/t/dedupe-github remembers for 3600 s: a record older than that has expired."""
    body = b'{"expiry": true}'
    sender_id = f"expiry-{os.urandom(6).hex()}"
    headers = {**signing.sign("github", env.secrets["github"], body), "X-GitHub-Delivery": sender_id}
    first_id = accepted_id(env, env.post("/t/dedupe-github", body, headers))
    assert accepted_id(env, env.post("/t/dedupe-github", body, headers)) == first_id
    record = env.spool("dedupe-github") / "dedupe" / record_name("github", sender_id)
    old = time.time() - 7200
    os.utime(record, (old, old))
    second_id = accepted_id(env, env.post("/t/dedupe-github", body, headers))
    assert second_id != first_id
    assert sorted(entries_with(env, "dedupe-github", sender_id)) == sorted([first_id, second_id])
    assert record.read_text().strip() == second_id


def test_empty_record_left_by_a_crash_claims_nothing(env):
    """A process that died between taking the record and storing the
    delivery leaves an empty record: the sender's retry is stored."""
    body = b'{"crash": true}'
    sender_id = f"crash-{os.urandom(6).hex()}"
    record = env.spool("dedupe-github") / "dedupe" / record_name("github", sender_id)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_bytes(b"")
    headers = {**signing.sign("github", env.secrets["github"], body), "X-GitHub-Delivery": sender_id}
    first_id = accepted_id(env, env.post("/t/dedupe-github", body, headers))
    assert entries_with(env, "dedupe-github", sender_id) == [first_id]
    assert accepted_id(env, env.post("/t/dedupe-github", body, headers)) == first_id


def test_without_dedupe_every_copy_is_spooled(env):
    """/hooks/github has no HOOKGUARD_DEDUPE: the same X-GitHub-Delivery twice is two entries."""
    body = b'{"no-dedupe": true}'
    sender_id = f"plain-{os.urandom(6).hex()}"
    headers = {**signing.sign("github", env.secrets["github"], body), "X-GitHub-Delivery": sender_id}
    a = accepted_id(env, env.post("/hooks/github", body, headers))
    b = accepted_id(env, env.post("/hooks/github", body, headers))
    assert a != b and sorted(entries_with(env, "github", sender_id)) == sorted([a, b])


# --------------------------------------------------------------------------
# private hookguards on one spool: across a restart, and two processes at once

SECRET = "dedupe-secret-9f1e"


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="hg-dd-"))  # short: unix socket paths are limited
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fcgi_delivery(sock: Path, spool: Path, body: bytes, sender_id: str):
    params = {
        "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "SCRIPT_NAME": "/hooks/github", "REQUEST_URI": "/hooks/github", "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "localhost",
        "HOOKGUARD_SCHEME": "github", "HOOKGUARD_SECRET": SECRET, "HOOKGUARD_SPOOL": str(spool),
        "HOOKGUARD_DEDUPE": "600",
        "HTTP_X_HUB_SIGNATURE_256": signing.signature("github", SECRET, body),
        "HTTP_X_GITHUB_DELIVERY": sender_id,
    }
    return fcgi_client.request(str(sock), params, body)


def answered_id(r, log: Path) -> str:
    assert r.status == 200, f"{r}\n{tail(log)}"
    delivery_id = json.loads(r.body)["id"]
    assert UUID7.match(delivery_id)
    return delivery_id


def spooled_ids(spool: Path) -> list[str]:
    return sorted(n.removesuffix(".json") for n in os.listdir(spool / "new"))


def test_same_delivery_across_a_restart_is_spooled_once(workdir):
    check_binary()
    sock, log, spool = workdir / "hg.sock", workdir / "hg.log", workdir / "spool"
    body, sender_id = b'{"restart": true}', f"restart-{os.urandom(4).hex()}"

    proc = start_hookguard(sock, log, workdir, workers=2)
    try:
        wait_hookguard_ready(proc, sock, log)
        first_id = answered_id(fcgi_delivery(sock, spool, body, sender_id), log)
        assert stop(proc, signal.SIGTERM, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    proc = start_hookguard(sock, log, workdir, workers=2)
    try:
        wait_hookguard_ready(proc, sock, log)
        assert answered_id(fcgi_delivery(sock, spool, body, sender_id), log) == first_id
        assert spooled_ids(spool) == [first_id]
        assert "reason=duplicate" in log.read_text()
    finally:
        stop(proc, signal.SIGTERM, 10)


def test_two_processes_take_the_same_delivery_once(workdir):
    check_binary()
    spool = workdir / "spool"
    procs = []
    try:
        for n in (1, 2):
            sock, log = workdir / f"hg{n}.sock", workdir / f"hg{n}.log"
            procs.append((start_hookguard(sock, log, workdir, workers=4), sock, log))
        for proc, sock, log in procs:
            wait_hookguard_ready(proc, sock, log)

        for round_ in range(3):
            body = json.dumps({"two-processes": round_}).encode()
            sender_id = f"two-{round_}-{os.urandom(4).hex()}"
            answers = at_once(COPIES, lambda i: fcgi_delivery(procs[i % 2][1], spool, body, sender_id))
            ids = {answered_id(r, procs[0][2]) for r in answers}
            assert len(ids) == 1, f"round {round_}: different ids {ids}"
        assert len(spooled_ids(spool)) == 3, spooled_ids(spool)
        logs = "".join(log.read_text() for _, _, log in procs)
        assert logs.count("reason=duplicate") == 3 * (COPIES - 1)
        assert "reason=duplicate" in procs[0][2].read_text() or "reason=duplicate" in procs[1][2].read_text()
    finally:
        for proc, _, _ in procs:
            stop(proc, signal.SIGTERM, 10)
