"""hookguard's answers other than the signature schemes themselves:
per-location options, methods, sizes, short bodies, bad configuration,
and request headers that try to pass for parameters."""

from __future__ import annotations

import json
import os
import socket

import pytest

import signing
from checks import accepted_id, check_entry, check_rejected
from harness import wait_until


def body(tag: str, size: int | None = None) -> bytes:
    b = json.dumps({"tag": tag, "nonce": os.urandom(4).hex()}).encode()
    if size is not None:
        b = (b + b" " * size)[:size]
    return b


def xsig(secret: str | bytes, data: bytes) -> dict:
    return {"Content-Type": "application/json", **signing.sign("x-signature", secret, data)}


# --------------------------------------------------------------------------
# HOOKGUARD_SECRET and HOOKGUARD_REJECT_STATUS


def test_literal_secret_location_accepts_genuine(env):
    b = body("literal")
    delivery_id = accepted_id(env, env.post("/t/literal", b, xsig(env.literal_secret, b)))
    check_entry(env, "literal", delivery_id, scheme="x-signature", uri="/t/literal", body=b)


def test_literal_secret_location_rejects_forgery(env):
    b = body("literal-forged")
    before, mark = env.listing("literal"), env.log_mark()
    r = env.post("/t/literal", b, xsig("not-" + env.literal_secret, b))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="literal",
                   before=before)
    assert env.literal_secret.encode() not in r.body
    assert env.literal_secret not in env.log_text(), "hookguard logged the literal secret"


def test_reject_status_applies_to_forgery(env):
    b = body("403-forged")
    before, mark = env.listing("reject-403"), env.log_mark()
    r = env.post("/t/reject-403", b, xsig("wrong", b))
    check_rejected(env, r, mark, status=403, reason="signature-mismatch", spool="reject-403",
                   before=before)


def test_reject_status_applies_to_missing_and_malformed(env):
    b = body("403-other")
    before, mark = env.listing("reject-403"), env.log_mark()
    r = env.post("/t/reject-403", b, {"Content-Type": "application/json"})
    check_rejected(env, r, mark, status=403, reason="signature-missing", spool="reject-403",
                   before=before)
    mark = env.log_mark()
    r = env.post("/t/reject-403", b, {"X-Signature": "g" * 64})
    check_rejected(env, r, mark, status=403, reason="signature-malformed", spool="reject-403",
                   before=before)


def test_reject_status_location_accepts_genuine(env):
    b = body("403-genuine")
    delivery_id = accepted_id(env, env.post("/t/reject-403", b, xsig(env.literal_secret, b)))
    check_entry(env, "reject-403", delivery_id, scheme="x-signature", uri="/t/reject-403",
                body=b)


# --------------------------------------------------------------------------
# methods


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_only_post_is_allowed(env, method):
    b = body(method) if method in ("PUT", "PATCH") else None
    headers = xsig(env.secrets["github"], b or b"")
    before, mark = env.listing("github"), env.log_mark()
    r = env.request(method, "/hooks/github", b, headers)
    check_rejected(env, r, mark, status=405, reason="method-not-allowed", spool="github",
                   before=before)
    allow = r.header("Allow")
    assert allow is not None and allow.strip() == "POST", f"405 without `Allow: POST`: {r!r}"


# --------------------------------------------------------------------------
# sizes


def test_body_over_max_body_is_413(env):
    b = body("too-large", 2000)
    before, mark = env.listing("max-body-1024"), env.log_mark()
    r = env.post("/t/max-body-1024", b, xsig(env.literal_secret, b))
    check_rejected(env, r, mark, status=413, reason="body-too-large", spool="max-body-1024",
                   before=before)


def test_body_of_exactly_max_body_is_accepted(env):
    b = body("at-limit", 1024)
    delivery_id = accepted_id(env, env.post("/t/max-body-1024", b, xsig(env.literal_secret, b)))
    check_entry(env, "max-body-1024", delivery_id, scheme="x-signature", uri="/t/max-body-1024",
                body=b)


