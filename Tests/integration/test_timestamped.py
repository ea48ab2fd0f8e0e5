"""The schemes that sign more than the body (Standard Webhooks, Svix, Stripe,
Slack, Tito's timestamped API), GitLab's token, Shopify's id, the tolerance,
and `hookguard sign` / `hookguard verify` against the running server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import signing
from checks import accepted_id, check_entry, check_rejected
from harness import HOOKGUARD_BIN, LITERAL_SECRET

STAMPED = list(signing.STAMPED)
MULTI = [n for n, s in signing.STAMPED.items() if s.multi]


def body_for(name: str, tag: str) -> bytes:
    return json.dumps({"scheme": name, "tag": tag, "nonce": os.urandom(6).hex(), "note": "caf\u00e9"},
                      ensure_ascii=False).encode()


def post_stamped(env, name: str, body: bytes, headers: dict, path: str | None = None):
    s = signing.STAMPED[name]
    return env.post(path or s.path, body, {"Content-Type": "application/json", **headers})


# --------------------------------------------------------------------------
# the reference signers (no hookguard involved)


def test_stamped_signers_match_published_examples():
    # Standard Webhooks spec / Svix "Verifying Webhooks Manually"
    h = signing.sign_stamped("standard-webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                             b'{"test": 2432232314}', timestamp=1614265330,
                             delivery_id="msg_p5jXN8AQM9LWM0D4loKWxJek")
    assert h["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    # Slack, "Verifying requests from Slack"
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
            b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
            b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
            b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    h = signing.sign_stamped("slack", "8f742231b10e8888abcd99yyyzzz85a5", body, timestamp=1531420618)
    assert h["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


# --------------------------------------------------------------------------
# each timestamped preset through nginx


@pytest.mark.parametrize("name", STAMPED)
def test_genuine_stamped_delivery_is_spooled(env, name):
    s = signing.STAMPED[name]
    body = body_for(name, "genuine")
    headers = signing.sign_stamped(name, env.secrets[name], body)
    if s.event_header:
        headers[s.event_header] = "order.created"
    r = post_stamped(env, name, body, headers)
    delivery_id = accepted_id(env, r)
    e = check_entry(env, name, delivery_id, scheme=name, uri=s.path, body=body, headers=headers,
                    event="order.created" if s.event_header else None)
    if s.id_header:
        assert e.get("delivery_id") == headers[s.id_header], e
    else:
        assert "delivery_id" not in e, f"{name} has no id header, yet the envelope has one: {e}"


@pytest.mark.parametrize("name", STAMPED)
def test_forged_stamped_delivery_is_rejected_without_leaking(env, name):
    s = signing.STAMPED[name]
    body = body_for(name, "forged")
    now, msg_id = int(time.time()), f"msg_{os.urandom(4).hex()}"
    forged = signing.sign_stamped(name, signing.new_secret(name), body, timestamp=now, delivery_id=msg_id)
    before, mark = env.listing(name), env.log_mark()
    r = post_stamped(env, name, body, forged)
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=name, before=before)
    # what the genuine signature would have been, in every form it is written
    genuine = signing.sign_stamped(name, env.secrets[name], body, timestamp=now, delivery_id=msg_id)
    value = genuine[s.signature_header].split(",v1=")[-1].split("v1,")[-1].removeprefix("v0=")
    log = env.log_since(mark)
    for text in (value, env.secrets[name]):
        assert text not in log, f"hookguard logged {text!r}"
        assert text.encode() not in r.body, f"the answer holds {text!r}: {r!r}"


@pytest.mark.parametrize("name", STAMPED)
def test_stamped_signature_over_another_body_is_rejected(env, name):
    body = body_for(name, "tampered")
    before, mark = env.listing(name), env.log_mark()
    r = post_stamped(env, name, body, signing.sign_stamped(name, env.secrets[name], body + b" "))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=name, before=before)


@pytest.mark.parametrize(("name", "case"),
                         [(n, c[0]) for n in STAMPED
                          for c in signing.malformed_stamped(n, signing.sign_stamped(n, signing.new_secret(n), b"{}", timestamp=1))])
def test_malformed_stamped_headers_are_rejected(env, name, case):
    body = body_for(name, "malformed")
    genuine = signing.sign_stamped(name, env.secrets[name], body)
    (what, headers, reason), = [c for c in signing.malformed_stamped(name, genuine) if c[0] == case]
    before, mark = env.listing(name), env.log_mark()
    r = post_stamped(env, name, body, headers)
    check_rejected(env, r, mark, status=500, reason=reason, spool=name, before=before)


@pytest.mark.parametrize("name", MULTI)
def test_one_valid_signature_among_several_is_accepted(env, name):
    body = body_for(name, "rotation")
    s = signing.STAMPED[name]
    headers = signing.sign_stamped(name, [signing.new_secret(name), env.secrets[name]], body)
    sep = " " if name != "stripe" else ","
    assert len(headers[s.signature_header].split(sep)) >= 2
    delivery_id = accepted_id(env, post_stamped(env, name, body, headers))
    check_entry(env, name, delivery_id, scheme=name, uri=s.path, body=body, headers=headers)

    before, mark = env.listing(name), env.log_mark()
    headers = signing.sign_stamped(name, [signing.new_secret(name), signing.new_secret(name)], body)
    r = post_stamped(env, name, body, headers)
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=name, before=before)


@pytest.mark.parametrize("name", STAMPED)
@pytest.mark.parametrize(("offset", "reason", "word"),
                         [(-400, "signature-stale", "stale"), (400, "signature-future", "future")])
def test_stale_and_future_timestamps_are_refused(env, name, offset, reason, word):
    body = body_for(name, word)
    headers = signing.sign_stamped(name, env.secrets[name], body, timestamp=int(time.time()) + offset)
    before, mark = env.listing(name), env.log_mark()
    r = post_stamped(env, name, body, headers)
    line = check_rejected(env, r, mark, status=500, reason=reason, spool=name, before=before)
    assert word in line, f"log line does not say {word!r}: {line}"
    assert word.encode() in r.body, f"the answer does not say {word!r}: {r!r}"


def test_tolerance_override_narrower(env):
    """/t/tolerance-60 (slack) refuses what /hooks/slack (300 s) accepts."""
    body = body_for("slack", "two-minutes-old")
    headers = signing.sign_stamped("slack", env.secrets["slack"], body, timestamp=int(time.time()) - 120)
    accepted_id(env, post_stamped(env, "slack", body, headers))
    before, mark = env.listing("tolerance-60"), env.log_mark()
    r = post_stamped(env, "slack", body, headers, path="/t/tolerance-60")
    line = check_rejected(env, r, mark, status=500, reason="signature-stale", spool="tolerance-60", before=before)
    assert "tolerance of 60 s" in line


def test_tolerance_override_wider(env):
    """/t/tolerance-86400 (stripe) accepts what /hooks/stripe (300 s) refuses."""
    body = body_for("stripe", "an-hour-old")
    headers = signing.sign_stamped("stripe", env.secrets["stripe"], body, timestamp=int(time.time()) - 3600)
    before, mark = env.listing("stripe"), env.log_mark()
    check_rejected(env, post_stamped(env, "stripe", body, headers), mark, status=500, reason="signature-stale",
                   spool="stripe", before=before)
    delivery_id = accepted_id(env, post_stamped(env, "stripe", body, headers, path="/t/tolerance-86400"))
    check_entry(env, "tolerance-86400", delivery_id, scheme="stripe", uri="/t/tolerance-86400", body=body)


# --------------------------------------------------------------------------
# GitLab's token, Shopify's and custom's ids


def test_gitlab_token(env):
    body = body_for("gitlab", "push")
    token = env.secrets["gitlab"]
    headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Push Hook",
               "Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd"}
    delivery_id = accepted_id(env, env.post("/hooks/gitlab", body, headers))
    e = check_entry(env, "gitlab", delivery_id, scheme="gitlab", uri="/hooks/gitlab", body=body, event="Push Hook")
    assert e["delivery_id"] == "908a6d9e-45fd-46c8-97e6-c4f350f219dd"

    for wrong, reason in [(token[:-1], "signature-mismatch"), (token + "x", "signature-mismatch"),
                          (token.upper(), "signature-mismatch"), (None, "signature-missing")]:
        before, mark = env.listing("gitlab"), env.log_mark()
        r = env.post("/hooks/gitlab", body, {} if wrong is None else {"X-Gitlab-Token": wrong})
        check_rejected(env, r, mark, status=500, reason=reason, spool="gitlab", before=before)
        assert token not in env.log_since(mark) and token.encode() not in r.body


def test_shopify_records_its_webhook_id(env):
    body = body_for("shopify", "orders-create")
    headers = {**signing.sign("shopify", env.secrets["shopify"], body), "X-Shopify-Topic": "orders/create",
               "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}
    delivery_id = accepted_id(env, env.post("/hooks/shopify", body, headers))
    e = check_entry(env, "shopify", delivery_id, scheme="shopify", uri="/hooks/shopify", body=body,
                    event="orders/create")
    assert e["delivery_id"] == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def test_custom_token_location(env):
    body = body_for("custom-token", "token")
    delivery_id = accepted_id(env, env.post("/t/custom-token", body, {"X-Hook-Token": LITERAL_SECRET,
                                                                       "X-Hook-Id": "hook-1"}))
    e = check_entry(env, "custom-token", delivery_id, scheme="custom", uri="/t/custom-token", body=body)
    assert e["delivery_id"] == "hook-1"
    before, mark = env.listing("custom-token"), env.log_mark()
    r = env.post("/t/custom-token", body, {"X-Hook-Token": LITERAL_SECRET + " ", "X-Hook-Id": "hook-2"})
    # white space around a header value is not part of it, so that is the right token; another is not:
    assert r.status == 200, r
    r = env.post("/t/custom-token", body, {"X-Hook-Token": "literal-secret-5b9d2f", "X-Hook-Id": "hook-3"})
    check_rejected(env, r, mark, status=500, reason="signature-mismatch")


@pytest.mark.parametrize(("location", "scheme", "words"), [
    ("dedupe-without-id", "stripe", "HOOKGUARD_DEDUPE"),
    ("tolerance", "slack", "HOOKGUARD_TOLERANCE"),
    ("whsec-not-base64", "standard-webhooks", "HOOKGUARD_SECRET: a standard-webhooks secret is whsec_"),
])
def test_misconfigured_replay_locations(env, location, scheme, words):
    body = body_for(scheme, location)
    secret = env.secrets[scheme] if scheme != "standard-webhooks" else "whsec_" + "A" * 32
    before, mark = env.listing("bad"), env.log_mark()
    r = env.post(f"/t/bad/{location}", body, signing.sign_stamped(scheme, secret, body))
    line = check_rejected(env, r, mark, status=500, reason="config-invalid", spool="bad", before=before)
    assert words in line, line
    assert "literal-secret-5b9d2e" not in line


# --------------------------------------------------------------------------
# hookguard sign: its output is what the running server accepts


CUSTOM_FLAGS = ["--signature-header", "X-Custom-Signature", "--algorithm", "sha512", "--encoding", "base64",
                "--prefix", "v1="]


def run_hookguard(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOOKGUARD_BIN), *args], input=input, capture_output=True, timeout=30)


def sign_args(env, name: str) -> list[str]:
    args = ["sign", "--scheme", name, "--secret-file", str(env.path / "secrets" / f"{name}.secret")]
    return args + (CUSTOM_FLAGS if name == "custom" else [])


def header_lines(out: bytes) -> dict[str, str]:
    lines = out.decode().splitlines()
    assert lines and all(": " in line for line in lines), f"not `Name: value` lines: {out!r}"
    return dict(line.split(": ", 1) for line in lines)


def path_of(name: str) -> str:
    return f"/hooks/{name}"


@pytest.mark.parametrize("name", signing.ALL_NAMES)
def test_sign_output_is_accepted_through_nginx(env, tmp_path, name):
    body = body_for(name, "signed-by-hookguard")
    file = tmp_path / "body.json"
    file.write_bytes(body)
    r = run_hookguard(*sign_args(env, name), str(file))
    assert r.returncode == 0, r.stderr.decode()
    headers = header_lines(r.stdout)
    id_header = signing.ID_HEADERS.get(name)
    if id_header:
        assert headers.get(id_header), f"{name}: sign printed no {id_header}: {headers}"
    delivery_id = accepted_id(env, env.post(path_of(name), body, headers))
    e = check_entry(env, name, delivery_id, scheme=name, uri=path_of(name), body=body, headers=headers)
    if id_header:
        assert e["delivery_id"] == headers[id_header]

    # The same body from standard input signs the same (timestamp and id given).
    fixed = ["--timestamp", str(int(time.time())), "--id", "fixed-id"]
    a = run_hookguard(*sign_args(env, name), *fixed, str(file))
    b = run_hookguard(*sign_args(env, name), *fixed, input=body)
    assert a.returncode == 0 and a.stdout == b.stdout, (a, b)


def test_sign_with_curl_header_file(env, tmp_path):
    """docs/schemes.md's pattern: `curl -H @headers.txt` (values with spaces and commas survive)."""
    body = body_for("stripe", "curl")
    (tmp_path / "body.json").write_bytes(body)
    signed = run_hookguard(*sign_args(env, "standard-webhooks"), str(tmp_path / "body.json"))
    (tmp_path / "headers.txt").write_bytes(signed.stdout)
    out = subprocess.run(
        ["curl", "-sS", "-H", f"@{tmp_path / 'headers.txt'}", "-H", "Content-Type: application/json",
         "--data-binary", f"@{tmp_path / 'body.json'}", f"{env.base_url()}/hooks/standard-webhooks"],
        capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()
    doc = json.loads(out.stdout)
    check_entry(env, "standard-webhooks", doc["id"], scheme="standard-webhooks", uri="/hooks/standard-webhooks",
                body=body, headers=header_lines(signed.stdout))


def test_sign_with_bash_array(env, tmp_path):
    """docs/schemes.md's other pattern: lines into a bash array of -H arguments."""
    body = body_for("slack", "bash")
    (tmp_path / "body.json").write_bytes(body)
    script = r'''
set -euo pipefail
mapfile -t lines < <("$HG" sign --scheme stripe --secret-file "$SECRET" body.json)
args=(); for line in "${lines[@]}"; do args+=(-H "$line"); done
curl -sS "${args[@]}" --data-binary @body.json "$URL"
'''
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, timeout=30,
                         env={**os.environ, "HG": str(HOOKGUARD_BIN), "URL": f"{env.base_url()}/hooks/stripe",
                              "SECRET": str(env.path / "secrets" / "stripe.secret")})
    assert out.returncode == 0, out.stderr.decode()
    doc = json.loads(out.stdout)
    check_entry(env, "stripe", doc["id"], scheme="stripe", uri="/hooks/stripe", body=body)


