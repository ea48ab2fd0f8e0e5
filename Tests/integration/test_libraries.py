"""The senders' official PyPI libraries, both ways: the library signs → hookguard
accepts through nginx; `hookguard sign` → the library's verifier accepts (and
refuses under another secret). stripe, slack-sdk and paddle-python-sdk here;
standardwebhooks and svix in test_secret_lines.py and test_catalog.py, twilio in
test_url_bound.py."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import stripe  # PyPI, installed by scripts/lib/install-deps test
from paddle_billing.Notifications import Secret as PaddleSecret
from paddle_billing.Notifications.PaddleSignature import PaddleSignature
from slack_sdk.signature import SignatureVerifier

from checks import accepted_id, check_entry
from harness import HOOKGUARD_BIN


def body_for(tag: str) -> bytes:
    return json.dumps({"type": "test.event", "tag": tag, "n": os.urandom(4).hex(), "note": "caf\u00e9"},
                      ensure_ascii=False).encode()


def hookguard_sign(scheme: str, secret: str, body: bytes, tmp_path) -> dict[str, str]:
    (tmp_path / "body").write_bytes(body)
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", scheme, "--secret", secret, str(tmp_path / "body")],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())


def test_stripe_library_both_ways(env, tmp_path):
    secret, body = env.secrets["stripe"], body_for("stripe")
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, int(time.time()))
    headers = {"Content-Type": "application/json", "Stripe-Signature": header}
    check_entry(env, "stripe", accepted_id(env, env.post("/hooks/stripe", body, headers)), scheme="stripe",
                uri="/hooks/stripe", body=body)
    signed = hookguard_sign("stripe", secret, body, tmp_path)
    assert stripe.WebhookSignature.verify_header(body.decode(), signed["Stripe-Signature"], secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), signed["Stripe-Signature"], secret + "x", tolerance=300)


def test_slack_sdk_both_ways(env, tmp_path):
    secret, body = env.secrets["slack"], body_for("slack")
    ts = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}
    check_entry(env, "slack", accepted_id(env, env.post("/hooks/slack", body, headers)), scheme="slack",
                uri="/hooks/slack", body=body)
    signed = hookguard_sign("slack", secret, body, tmp_path)
    assert SignatureVerifier(secret).is_valid(body, signed["X-Slack-Request-Timestamp"], signed["X-Slack-Signature"])
    assert not SignatureVerifier(secret + "x").is_valid(body, signed["X-Slack-Request-Timestamp"],
                                                        signed["X-Slack-Signature"])


def test_paddle_sdk_both_ways(env, tmp_path):
    secret, body = env.prefix.catalog_secrets["paddle"][0], body_for("paddle")
    ts = int(time.time())
    # The construction as the SDK computes it (its own tests sign this way).
    h1 = PaddleSignature.calculate_hmac(secret, f"{ts}:{body.decode()}".encode()).hexdigest()
    headers = {"Content-Type": "application/json", "Paddle-Signature": f"ts={ts};h1={h1}"}
    assert PaddleSignature().verify(headers["Paddle-Signature"], body.decode(), PaddleSecret(secret))
    accepted_id(env, env.post("/t/preset/paddle", body, headers))
    signed = hookguard_sign("paddle", secret, body, tmp_path)
    assert PaddleSignature().verify(signed["Paddle-Signature"], body.decode(), PaddleSecret(secret))
    assert not PaddleSignature().verify(signed["Paddle-Signature"], body.decode(), PaddleSecret(secret + "x"))
