#!/usr/bin/env python3
"""Writes bodysigned.json: Mailgun deliveries signed with Python's hmac as
Mailgun's documentation describes (hex HMAC-SHA256 of timestamp + token under
the webhook signing key, in the JSON body's "signature" object), and Adyen
notifications, each item signed by the official Adyen library (PyPI `Adyen`,
`Adyen.util.generate_notification_sig`), starting from Adyen's documented
example. Never hookguard.
Run from this directory: python3 make_bodysigned.py"""
import hashlib
import hmac
import json

from Adyen.util import generate_notification_sig, is_valid_hmac_notification


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

# Adyen's documented example (docs.adyen.com, "Verify HMAC signatures"): this key and item give this signature.
ADYEN_DOCS_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ADYEN_DOCS_ITEM = {"additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
                   "amount": {"currency": "EUR", "value": 1130}, "eventCode": "AUTHORISATION",
                   "merchantAccountCode": "TestMerchant", "merchantReference": "TestPayment-1407325143704",
                   "pspReference": "7914073381342284", "success": "true"}
assert is_valid_hmac_notification(ADYEN_DOCS_ITEM, ADYEN_DOCS_KEY)
assert generate_notification_sig(ADYEN_DOCS_ITEM, ADYEN_DOCS_KEY).decode() == "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="


def adyen(items: list, keys: list) -> str:
    """The notification with item i signed by keys[i] through the Adyen library."""
    signed = []
    for item, key in zip(items, keys):
        item = dict(item, additionalData=dict(item.get("additionalData", {})))
        item["additionalData"]["hmacSignature"] = generate_notification_sig(
            {k: v for k, v in item.items() if k != "additionalData"}, key).decode()
        signed.append({"NotificationRequestItem": item})
    return json.dumps({"live": "false", "notificationItems": signed}, ensure_ascii=False)


ADYEN_KEY_2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
adyen_refund = {"amount": {"currency": "USD", "value": 500}, "eventCode": "REFUND",
                "merchantAccountCode": "TestMerchant", "merchantReference": "Caf\u00e9-Order:42",
                "originalReference": "7914073381342284", "pspReference": "8816178952380553",
                "success": "false", "additionalData": {"refundReason": "late"}}
vectors += [
    {"scheme": "adyen", "secret": ADYEN_DOCS_KEY, "now": 0,
     "body": json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": ADYEN_DOCS_ITEM}]}),
     "note": "Adyen's documented example"},
    {"scheme": "adyen", "secret": ADYEN_KEY_2, "now": 0,
     "body": adyen([ADYEN_DOCS_ITEM, adyen_refund], [ADYEN_KEY_2, ADYEN_KEY_2]),
     "note": "two items (originalReference, non-ASCII, lowercase hex key), Adyen library"},
]
with open("bodysigned.json", "w") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(len(vectors), "vectors")
