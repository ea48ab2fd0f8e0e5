"""hookguard's answers other than the signature schemes themselves:
per-location options, methods, sizes, short bodies, bad configuration,
and request headers that try to pass for parameters.

The cases are Tests/answers.json, which the Swift handler tests
(HandlerTests.swift) run in process; here each runs through real nginx and
hookguard at its own location, /t/answers/<name> (answers_table.py)."""

from __future__ import annotations

import os
import socket

import pytest

import answers_table
from checks import accepted_id, check_entry, check_rejected
from harness import wait_until

CASES = answers_table.cases()


def test_the_table_has_cases_for_this_suite():
    assert len(CASES) >= 25, f"{answers_table.TABLE} has only {len(CASES)} cases for this suite"
    names = [c["name"] for c in answers_table.load()["cases"]]
    assert len(set(names)) == len(names), "two cases share a name (and so a location)"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_answer(env, case):
    request, expected = case["request"], case["answer"]
    status, reason = expected["status"], expected["reason"]
    path, spool = answers_table.location(case), answers_table.spool_name(case)
    b = answers_table.body(case)
    signatures = answers_table.signature_headers(case)
    headers = {"Content-Type": "application/json", **signatures,
               **{name: answers_table.filled(value, env.path, case)
                  for name, value in request.get("headers", {}).items()}}
    before, mark = env.listing(spool), env.log_mark()

    r = None
    if "clientSends" in request:
        _send_part_and_go_away(env, path, b, headers, request["clientSends"])
        line = env.wait_log(mark, f"reason={reason}", timeout=5)
        assert line, f"hookguard did not log reason={reason} within 5 s" + env.diag()
        assert f"status={status}" in line, f"{reason} logged without status={status}: {line}"
        assert env.listing(spool) == before, "a short body was spooled"
        env.assert_tmp_empty(spool)
    elif expected["stored"]:
        r = env.request(request.get("method", "POST"), path, b, headers)
        delivery_id = accepted_id(env, r)
        env.assert_logged(mark, f"status={status}", f"reason={reason}")
        extra = {"event": expected["event"]} if "event" in expected else {}
        check_entry(env, spool, delivery_id, scheme=case["params"]["HOOKGUARD_SCHEME"], uri=path,
                    body=b, headers=expected.get("recordedHeaders"), **extra)
        assert env.listing(spool) - before == {f"{delivery_id}.json"}
    else:
        r = env.request(request.get("method", "POST"), path, b, headers)
        check_rejected(env, r, mark, status=status, reason=reason, spool=spool, before=before)

    for name, value in expected.get("headers", {}).items():
        got = r.header(name)
        assert got is not None and got.strip() == value, f"answer without `{name}: {value}`: {r!r}"
    log = env.log_since(mark)
    for text in expected.get("logged", []):
        assert text in log, f"no {text!r} in the log since the request" + env.diag()
    for p in expected.get("untouched", []):
        filled = answers_table.filled(p, env.path, case)
        assert not os.path.exists(filled), f"{filled} was made"
    secret = case["params"].get("HOOKGUARD_SECRET")
    if secret:
        assert r is None or secret.encode() not in r.body, f"the answer holds the secret: {r!r}"
        assert secret not in env.log_text(), "hookguard logged the location's secret"
    if request.get("signature") is None:
        for value in signatures.values():
            assert value not in log, f"hookguard logged the signature {value}"


def _unix_connections(path) -> int:
    """Connected stream sockets bound to path (hookguard's accepted
    connections), from /proc/net/unix."""
    n = 0
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                cols = line.split()
                if len(cols) >= 8 and cols[7] == str(path) and cols[5] == "03":
                    n += 1
    except OSError:
        pass
    return n


def _send_part_and_go_away(env, path: str, body: bytes, headers: dict, sent: int) -> None:
    """The head and the first `sent` bytes of body, then close: the location
    streams the body, so hookguard is left short of CONTENT_LENGTH."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{env.prefix.port2}\r\n"
            f"Content-Length: {len(body)}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n").encode()
    baseline = _unix_connections(env.prefix.socket)
    with socket.create_connection(("127.0.0.1", env.prefix.port2), timeout=5) as s:
        s.sendall(head + body[:sent])
        # Hold on until nginx has hookguard on the line (the body is streamed
        # to it), so the close below reaches hookguard instead of only nginx.
        wait_until(lambda: _unix_connections(env.prefix.socket) > baseline, 3)
