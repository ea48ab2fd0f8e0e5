"""Sender handshakes, answered by hookguard and never stored: Slack
url_verification, Discord PING, Twitch webhook_callback_verification and Zoom
endpoint.url_validation (each signed, and verified first: a forged one is
refused), Meta's GET hub.challenge (verify token from a file) and Dropbox's GET
challenge. Signatures from Python's hmac (senders.py) and PyNaCl."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

import senders
from checks import accepted_id, check_rejected
from harness import VERIFY_TOKEN


def slack_headers(secret: str, body: bytes) -> dict:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


def answered(env, name, r, *, content_type: str, before, mark) -> bytes:
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith(content_type), r
    assert env.listing(f"preset-{name}") == before, "a handshake was stored as a delivery"
    env.assert_logged(mark, "reason=handshake")
    return r.body


def test_slack_url_verification(env):
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    before, mark = env.listing("preset-slack"), env.log_mark()
    r = env.post("/t/preset/slack", body, {"Content-Type": "application/json", **slack_headers(env.secrets["slack"], body)})
    out = answered(env, "slack", r, content_type="application/json", before=before, mark=mark)
    assert json.loads(out) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    # Forged: refused before it is looked at.
    before, mark = env.listing("preset-slack"), env.log_mark()
    r = env.post("/t/preset/slack", body, {"Content-Type": "application/json", **slack_headers("not-the-secret", body)})
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="preset-slack", before=before)
    assert b"3eZbrw1aBm2rZgRNFdxV" not in r.body
    # An ordinary event is a delivery.
    event = b'{"type":"event_callback","event":{"type":"app_mention"}}'
    accepted_id(env, env.post("/t/preset/slack", event, slack_headers(env.secrets["slack"], event)))


def test_discord_ping(env):
    pair = env.prefix.key_pairs["discord"][0]
    ping = b'{"type":1,"id":"1","application_id":"2","version":1}'
    before, mark = env.listing("preset-discord"), env.log_mark()
    r = env.post("/t/preset/discord", ping, {"Content-Type": "application/json", **pair.sign(ping)})
    assert json.loads(answered(env, "discord", r, content_type="application/json", before=before, mark=mark)) == {"type": 1}
    import public_keys
    before, mark = env.listing("preset-discord"), env.log_mark()
    r = env.post("/t/preset/discord", ping, public_keys.KeyPair("discord").sign(ping))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="preset-discord", before=before)
    command = b'{"type":2,"data":{"name":"hello"}}'
    accepted_id(env, env.post("/t/preset/discord", command, pair.sign(command)))


def test_twitch_callback_verification(env):
    secret = env.prefix.catalog_secrets["twitch"][1]
    body = json.dumps({"challenge": "pogchamp-kappa-360noscope-vohiyo",
                       "subscription": {"type": "channel.follow", "status": "webhook_callback_verification_pending"}}).encode()
    headers = {**senders.sign("twitch", secret, body), "Twitch-Eventsub-Message-Type": "webhook_callback_verification"}
    before, mark = env.listing("preset-twitch"), env.log_mark()
    r = env.post("/t/preset/twitch", body, {"Content-Type": "application/json", **headers})
    assert answered(env, "twitch", r, content_type="text/plain", before=before, mark=mark) == b"pogchamp-kappa-360noscope-vohiyo"
    forged = {**senders.sign("twitch", "not-the-secret", body), "Twitch-Eventsub-Message-Type": "webhook_callback_verification"}
    before, mark = env.listing("preset-twitch"), env.log_mark()
    check_rejected(env, env.post("/t/preset/twitch", body, forged), mark, status=500, reason="signature-mismatch",
                   spool="preset-twitch", before=before)


def test_zoom_url_validation(env):
    first = env.prefix.catalog_secrets["zoom"][0]  # the location's first secret answers
    body = json.dumps({"payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}, "event_ts": 1654503849680,
                       "event": "endpoint.url_validation"}).encode()
    before, mark = env.listing("preset-zoom"), env.log_mark()
    r = env.post("/t/preset/zoom", body, {"Content-Type": "application/json", **senders.sign("zoom", first, body)})
    out = json.loads(answered(env, "zoom", r, content_type="application/json", before=before, mark=mark))
    assert out == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                   "encryptedToken": hmac.new(first.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()}
    before, mark = env.listing("preset-zoom"), env.log_mark()
    r = env.post("/t/preset/zoom", body, senders.sign("zoom", "not-the-secret", body))
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="preset-zoom", before=before)


def test_meta_get_subscription(env):
    path = "/t/preset/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444"
    before, mark = env.listing("preset-meta"), env.log_mark()
    r = env.request("GET", path.format(VERIFY_TOKEN))
    assert answered(env, "meta", r, content_type="text/plain", before=before, mark=mark) == b"1158201444"
    mark = env.log_mark()
    r = env.request("GET", path.format("another-token"))
    assert r.status == 403, r
    env.assert_logged(mark, "reason=handshake-refused")
    assert VERIFY_TOKEN not in env.log_since(mark)
    assert env.request("GET", "/t/preset/meta?hub.mode=subscribe").status == 405


def test_dropbox_get_challenge(env):
    before, mark = env.listing("preset-dropbox"), env.log_mark()
    r = env.request("GET", "/t/preset/dropbox?challenge=q6uPZ2Smx1xOAasCpSKE")
    assert answered(env, "dropbox", r, content_type="text/plain", before=before, mark=mark) == b"q6uPZ2Smx1xOAasCpSKE"
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert env.request("GET", "/t/preset/dropbox").status == 405
    assert env.request("GET", "/t/preset/dropbox?challenge=%3Cscript%3E%20x").status == 400


@pytest.mark.parametrize("path", ["/t/preset/gitea?challenge=x", "/t/preset/stripe?hub.challenge=1"])
def test_other_gets_are_still_405(env, path):
    assert env.request("GET", path).status == 405
