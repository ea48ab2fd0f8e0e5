#!/usr/bin/env python3
"""Writes urlbound.json: known answers for the URL-bound presets. twilio: its
documented example and vectors computed by the official `twilio` library's
RequestValidator; square and hubspot: Python's hmac from their documentation.
Never hookguard. Run from this directory: python3 make_urlbound.py"""
import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

vectors = []


def add(scheme, secret, url, body, headers, note, *, method="POST", now=0, signer=True):
    vectors.append({"scheme": scheme, "secret": secret, "url": url, "method": method, "body": body,
                    "headers": headers, "now": now, "signer": signer, "note": note})


# Twilio's documented example (twilio.com/docs/usage/webhooks/webhooks-security).
params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030",
          "To": "+18005551212"}
url = "https://mycompany.com/myapp.php?foo=1&bar=2"
signature = RequestValidator("12345").compute_signature(url, params)
assert signature == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", signature
add("twilio", "12345", url, urlencode(params), {"X-Twilio-Signature": signature},
    "published example (Twilio webhooks security), checked with twilio.RequestValidator")
# The same signed with the port, received at the URL without (and the reverse).
with_port = RequestValidator("12345").compute_signature("https://mycompany.com:443/myapp.php?foo=1&bar=2", params)
add("twilio", "12345", url, urlencode(params), {"X-Twilio-Signature": with_port},
    "twilio.RequestValidator, signed with :443", signer=False)
# Form fields needing decoding, and repeated names.
form = "Body=Hello+there%21&From=%2B15551234567&MediaUrl0=a&MediaUrl0=b&To=%2B15557654321"
validator = RequestValidator("twilio-auth-token-1")
from urllib.parse import parse_qs
multi = {k: v for k, v in parse_qs(form).items()}
class _Multi(dict):
    def getlist(self, k):
        return self[k]
sig_form = validator.compute_signature("https://hooks.example.org/sms", _Multi(multi))
add("twilio", "twilio-auth-token-1", "https://hooks.example.org/sms", form, {"X-Twilio-Signature": sig_form},
    "twilio.RequestValidator, encoded and repeated fields")
# JSON: the URL carries bodySHA256; only the URL is signed.
body = '{"event":"status","sid":"SM123"}'
digest = hashlib.sha256(body.encode()).hexdigest()
json_url = f"https://hooks.example.org/status?bodySHA256={digest}"
sig_json = validator.compute_signature(json_url, {})
assert validator.validate(json_url, body, sig_json)
add("twilio", "twilio-auth-token-1", json_url, body, {"X-Twilio-Signature": sig_json},
    "twilio.RequestValidator, JSON body with bodySHA256")

# Square: base64 HMAC-SHA256 of notification URL + body.
sq_url, sq_body = "https://hooks.example.org/square", '{"merchant_id":"M1","type":"payment.updated"}'
sq = base64.b64encode(hmac.new(b"square-signature-key", (sq_url + sq_body).encode(), hashlib.sha256).digest()).decode()
add("square", "square-signature-key", sq_url, sq_body, {"X-Square-Hmacsha256-Signature": sq}, "python hmac over url+body")

# HubSpot v3: base64 HMAC-SHA256 of method + URL + body + timestamp (ms).
hs_url, hs_body, hs_ts = "https://hooks.example.org/hubspot?portal=1", '[{"eventId":1}]', 1700000000000
hs = base64.b64encode(hmac.new(b"hubspot-client-secret", f"POST{hs_url}{hs_body}{hs_ts}".encode(),
                               hashlib.sha256).digest()).decode()
add("hubspot", "hubspot-client-secret", hs_url, hs_body,
    {"X-HubSpot-Request-Timestamp": str(hs_ts), "X-HubSpot-Signature-v3": hs},
    "python hmac over method+url+body+timestamp", now=hs_ts // 1000)

with open("urlbound.json", "w") as f:
    json.dump(vectors, f, indent=1)
    f.write("\n")
print(len(vectors), "vectors")