def test_sign_refuses_bad_input(env):
    for args, words in [
        (["sign", "--scheme", "nope", "--secret", "x"], "--scheme: unknown scheme"),
        (["sign", "--scheme", "slack"], "--secret-file FILE or --secret TEXT"),
        (["sign", "--scheme", "standard-webhooks", "--secret", "whsec_***"], "whsec_ followed by base64"),
        (["sign", "--scheme", "custom", "--secret", "x"], "--signature-header: missing"),
    ]:
        r = run_hookguard(*args, input=b"{}")
        assert r.returncode != 0 and words in r.stderr.decode(), (args, r)
        assert b"***" not in r.stdout


# --------------------------------------------------------------------------
# hookguard verify: a captured delivery, checked offline, with the reason


def verify(env, name: str, headers: dict, body: bytes, *extra: str, secret: str | None = None):
    args = ["verify", "--scheme", name]
    args += ["--secret", secret] if secret else ["--secret-file", str(env.path / "secrets" / f"{name}.secret")]
    for k, v in headers.items():
        args += ["--header", f"{k}: {v}"]
    r = run_hookguard(*args, *extra, input=body)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def test_verify_reasons(env):
    body = b'{"captured": true}'
    now = int(time.time())
    genuine = signing.sign_stamped("slack", env.secrets["slack"], body, timestamp=now)

    code, out = verify(env, "slack", genuine, body)
    assert code == 0 and "genuine" in out, out

    code, out = verify(env, "slack", genuine, body, secret="not-the-signing-secret")
    assert code == 1 and "signature-mismatch" in out and "wrong secret" in out, out

    code, out = verify(env, "slack", genuine, body + b"\n")
    assert code == 1 and "without its final newline" in out, out

    stale = signing.sign_stamped("slack", env.secrets["slack"], body, timestamp=now - 3600)
    code, out = verify(env, "slack", stale, body)
    assert code == 1 and "signature-stale" in out and "stale" in out and "genuine" in out, out
    code, out = verify(env, "slack", stale, body, "--tolerance", "7200")
    assert code == 0, out
    code, out = verify(env, "slack", stale, body, "--now", str(now - 3600))
    assert code == 0, out

    future = signing.sign_stamped("slack", env.secrets["slack"], body, timestamp=now + 3600)
    code, out = verify(env, "slack", future, body)
    assert code == 1 and "signature-future" in out and "future" in out, out

    code, out = verify(env, "slack", {"X-Slack-Signature": genuine["X-Slack-Signature"]}, body)
    assert code == 1 and "signature-missing" in out and "X-Slack-Request-Timestamp is missing" in out, out

    # wrong encoding: hex where Shopify sends base64
    hex_value = signing.digest(env.secrets["shopify"], body).hex()
    code, out = verify(env, "shopify", {"X-Shopify-Hmac-Sha256": hex_value}, body)
    assert code == 1 and "signature-malformed" in out and "looks like hex" in out, out

    for text in (out,):
        assert env.secrets["shopify"] not in text and env.secrets["slack"] not in text


def test_verify_accepts_what_the_server_accepted(env):
    """A delivery the server spooled verifies offline from its envelope."""
    body = body_for("standard-webhooks", "offline")
    headers = signing.sign_stamped("standard-webhooks", env.secrets["standard-webhooks"], body)
    delivery_id = accepted_id(env, post_stamped(env, "standard-webhooks", body, headers))
    e = env.read_entry("standard-webhooks", delivery_id)
    captured = {k: v for k, v in e["headers"].items() if k.startswith("webhook-")}
    code, out = verify(env, "standard-webhooks", captured, e["body"].encode())
    assert code == 0 and headers["webhook-id"] in out, out