def _unix_connections(path) -> int:
    """Connected stream sockets bound to path (hookguard's accepted
    connections), from /proc/net/unix."""
    n = 0
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) >= 8 and cols[7] == str(path) and cols[5] == "03":
                    n += 1
    except OSError:
        pass
    return n


def test_client_gone_mid_body_is_400_and_nothing_spooled(env):
    full = b"x" * 100_000
    head = (f"POST /t/unbuffered HTTP/1.1\r\nHost: 127.0.0.1:{env.prefix.port2}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(full)}\r\n"
            f"X-Signature: {signing.signature('x-signature', env.literal_secret, full)}\r\n"
            f"\r\n").encode()
    before, mark = env.listing("unbuffered"), env.log_mark()
    baseline = _unix_connections(env.prefix.socket)
    with socket.create_connection(("127.0.0.1", env.prefix.port2), timeout=5) as s:
        s.sendall(head + full[:1000])
        # Hold on until nginx has hookguard on the line (the body is streamed
        # to it), so the close below reaches hookguard instead of only nginx.
        wait_until(lambda: _unix_connections(env.prefix.socket) > baseline, 3)
    line = env.wait_log(mark, "reason=body-incomplete", timeout=5)
    assert line, "hookguard did not log reason=body-incomplete within 5 s" + env.diag()
    assert "status=400" in line, f"body-incomplete logged without status=400: {line}"
    assert env.listing("unbuffered") == before, "a short body was spooled"
    env.assert_tmp_empty("unbuffered")


# --------------------------------------------------------------------------
# bad configuration

MISCONFIGURED = {
    # location: the signing secret most likely to slip through if hookguard
    # filled the gap with a default
    "no-scheme": "literal-secret-5b9d2e",
    "unknown-scheme": "literal-secret-5b9d2e",
    "no-secret": "",
    "no-spool": "literal-secret-5b9d2e",
    "missing-secret-file": "",
    "comments-only-secret-file": "",
    "empty-secret-file": "",
    "unknown-algorithm": "literal-secret-5b9d2e",
}


@pytest.mark.parametrize("location", list(MISCONFIGURED))
def test_misconfigured_location_is_500_config_invalid(env, location):
    secret = MISCONFIGURED[location]
    b = body(location)
    headers = {"Content-Type": "application/json",
               **signing.sign("x-signature", secret, b),
               **signing.sign("custom", secret, b)}
    before, mark = env.listing("bad"), env.log_mark()
    r = env.post(f"/t/bad/{location}", b, headers)
    check_rejected(env, r, mark, status=500, reason="config-invalid", spool="bad",
                   before=before)


# --------------------------------------------------------------------------
# request headers are not parameters


def test_headers_named_like_parameters_change_nothing(env):
    b = body("injected")
    headers = {
        "Content-Type": "application/json",
        "HOOKGUARD-SECRET": "x",
        "HOOKGUARD-SCHEME": "custom",
        "HOOKGUARD-SPOOL": str(env.path / "spool" / "literal"),
        **signing.sign("x-signature", "x", b),
        **signing.sign("custom", "x", b),
    }
    before, mark = env.listing("x-signature"), env.log_mark()
    before_literal, before_custom = env.listing("literal"), env.listing("custom")
    r = env.post("/hooks/x-signature", b, headers)
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="x-signature",
                   before=before)
    assert env.listing("literal") == before_literal
    assert env.listing("custom") == before_custom


def test_headers_named_like_parameters_are_just_headers(env):
    """A genuine delivery carrying such headers is accepted under the
    location's own scheme, and the headers are recorded like any other."""
    b = body("injected-genuine")
    injected = {"HOOKGUARD-SECRET": "x", "HOOKGUARD-SCHEME": "custom"}
    delivery_id = accepted_id(env, env.deliver("x-signature", b, injected))
    check_entry(env, "x-signature", delivery_id, scheme="x-signature",
                uri="/hooks/x-signature", body=b,
                headers={"hookguard-secret": "x", "hookguard-scheme": "custom"})
