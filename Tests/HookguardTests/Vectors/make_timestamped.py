#!/usr/bin/env python3
"""Writes timestamped.json: known answers for the schemes that sign more than
the body, computed with Python's hmac from each sender's published description
(never from hookguard's code). Run from this directory: python3 make_timestamped.py

  standard-webhooks / svix  github.com/standard-webhooks/standard-webhooks spec.md,
                            docs.svix.com "Verifying Webhooks Manually":
                            base64(HMAC-SHA256(base64decode(secret minus "whsec_"),
                            "<id>.<timestamp>.<body>")), sent as "v1,<sig>", space-separated
  stripe                    stripe.com/docs/webhooks/signatures#verify-manually:
                            hex(HMAC-SHA256(whole "whsec_..." secret, "<t>.<body>")),
                            sent as "t=<t>,v1=<sig>[,v1=...][,v0=...]"
  slack                     docs.slack.dev "Verifying requests from Slack":
                            "v0=" + hex(HMAC-SHA256(secret, "v0:<ts>:<body>"))
  tito-timestamp            Tito's API docs (webhooks): hex(HMAC-SHA256(secret, "<ts>.<body>"))
  shopify                   shopify.dev "Verify webhooks": base64(HMAC-SHA256(secret, body))
  gitlab                    docs.gitlab.com webhooks: X-Gitlab-Token is the secret token itself
"""
import base64
import hashlib
import hmac
import json

BODY = '{"id":"evt_1","type":"order.created","data":{"name":"Paul Campbell","note":"caf\u00e9"}}'
TS = 1700000000


def mac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def whsec_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


vectors = []


def add(scheme, secret, headers, note, *, timestamp=TS, body=BODY, signer=True):
    vectors.append({"scheme": scheme, "secret": secret, "now": timestamp, "body": body,
                    "headers": headers, "signer": signer, "note": note})


# Standard Webhooks' own example (its spec and Svix's docs), and Svix's header names
sw_secret, sw_id, sw_ts, sw_body = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                    "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
sw_sig = "v1," + b64(mac(whsec_key(sw_secret), f"{sw_id}.{sw_ts}.{sw_body}"))
assert sw_sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sw_sig
for scheme, p in (("standard-webhooks", "webhook-"), ("svix", "svix-")):
    add(scheme, sw_secret, {p + "id": sw_id, p + "timestamp": str(sw_ts), p + "signature": sw_sig},
        "published example (Standard Webhooks spec, Svix docs)", timestamp=sw_ts, body=sw_body)

sw2 = "whsec_" + b64(bytes(range(1, 33)))
other = "whsec_" + b64(bytes(range(101, 133)))
good = "v1," + b64(mac(whsec_key(sw2), f"msg_2.{TS}.{BODY}"))
old = "v1," + b64(mac(whsec_key(other), f"msg_2.{TS}.{BODY}"))
add("standard-webhooks", sw2, {"webhook-id": "msg_2", "webhook-timestamp": str(TS), "webhook-signature": good},
    "python hmac, 32-byte key")
add("standard-webhooks", sw2, {"webhook-id": "msg_2", "webhook-timestamp": str(TS),
                               "webhook-signature": f"{old} v1a,bm90IGEgc2lnbmF0dXJl {good}"},
    "rotation: another key's v1, an asymmetric v1a (skipped), then the valid v1", signer=False)

# Stripe: the key is the whole whsec_ string, not decoded
st = "whsec_test_" + "5f2b8c" * 4
st_sig = hmac.new(st.encode(), f"{TS}.{BODY}".encode(), hashlib.sha256).hexdigest()
st_other = hmac.new(b"whsec_rolled", f"{TS}.{BODY}".encode(), hashlib.sha256).hexdigest()
add("stripe", st, {"Stripe-Signature": f"t={TS},v1={st_sig}"}, "python hmac over t.body, key as given")
add("stripe", st, {"Stripe-Signature": f"t={TS},v1={st_other},v1={st_sig},v0={'0' * 64}"},
    "rolled secret: two v1 entries (one valid) and a test-mode v0 (skipped)", signer=False)

# Slack's documented example
sl_secret, sl_ts = "8f742231b10e8888abcd99yyyzzz85a5", 1531420618
sl_body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
           "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
           "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
           "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
sl_sig = "v0=" + hmac.new(sl_secret.encode(), f"v0:{sl_ts}:{sl_body}".encode(), hashlib.sha256).hexdigest()
assert sl_sig == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", sl_sig
add("slack", sl_secret, {"X-Slack-Request-Timestamp": str(sl_ts), "X-Slack-Signature": sl_sig},
    "published example (Slack, Verifying requests from Slack)", timestamp=sl_ts, body=sl_body)
add("slack", "slack-secret-1", {"X-Slack-Request-Timestamp": str(TS), "X-Slack-Signature":
    "v0=" + hmac.new(b"slack-secret-1", f"v0:{TS}:{BODY}".encode(), hashlib.sha256).hexdigest()},
    "python hmac over v0:ts:body")

# Tito's newer API
tt = "tito-webhook-secret"
add("tito-timestamp", tt, {"X-Tito-Timestamp": str(TS), "X-Tito-Signature":
    hmac.new(tt.encode(), f"{TS}.{BODY}".encode(), hashlib.sha256).hexdigest()}, "python hmac over ts.body")

# Shopify
sh = "shpss_" + "ab12" * 8
add("shopify", sh, {"X-Shopify-Hmac-Sha256": b64(hmac.new(sh.encode(), BODY.encode(), hashlib.sha256).digest()),
                    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}, "python hmac, base64 of body")

# GitLab: the token itself
add("gitlab", "gitlab token with spaces", {"X-Gitlab-Token": "gitlab token with spaces",
                                           "Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd"},
    "the secret token itself")

with open("timestamped.json", "w") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(vectors)} vectors")
