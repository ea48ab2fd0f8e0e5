#!/usr/bin/env python3
"""Writes bodysigned.json: Mailgun deliveries signed with Python's hmac as
Mailgun's documentation describes (hex HMAC-SHA256 of timestamp + token under
the webhook signing key, in the JSON body's "signature" object). Never hookguard.
Run from this directory: python3 make_bodysigned.py"""
import hashlib
import hmac
import json


def delivery(key: str, timestamp: str, token: str, event: dict) -> str:
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": timestamp, "token": token, "signature": signature},
                       "event-data": event})


vectors = [
    {"scheme": "mailgun", "secret": "key-mailgun-signing-1", "now": 1700000000,
     "body": delivery("key-mailgun-signing-1", "1700000000", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
                      {"event": "delivered", "id": "CPgfbmQMTCKtHW6uIWtuVe"}),
     "note": "python hmac over timestamp+token"},
    {"scheme": "mailgun", "secret": "key-mailgun-signing-2", "now": 1529006854,
     "body": delivery("key-mailgun-signing-2", "1529006854", "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
                      {"event": "opened", "recipient": "caf\u00e9@example.com"}),
     "note": "python hmac, the timestamp of Mailgun's documented example"},
]
with open("bodysigned.json", "w") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(vectors), "vectors")
