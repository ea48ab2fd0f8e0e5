"""twilio, square and hubspot through nginx: the location states the public URL
(HOOKGUARD_URL, in nginx-extra.conf's /t/preset/ location). Twilio's requests
are signed by the official `twilio` library's RequestValidator, and `hookguard
sign` is checked by it; square and hubspot by Python's hmac from their docs.
Signed inside the body: mailgun (Python's hmac) and adyen (the official `Adyen`
library's generate_notification_sig, per item)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import time
from urllib.parse import urlencode

import pytest
from Adyen.util import generate_notification_sig, is_valid_hmac_notification  # PyPI, as twilio
from twilio.request_validator import RequestValidator  # PyPI, installed by scripts/lib/install-deps test

from checks import accepted_id, check_entry, check_rejected
from harness import HOOKGUARD_BIN

PUBLIC = "https://hooks.example.org/t/preset/{}"


def post(env, name, body, headers, query=""):
    return env.post(f"/t/preset/{name}" + (f"?{query}" if query else ""), body, headers)


def square(secret: str, url: str, body: bytes) -> dict:
    mac = hmac.new(secret.encode(), url.encode() + body, hashlib.sha256).digest()
    return {"X-Square-Hmacsha256-Signature": base64.b64encode(mac).decode()}


def hubspot(secret: str, url: str, body: bytes, ts_ms: int | None = None) -> dict:
    ts = int(time.time() * 1000) if ts_ms is None else ts_ms
    mac = hmac.new(secret.encode(), b"POST" + url.encode() + body + str(ts).encode(), hashlib.sha256).digest()
    return {"X-HubSpot-Request-Timestamp": str(ts), "X-HubSpot-Signature-v3": base64.b64encode(mac).decode()}


@pytest.mark.parametrize("key", [0, 1])
def test_twilio_form_signed_by_the_library(env, key):
    secret = env.prefix.url_secrets["twilio"][key]
    fields = {"MessageSid": "SM1", "Body": "Hello, café & co", "From": "+15551234567", "To": "+15557654321"}
    body = urlencode(fields).encode()
    signature = RequestValidator(secret).compute_signature(PUBLIC.format("twilio"), fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    delivery_id = accepted_id(env, post(env, "twilio", body, headers))
    check_entry(env, "preset-twilio", delivery_id, scheme="twilio", uri="/t/preset/twilio", body=body)
    # Signed for the URL with :443, as some of Twilio's back ends do: accepted too.
    with_port = RequestValidator(secret).compute_signature("https://hooks.example.org:443/t/preset/twilio", fields)
    accepted_id(env, post(env, "twilio", body, {**headers, "X-Twilio-Signature": with_port}))


def test_twilio_json_with_body_hash(env):
    secret = env.prefix.url_secrets["twilio"][1]
    body = b'{"event":"status","sid":"SM2"}'
    query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    url = PUBLIC.format("twilio") + "?" + query
    signature = RequestValidator(secret).compute_signature(url, {})
    assert RequestValidator(secret).validate(url, body.decode(), signature)
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}
    accepted_id(env, post(env, "twilio", body, headers, query))
    # The same URL and signature with another body: the hash no longer matches.
    before, mark = env.listing("preset-twilio"), env.log_mark()
    r = post(env, "twilio", b'{"event":"forged"}', headers, query)
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="preset-twilio", before=before)


def test_twilio_refusals(env):
    secret = env.prefix.url_secrets["twilio"][1]
    fields = {"MessageSid": "SM3", "Body": "hi"}
    body = urlencode(fields).encode()
    cases = [
        ("another URL", RequestValidator(secret).compute_signature("https://evil.example/t/preset/twilio", fields),
         body, "signature-mismatch"),
        ("another token", RequestValidator("not-the-token").compute_signature(PUBLIC.format("twilio"), fields),
         body, "signature-mismatch"),
        ("a field added", RequestValidator(secret).compute_signature(PUBLIC.format("twilio"), fields),
         body + b"&Extra=1", "signature-mismatch"),
        ("not base64", "***", body, "signature-malformed"),
        ("hex instead of base64", hashlib.sha1(b"x").hexdigest(), body, "signature-malformed"),
    ]
    for what, signature, sent, reason in cases:
        before, mark = env.listing("preset-twilio"), env.log_mark()
        r = post(env, "twilio", sent, {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
        check_rejected(env, r, mark, status=500, reason=reason, spool="preset-twilio", before=before)
    before, mark = env.listing("preset-twilio"), env.log_mark()
    check_rejected(env, post(env, "twilio", body, {}), mark, status=500, reason="signature-missing",
                   spool="preset-twilio", before=before)


def test_hookguard_sign_passes_twilios_validator(env, tmp_path):
    secret = env.prefix.url_secrets["twilio"][0]
    fields = {"CallSid": "CA1", "Digits": "1234", "Caller": "+12349013030"}
    body = urlencode(fields).encode()
    (tmp_path / "body").write_bytes(body)
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", "twilio", "--secret", secret, "--url",
                        PUBLIC.format("twilio"), str(tmp_path / "body")], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    headers = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    assert RequestValidator(secret).validate(PUBLIC.format("twilio"), fields, headers["X-Twilio-Signature"])
    assert not RequestValidator(secret + "x").validate(PUBLIC.format("twilio"), fields, headers["X-Twilio-Signature"])
    r = subprocess.run([str(HOOKGUARD_BIN), "sign", "--scheme", "twilio", "--secret", secret, str(tmp_path / "body")],
                       capture_output=True, timeout=30)
    assert r.returncode == 64 and b"--url" in r.stderr, r


@pytest.mark.parametrize("key", [0, 1])
def test_square_and_hubspot_genuine_with_either_key(env, key):
    for name, sign in (("square", square), ("hubspot", hubspot)):
        body = b'{"type":"payment.updated","n":%d}' % key
        headers = {"Content-Type": "application/json", **sign(env.prefix.url_secrets[name][key], PUBLIC.format(name), body)}
        delivery_id = accepted_id(env, post(env, name, body, headers))
        check_entry(env, f"preset-{name}", delivery_id, scheme=name, uri=f"/t/preset/{name}", body=body)


def test_square_and_hubspot_refusals(env):
    body = b'{"type":"refused"}'
    now = int(time.time() * 1000)
    sq, hs = env.prefix.url_secrets["square"][1], env.prefix.url_secrets["hubspot"][1]
    cases = [
        ("square", square(sq, "https://other.example/t/preset/square", body), body, "signature-mismatch"),
        ("square", square(sq, PUBLIC.format("square"), body), body + b" ", "signature-mismatch"),
        ("square", square("wrong", PUBLIC.format("square"), body), body, "signature-mismatch"),
        ("square", {"X-Square-Hmacsha256-Signature": "AAAA"}, body, "signature-malformed"),
        ("hubspot", hubspot(hs, "https://other.example/t/preset/hubspot", body), body, "signature-mismatch"),
        ("hubspot", hubspot(hs, PUBLIC.format("hubspot"), body, now - 400_000), body, "signature-stale"),
        ("hubspot", hubspot(hs, PUBLIC.format("hubspot"), body, now + 400_000), body, "signature-future"),
        ("hubspot", {**hubspot(hs, PUBLIC.format("hubspot"), body), "X-HubSpot-Request-Timestamp": "1.5"}, body,
         "signature-malformed"),
        ("hubspot", {"X-HubSpot-Signature-v3": hubspot(hs, PUBLIC.format("hubspot"), body)["X-HubSpot-Signature-v3"]},
         body, "signature-missing"),
    ]
    for name, headers, sent, reason in cases:
        before, mark = env.listing(f"preset-{name}"), env.log_mark()
        r = post(env, name, sent, {"Content-Type": "application/json", **headers})
        check_rejected(env, r, mark, status=500, reason=reason, spool=f"preset-{name}", before=before)


# --------------------------------------------------------------------------
# mailgun: the signature is inside the JSON body (Python's hmac, from Mailgun's docs)


def mailgun_body(key: str, timestamp: int, token: str, event: str = "delivered") -> bytes:
    import json
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": str(timestamp), "token": token, "signature": signature},
                       "event-data": {"event": event}}).encode()


@pytest.mark.parametrize("key", [0, 1])
def test_mailgun_genuine_with_either_key(env, key):
    body = mailgun_body(env.prefix.url_secrets["mailgun"][key], int(time.time()), f"tok{key}" * 10)
    delivery_id = accepted_id(env, post(env, "mailgun", body, {"Content-Type": "application/json"}))
    check_entry(env, "preset-mailgun", delivery_id, scheme="mailgun", uri="/t/preset/mailgun", body=body)


def test_mailgun_refusals(env):
    secret, now = env.prefix.url_secrets["mailgun"][1], int(time.time())
    genuine = mailgun_body(secret, now, "t" * 50)
    cases = [
        (mailgun_body("not-the-key", now, "t" * 50), "signature-mismatch"),
        (genuine.replace(b'"t' + b"t" * 49, b'"u' + b"t" * 49), "signature-mismatch"),  # another token
        (mailgun_body(secret, now - 400, "t" * 50), "signature-stale"),
        (mailgun_body(secret, now + 400, "t" * 50), "signature-future"),
        (b'{"event-data":{"event":"delivered"}}', "signature-missing"),
        (genuine.replace(b'"signature": "', b'"signature": "zz'), "signature-malformed"),
    ]
    for body, reason in cases:
        before, mark = env.listing("preset-mailgun"), env.log_mark()
        r = post(env, "mailgun", body, {"Content-Type": "application/json"})
        check_rejected(env, r, mark, status=500, reason=reason, spool="preset-mailgun", before=before)


# --------------------------------------------------------------------------
# adyen: each notification item signed on its own (the Adyen library), answered [accepted]


def adyen_item(psp: str, value: int = 1130, **fields) -> dict:
    return {"pspReference": psp, "merchantAccountCode": "TestMerchant", "merchantReference": f"order-{psp}",
            "amount": {"value": value, "currency": "EUR"}, "eventCode": "AUTHORISATION", "success": "true",
            "additionalData": {"authCode": "1234"}, **fields}


def adyen_body(items: list, keys: list) -> bytes:
    """The notification, item i signed with keys[i] by the Adyen library (checked by its verifier)."""
    import copy
    import json
    signed = []
    for item, key in zip(items, keys):
        item = copy.deepcopy(item)
        unsigned = {k: v for k, v in item.items() if k != "additionalData"}
        item["additionalData"]["hmacSignature"] = generate_notification_sig(unsigned, key).decode()
        assert is_valid_hmac_notification(item, key)
        signed.append({"NotificationRequestItem": item})
    return json.dumps({"live": "false", "notificationItems": signed}).encode()


def adyen_accepted_id(env, r, mark: int) -> str:
    """A 200 with exactly `[accepted]`, as Adyen requires; the delivery id from the log line."""
    import re
    assert r.status == 200, f"expected 200, got {r!r}" + env.diag()
    assert r.body == b"[accepted]", f"Adyen needs [accepted], got {r.body!r}"
    line = env.assert_logged(mark, "status=200", "scheme=adyen", "reason=accepted")
    found = re.search(r"\bid=([0-9a-f-]{36})\b", line)
    assert found, f"no id in the log line: {line}"
    return found.group(1)


@pytest.mark.parametrize("key", [0, 1])
def test_adyen_genuine_answered_accepted(env, key):
    secret = env.prefix.adyen_keys[key]
    body = adyen_body([adyen_item("7914073381342284"), adyen_item("8816178952380553", value=500,
                                                                   originalReference="7914073381342284",
                                                                   eventCode="REFUND", success="false")],
                      [secret, secret])
    mark = env.log_mark()
    r = post(env, "adyen", body, {"Content-Type": "application/json"})
    delivery_id = adyen_accepted_id(env, r, mark)
    check_entry(env, "preset-adyen", delivery_id, scheme="adyen", uri="/t/preset/adyen", body=body)


def test_adyen_items_under_either_key(env):
    old, new = env.prefix.adyen_keys
    body = adyen_body([adyen_item("1000000000000001"), adyen_item("1000000000000002")], [old, new])
    mark = env.log_mark()
    delivery_id = adyen_accepted_id(env, post(env, "adyen", body, {"Content-Type": "application/json"}), mark)
    check_entry(env, "preset-adyen", delivery_id, scheme="adyen", uri="/t/preset/adyen", body=body)


def test_adyen_refusals(env):
    import json
    key = env.prefix.adyen_keys[1]
    items = [adyen_item("2000000000000001"), adyen_item("2000000000000002", value=700)]
    genuine = adyen_body(items, [key, key])
    no_signature = json.loads(genuine)
    del no_signature["notificationItems"][1]["NotificationRequestItem"]["additionalData"]["hmacSignature"]
    cases = [
        ("forged", adyen_body(items, [os.urandom(32).hex(), os.urandom(32).hex()]), "signature-mismatch"),
        ("first item tampered", genuine.replace(b'"value": 1130', b'"value": 1131'), "signature-mismatch"),
        ("second item tampered", genuine.replace(b'"value": 700', b'"value": 7000'), "signature-mismatch"),
        ("second item under another key", adyen_body(items, [key, os.urandom(32).hex()]), "signature-mismatch"),
        ("second item without hmacSignature", json.dumps(no_signature).encode(), "signature-missing"),
        ("no items", b'{"live": "false", "notificationItems": []}', "signature-malformed"),
        ("not a notification", b'{"live": "false"}', "signature-missing"),
        ("signature not base64", genuine.replace(b'"hmacSignature": "', b'"hmacSignature": "%%'), "signature-malformed"),
    ]
    for what, body, reason in cases:
        assert body != genuine, what
        before, mark = env.listing("preset-adyen"), env.log_mark()
        r = post(env, "adyen", body, {"Content-Type": "application/json"})
        assert r.body != b"[accepted]", what
        check_rejected(env, r, mark, status=500, reason=reason, spool="preset-adyen", before=before)
