"""discord (Ed25519) and sendgrid (ECDSA P-256/SHA-256) through nginx: signed by
PyNaCl and `cryptography` (public_keys.py), verified by hookguard with the public
keys in the location's file; and `hookguard sign --private-key-file` checked by
the same libraries."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import public_keys
from checks import accepted_id, check_entry, check_rejected
from harness import HOOKGUARD_BIN

NAMES = list(public_keys.HEADERS)


def post(env, name, body, headers):
    return env.post(f"/t/preset/{name}", body, {"Content-Type": "application/json", **headers})


def body_for(name: str, tag: str) -> bytes:
    return f'{{"type":2,"sender":"{name}","tag":"{tag}","n":"{os.urandom(4).hex()}"}}'.encode()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("key", [0, 1], ids=["first-key", "second-key"])
def test_genuine_with_either_key(env, name, key):
    body = body_for(name, f"genuine-{key}")
    headers = env.prefix.key_pairs[name][key].sign(body)
    delivery_id = accepted_id(env, post(env, name, body, headers))
    check_entry(env, f"preset-{name}", delivery_id, scheme=name, uri=f"/t/preset/{name}", body=body, headers=headers)


@pytest.mark.parametrize("name", NAMES)
def test_forged_tampered_stale_future_and_malformed(env, name):
    spool = f"preset-{name}"
    sig_header, ts_header = public_keys.HEADERS[name]
    pair = env.prefix.key_pairs[name][1]
    body = body_for(name, "refused")
    genuine = pair.sign(body)
    now = int(time.time())
    cases = [
        ("forged", public_keys.KeyPair(name).sign(body), body, "signature-mismatch"),
        ("tampered", genuine, body + b" ", "signature-mismatch"),
        ("stale", pair.sign(body, now - 400), body, "signature-stale"),
        ("future", pair.sign(body, now + 400), body, "signature-future"),
        ("no signature", {ts_header: genuine[ts_header]}, body, "signature-missing"),
        ("no timestamp", {sig_header: genuine[sig_header]}, body, "signature-missing"),
        ("timestamp not a number", {**genuine, ts_header: "soon"}, body, "signature-malformed"),
        ("signature not the encoding", {**genuine, sig_header: "***"}, body, "signature-malformed"),
        # One second off the signed one (now - 1 could be it, when the clock ticked after signing).
        ("another timestamp than signed", {**genuine, ts_header: str(int(genuine[ts_header]) - 1)}, body,
         "signature-mismatch"),
    ]
    if name == "discord":
        cases.append(("signature too short", {**genuine, sig_header: genuine[sig_header][:64]}, body,
                      "signature-malformed"))
    for what, headers, sent, reason in cases:
        before, mark = env.listing(spool), env.log_mark()
        r = post(env, name, sent, headers)
        check_rejected(env, r, mark, status=500, reason=reason, spool=spool, before=before)


@pytest.mark.parametrize("name", NAMES)
def test_hookguard_sign_with_a_private_key_passes_the_libraries(env, tmp_path, name):
    pair = env.prefix.key_pairs[name][0]
    (tmp_path / "key.pem").write_bytes(pair.private_pem)
    body = body_for(name, "signed-by-hookguard")
    (tmp_path / "body.json").write_bytes(body)
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", name, "--private-key-file", str(tmp_path / "key.pem"),
                        str(tmp_path / "body.json")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    headers = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    assert public_keys.verify(name, pair.public_text, headers, body)
    assert not public_keys.verify(name, public_keys.KeyPair(name).public_text, headers, body)
    accepted_id(env, post(env, name, body, headers))
    # Without the private key, sign says what it needs.
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", name, "--secret", "x", str(tmp_path / "body.json")],
                       capture_output=True, timeout=30)
    assert r.returncode == 64 and b"--private-key-file" in r.stderr, r


# --------------------------------------------------------------------------
# Standard Webhooks v1a: Ed25519 entries beside v1 HMAC entries; the location's
# file holds a whsec_ secret and a whpk_ public key.


def v1a_headers(env, signature: str, msg_id: str, ts: str) -> dict:
    return {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": signature}


def test_standard_webhooks_v1a(env, tmp_path):
    import signing
    pair, shared = env.prefix.v1a_pair, env.prefix.v1a_shared
    body, ts = body_for("standard-webhooks", "v1a"), str(int(time.time()))
    # v1a alone, then mixed with another key's v1 in one list, then the shared secret's v1.
    for n, signature in enumerate([
        pair.entry("msg_a", ts, body),
        signing.sign_stamped("standard-webhooks", signing.new_secret("standard-webhooks"), body, timestamp=int(ts),
                             delivery_id="msg_a")["webhook-signature"] + " " + pair.entry("msg_a", ts, body),
        signing.sign_stamped("standard-webhooks", shared, body, timestamp=int(ts), delivery_id="msg_a")["webhook-signature"],
    ]):
        delivery_id = accepted_id(env, env.post("/t/v1a", body, v1a_headers(env, signature, "msg_a", ts)))
        check_entry(env, "v1a", delivery_id, scheme="standard-webhooks", uri="/t/v1a", body=body)
    for signature, sent, reason in [
        (public_keys.V1aKey().entry("msg_b", ts, body), body, "signature-mismatch"),
        (pair.entry("msg_b", ts, body), body + b" ", "signature-mismatch"),
        (pair.entry("msg_other", ts, body), body, "signature-mismatch"),
        ("v1a,AAAA", body, "signature-malformed"),
    ]:
        before, mark = env.listing("v1a"), env.log_mark()
        r = env.post("/t/v1a", sent, v1a_headers(env, signature, "msg_b", ts))
        check_rejected(env, r, mark, status=500, reason=reason, spool="v1a", before=before)
    # hookguard sign with the private key: PyNaCl verifies its v1a entry, and so does the server.
    (tmp_path / "key.pem").write_bytes(pair.private_pem)
    (tmp_path / "body.json").write_bytes(body)
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", "standard-webhooks", "--private-key-file",
                        str(tmp_path / "key.pem"), str(tmp_path / "body.json")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    headers = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    assert headers["webhook-signature"].startswith("v1a,") and pair.verifies(headers, body)
    assert not public_keys.V1aKey().verifies(headers, body)
    accepted_id(env, env.post("/t/v1a", body, headers))
