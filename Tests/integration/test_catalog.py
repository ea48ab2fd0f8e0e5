"""Every preset issue 16 adds, through nginx, signed by senders.py (Python's
hmac from each sender's documentation, never hookguard): genuine with either
key of a two-line secret file, forged, tampered, stale and future where the
scheme is timed, every malformed header form, and several signatures in one
header where the sender lists them. Plus the official libraries both ways
where a sender has one on PyPI (svix for Clerk and Resend, paddle's
construction as its SDK computes it)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest

import senders
from checks import accepted_id, check_entry, check_rejected
from harness import HOOKGUARD_BIN

NAMES = list(senders.SENDERS)
TIMED = [n for n, s in senders.SENDERS.items() if s.timed]
MULTI = [n for n, s in senders.SENDERS.items() if s.multi]


def path(name: str) -> str:
    return f"/t/preset/{name}"


def spool(name: str) -> str:
    return f"preset-{name}"


def body_for(name: str, tag: str) -> bytes:
    return json.dumps({"sender": name, "tag": tag, "nonce": os.urandom(6).hex(), "note": "caf\u00e9"},
                      ensure_ascii=False).encode()


def post(env, name: str, body: bytes, headers: dict):
    return env.post(path(name), body, {"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("key", [0, 1], ids=["old-key", "new-key"])
def test_genuine_with_either_key_is_spooled(env, name, key):
    s = senders.SENDERS[name]
    body = body_for(name, f"genuine-{key}")
    headers = senders.sign(name, env.prefix.catalog_secrets[name][key], body)
    if s.event_header:
        headers[s.event_header] = "thing.created"
    delivery_id = accepted_id(env, post(env, name, body, headers))
    e = check_entry(env, spool(name), delivery_id, scheme=name, uri=path(name), body=body, headers=headers,
                    event="thing.created" if s.event_header else None)
    if s.id_header:
        assert e.get("delivery_id") == headers[s.id_header], e


@pytest.mark.parametrize("name", NAMES)
def test_forged_is_refused_without_leaking(env, name):
    s = senders.SENDERS[name]
    body = body_for(name, "forged")
    now, dlv = int(time.time()), f"dlv-{os.urandom(4).hex()}"
    before, mark = env.listing(spool(name)), env.log_mark()
    r = post(env, name, body, senders.sign(name, senders.new_secret(name), body, timestamp=now, delivery_id=dlv))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=spool(name), before=before)
    genuine = senders.sign(name, env.prefix.catalog_secrets[name][1], body, timestamp=now, delivery_id=dlv)
    mac = genuine[s.header].split(s.separator or "\n")[-1].removeprefix(s.prefix)
    for text in (mac, *env.prefix.catalog_secrets[name]):
        assert text not in env.log_since(mark) and text.encode() not in r.body, text


@pytest.mark.parametrize("name", NAMES)
def test_signature_over_another_body_is_refused(env, name):
    body = body_for(name, "tampered")
    before, mark = env.listing(spool(name)), env.log_mark()
    r = post(env, name, body, senders.sign(name, env.prefix.catalog_secrets[name][1], body + b" "))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=spool(name), before=before)


@pytest.mark.parametrize("name", TIMED)
@pytest.mark.parametrize(("direction", "reason"), [(-1, "signature-stale"), (1, "signature-future")])
def test_outside_the_senders_tolerance_is_refused(env, name, direction, reason):
    s = senders.SENDERS[name]
    body = body_for(name, reason)
    # Just inside is accepted (a margin of 3 s for a loaded machine), just outside is not.
    inside = senders.sign(name, env.prefix.catalog_secrets[name][1], body,
                          timestamp=int(time.time()) + direction * max(0, s.tolerance - 3))
    accepted_id(env, post(env, name, body, inside))
    outside = senders.sign(name, env.prefix.catalog_secrets[name][1], body,
                           timestamp=int(time.time()) + direction * (s.tolerance + 30))
    before, mark = env.listing(spool(name)), env.log_mark()
    line = check_rejected(env, post(env, name, body, outside), mark, status=500, reason=reason,
                          spool=spool(name), before=before)
    assert f"tolerance of {s.tolerance} s" in line, line


CASES = [(n, c[0]) for n in NAMES
         for c in senders.malformed(n, senders.sign(n, senders.new_secret(n), b"{}", timestamp=1))]


@pytest.mark.parametrize(("name", "case"), CASES)
def test_malformed_headers_are_refused(env, name, case):
    body = body_for(name, "malformed")
    genuine = senders.sign(name, env.prefix.catalog_secrets[name][1], body)
    (what, headers, reason), = [c for c in senders.malformed(name, genuine) if c[0] == case]
    before, mark = env.listing(spool(name)), env.log_mark()
    check_rejected(env, post(env, name, body, headers), mark, status=500, reason=reason, spool=spool(name),
                   before=before)


@pytest.mark.parametrize("name", MULTI)
def test_one_valid_signature_among_several(env, name):
    s = senders.SENDERS[name]
    body = body_for(name, "listed")
    headers = senders.sign(name, [senders.new_secret(name), env.prefix.catalog_secrets[name][0]], body)
    assert headers[s.header].count(s.prefix) == 2, headers
    accepted_id(env, post(env, name, body, headers))
    before, mark = env.listing(spool(name)), env.log_mark()
    forged = senders.sign(name, [senders.new_secret(name), senders.new_secret(name)], body)
    check_rejected(env, post(env, name, body, forged), mark, status=500, reason="signature-mismatch",
                   spool=spool(name), before=before)


# --------------------------------------------------------------------------
# hookguard sign → the server and an independent verifier; libraries → the server


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOOKGUARD_BIN), *args], input=input, capture_output=True, timeout=30)


@pytest.mark.parametrize("name", NAMES)
def test_hookguard_sign_matches_the_independent_signer(env, tmp_path, name):
    s = senders.SENDERS[name]
    body = body_for(name, "signed-by-hookguard")
    (tmp_path / "body.json").write_bytes(body)
    now = int(time.time())
    r = run("sign", "--scheme", name, "--secret-file", str(env.path / "secrets" / f"preset-{name}.secret"),
            "--timestamp", str(now), "--id", "dlv-fixed", str(tmp_path / "body.json"))
    assert r.returncode == 0, r.stderr.decode()
    printed = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    expected = senders.sign(name, env.prefix.catalog_secrets[name][0], body, timestamp=now, delivery_id="dlv-fixed",
                            nanos=0)
    if s.id_header and s.id_header not in printed:
        expected.pop(s.id_header)
    assert {k.lower(): v for k, v in printed.items()} == {k.lower(): v for k, v in expected.items()}
    accepted_id(env, post(env, name, body, printed))


@pytest.mark.parametrize("name", ["clerk", "resend"])
def test_svix_library_both_ways(env, tmp_path, name):
    from svix.webhooks import Webhook  # PyPI, installed by scripts/lib/install-deps test
    secret = env.prefix.catalog_secrets[name][1]
    body = body_for(name, "svix-library")
    msg_id, now = f"msg_{os.urandom(6).hex()}", int(time.time())
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, tz=timezone.utc), body.decode())
    headers = {"svix-id": msg_id, "svix-timestamp": str(now), "svix-signature": signature}
    accepted_id(env, post(env, name, body, headers))
    (tmp_path / "body.json").write_bytes(body)
    r = run("sign", "--scheme", name, "--secret", secret, str(tmp_path / "body.json"))
    printed = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    Webhook(secret).verify(body, printed)  # raises if it does not verify
