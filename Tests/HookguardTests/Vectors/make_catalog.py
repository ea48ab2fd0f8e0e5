#!/usr/bin/env python3
"""Writes catalog.json: known answers for the presets issue 16 adds, in the
format of timestamped.json. Each is computed by Tests/integration/senders.py
(Python's hmac, from each sender's documentation; never hookguard's code),
except the published examples, which are copied from where they are named.
Run from this directory: python3 make_catalog.py"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))
import senders  # noqa: E402

BODY = '{"id":"evt_1","type":"order.created","data":{"name":"Paul Campbell","note":"caf\u00e9"}}'
TS = 1700000000
vectors = []


def add(scheme, secret, headers, note, *, timestamp=TS, body=BODY, signer=True):
    vectors.append({"scheme": scheme, "secret": secret, "now": timestamp, "body": body,
                    "headers": headers, "signer": signer, "note": note})


for name, s in senders.SENDERS.items():
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" if s.key == "whsec" else f"{name}-secret-1"
    headers = senders.sign(name, secret, BODY.encode(), timestamp=TS, delivery_id="dlv_1", nanos=0)
    if not s.id_header or "{id}" not in s.template:
        headers.pop(s.id_header, None) if s.id_header else None
    add(name, secret, headers, f"python hmac ({s.algorithm}, {s.encoding}) over {s.template}")
    if s.multi:
        rotated = senders.sign(name, [f"{name}-old-secret" if s.key != "whsec" else "whsec_" + "QUJD" * 8, secret],
                               BODY.encode(), timestamp=TS, delivery_id="dlv_1", nanos=0)
        if s.id_header and "{id}" not in s.template:
            rotated.pop(s.id_header, None)
        add(name, secret, rotated, "rotation: another key's signature, then this key's", signer=False)
    if s.ts_format != "seconds":
        nanos = senders.sign(name, secret, BODY.encode(), timestamp=TS, delivery_id="dlv_1", nanos=123456789)
        if s.id_header and "{id}" not in s.template:
            nanos.pop(s.id_header, None)
        add(name, secret, nanos, f"python hmac, timestamp with a fraction ({s.ts_format})", signer=False)

# Paddle's own SDK test (paddle-python-sdk tests/Unit/Notification/test_Verifier.py,
# test_validate_paddle_signature_header_integrity): three secrets, the third one signed.
add("paddle", "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
    {"Paddle-Signature": "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"},
    "published example (paddle-python-sdk test_Verifier: 'dummy' entry skipped)", timestamp=1696195954,
    body="hello-world", signer=False)

with open("catalog.json", "w") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(vectors)} vectors")
