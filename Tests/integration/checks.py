"""Assertions shared by the integration tests (the contract, in one place)."""

from __future__ import annotations

import base64
import json
import re
import stat
from datetime import datetime, timedelta, timezone

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

_UNSET = object()


def accepted_id(env, r) -> str:
    """A 200 answer: application/json, exactly {"id": "<UUIDv7>"}."""
    assert r.status == 200, f"expected 200, got {r!r}" + env.diag()
    ctype = (r.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ctype == "application/json", f"Content-Type of a 200: {r!r}"
    try:
        doc = json.loads(r.body)
    except ValueError:
        raise AssertionError(f"200 body is not JSON: {r!r}") from None
    assert isinstance(doc, dict) and set(doc) == {"id"}, f"200 body is not {{\"id\": ...}}: {r!r}"
    assert isinstance(doc["id"], str) and UUID7.match(doc["id"]), \
        f"id is not a lower-case UUIDv7: {doc['id']!r}"
    return doc["id"]


def check_entry(env, spool: str, delivery_id: str, *, scheme: str, uri: str, body: bytes,
                headers: dict | None = None, event=_UNSET) -> dict:
    """The spool file new/<id>.json is the envelope the contract describes."""
    path = env.entry_path(spool, delivery_id)
    e = env.read_entry(spool, delivery_id)
    where = f" in {path}"
    mode = path.stat().st_mode
    assert stat.S_ISREG(mode), f"not a regular file{where}"
    assert mode & 0o007 == 0, f"spool file is world-accessible: mode {oct(mode & 0o777)}{where}"

    assert isinstance(e, dict), f"envelope is not an object{where}"
    assert e.get("id") == delivery_id, f"id {e.get('id')!r} != {delivery_id!r}{where}"
    assert e.get("scheme") == scheme, f"scheme {e.get('scheme')!r} != {scheme!r}{where}"
    assert e.get("uri") == uri, f"uri {e.get('uri')!r} != {uri!r}{where}"

    received = e.get("received_at")
    assert isinstance(received, str) and received.endswith("Z"), \
        f"received_at not RFC 3339 UTC ending in Z: {received!r}{where}"
    try:
        when = datetime.fromisoformat(received.replace("Z", "+00:00"))
    except ValueError:
        raise AssertionError(f"received_at does not parse: {received!r}{where}") from None
    now = datetime.now(timezone.utc)
    assert abs(now - when) < timedelta(minutes=5), f"received_at {received!r} is not now ({now})"

    check_body(e, body, where)

    hdrs = e.get("headers")
    assert isinstance(hdrs, dict), f"headers is not an object{where}"
    for name in hdrs:
        assert name == name.lower() and "_" not in name, f"header name {name!r} not lower-case " \
                                                          f"with dashes{where}"
    for name, value in (headers or {}).items():
        got = hdrs.get(name.lower())
        assert got == value, f"header {name.lower()!r}: {got!r} != sent {value!r}{where}; " \
                             f"headers = {hdrs!r}"

    if event is None:
        assert "event" not in e, f"event present although no event header was sent{where}"
    elif event is not _UNSET:
        assert e.get("event") == event, f"event {e.get('event')!r} != {event!r}{where}"
    return e


def check_body(e: dict, body: bytes, where: str = "") -> None:
    """Exactly one of body (UTF-8 bodies) and body_base64 (anything else)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        assert "body_base64" not in e, f"UTF-8 body stored as body_base64{where}"
        assert "body" in e, f"no body in envelope{where}"
        got = e["body"]
        assert isinstance(got, str), f"body is not a string{where}"
        if got != text:
            i = next((i for i, (a, b) in enumerate(zip(got, text)) if a != b),
                     min(len(got), len(text)))
            raise AssertionError(
                f"body differs{where}: lengths {len(got)} vs sent {len(text)}, first difference "
                f"at char {i}: got {got[max(0, i - 10):i + 10]!r}, sent {text[max(0, i - 10):i + 10]!r}")
    else:
        assert "body" not in e, f"non-UTF-8 body stored as body{where}"
        assert "body_base64" in e, f"no body_base64 in envelope{where}"
        try:
            got = base64.b64decode(e["body_base64"], validate=True)
        except (ValueError, TypeError):
            raise AssertionError(f"body_base64 is not valid base64{where}") from None
        assert got == body, f"body_base64 decodes to {len(got)} bytes that differ from the " \
                            f"{len(body)} sent{where}"


def check_rejected(env, r, mark: int, *, status: int, reason: str, spool: str | None = None,
                   before: set | None = None) -> str:
    """A refused request: the status, a log line with status= and reason=,
    nothing new in the spool and nothing left in its tmp/."""
    assert r.status == status, f"expected {status} ({reason}), got {r!r}" + env.diag()
    line = env.assert_logged(mark, f"status={status}", f"reason={reason}")
    if spool is not None:
        if before is not None:
            added = env.listing(spool) - before
            assert not added, f"rejected request spooled {sorted(added)}" + env.diag()
        env.assert_tmp_empty(spool)
    return line
