"""The bodies the benchmark sends: a Tito ticket (as in Tito's documentation),
padded with answers to exact sizes, and their signatures (Python's hmac)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

SIZES = {"1.5KB": 1536, "64KiB": 65536, "5MiB": 5 * 1024 * 1024}


def ticket(size: int) -> bytes:
    """A Tito ticket.completed payload of exactly `size` bytes (UTF-8, compact JSON)."""
    doc = {
        "event": {"title": "AwesomeConf \U0001F44D", "url": "https://ti.to/paulca/awesomeconf",
                  "account_slug": "paulca", "slug": "awesomeconf", "currency": "EUR",
                  "start_date": "2020-12-01", "end_date": None},
        "name": "Paul Campbell", "first_name": "Paul", "last_name": "Campbell",
        "email": "funconf@gmail.com", "phone_number": None, "company_name": None,
        "reference": "1i5nfwf2t", "price": "1.00", "tax": "0.19", "price_less_tax": "0.81",
        "slug": "1i5nfwf2t24", "state_name": "complete", "release_price": "1.00",
        "discount_code_used": "", "total_paid": "1.00", "total_paid_less_tax": "0.81",
        "updated_at": "2012-05-08T20:08:39.000+10:00", "url": "https://ti.to/tickets/1i5nfwf2t24",
        "admin_url": "https://ti.to/paulca/awesomeconf/admin/tickets/1i5nfwf2t24",
        "release_title": "AwesomeConf ticket", "release_id": 90,
        "release": {"id": 90, "title": "AwesomeConf ticket", "slug": "31az2uvoh4", "metadata": None},
        "registration": {"url": "https://ti.to/registrations/bdtyap3hguq", "total": "1.00",
                         "currency": "EUR", "name": "Paul Campbell", "email": "funconf@gmail.com",
                         "receipt": {"total": "1.00", "tax": "0.19", "paid": True}},
        "answers": [],
    }
    doc["notes"] = ""
    answer = {"question": {"title": "Comments", "id": 1005357}, "response": "See you there!"}
    encode = lambda d: json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()
    base, one = len(encode(doc)), len(encode({"a": [answer]})) - len(encode({"a": []}))
    doc["answers"] = [answer] * max(0, (size - base) // (one + 1) - 1)
    # The notes take up the exact remainder.
    short = size - len(encode(doc))
    if short < 0:
        raise ValueError(f"cannot make a ticket of {size} bytes")
    doc["notes"] = "x" * short
    body = encode(doc)
    assert len(body) == size, (len(body), size)
    return body


def sign(secret: str, body: bytes) -> str:
    """X-Signature as the x-signature scheme, PHP's hash_hmac and webhook's
    payload-hmac-sha256 all read it: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def write_bodies(directory: Path, names: list[str]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        paths[name] = directory / f"ticket-{name}.json"
        paths[name].write_bytes(ticket(SIZES[name]))
    return paths
