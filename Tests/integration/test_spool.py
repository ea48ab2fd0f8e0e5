"""What lands in the spool: exact bodies of every kind, under load, and the
answer when the spool cannot be written."""

from __future__ import annotations

import json
import os
import random
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

import signing
from checks import accepted_id, check_body, check_entry, check_rejected


def test_spool_file_is_new_id_json_and_nothing_else(env):
    b = b'{"spool": "layout"}'
    before = {sub: env.listing("x-signature", sub) for sub in ("new", "cur", "tmp")}
    delivery_id = accepted_id(env, env.deliver("x-signature", b))
    assert env.listing("x-signature", "new") - before["new"] == {f"{delivery_id}.json"}
    assert env.listing("x-signature", "cur") == before["cur"]
    env.assert_tmp_empty("x-signature")
    mode = env.entry_path("x-signature", delivery_id).stat().st_mode
    assert mode & 0o007 == 0, f"spool file mode {oct(stat.S_IMODE(mode))} is world-accessible"


def test_large_binary_body_is_spooled_as_base64(env):
    data = os.urandom(5 * 1024 * 1024)
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    r = env.deliver("github", data, {"Content-Type": "application/octet-stream",
                                     "X-GitHub-Event": "release"})
    delivery_id = accepted_id(env, r)
    e = check_entry(env, "github", delivery_id, scheme="github", uri="/hooks/github", body=data,
                    event="release")
    assert "body_base64" in e and "body" not in e
    env.assert_tmp_empty("github")


@pytest.mark.parametrize("data", [
    b"\xff",
    b"caf\xe9",  # Latin-1, not UTF-8
    b"nul-overlong \xc0\x80",
    b"surrogate \xed\xa0\x80",  # CESU-8 / WTF-8, not UTF-8
    b"cut at the end \xe2\x82",
    b"too high \xf4\x90\x80\x80",  # above U+10FFFF
], ids=["ff", "latin1", "overlong", "surrogate", "truncated", "above-max"])
def test_invalid_utf8_body_is_spooled_as_base64(env, data):
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    delivery_id = accepted_id(env, env.deliver("tikkl", data))
    check_entry(env, "tikkl", delivery_id, scheme="tikkl", uri="/hooks/tikkl", body=data)


def test_control_characters_quotes_and_non_ascii_survive_exactly(env):
    data = (bytes(range(0x20)) + b'"\\/' + b"\x7f" +
            "\u00e9\u00df\u20ac \u2028\u2029 \ufeff \uffff \U0001F600 \U0010FFFF".encode("utf-8")
            + b" \\u0041 \\n end")
    data.decode("utf-8")  # valid UTF-8, so it must come back as "body"
    delivery_id = accepted_id(env, env.deliver("x-signature-256", data))
    e = check_entry(env, "x-signature-256", delivery_id, scheme="x-signature-256",
                    uri="/hooks/x-signature-256", body=data)
    assert "body" in e


def test_chunked_body_is_spooled_exactly(env):
    parts = [b'{"chunked": [', *(f'"{i:04d}-{os.urandom(300).hex()}",'.encode()
                                  for i in range(40)), b'"end"]}']
    data = b"".join(parts)
    headers = {"Content-Type": "application/json", "X-Webhook-Name": "registration.finished",
               **signing.sign("tito", env.secrets["tito"], data)}
    r = env.post("/hooks/tito", iter(parts), headers, encode_chunked=True)
    delivery_id = accepted_id(env, r)
    check_entry(env, "tito", delivery_id, scheme="tito", uri="/hooks/tito", body=data,
                event="registration.finished")


def test_concurrent_deliveries_are_all_spooled(env):
    n, schemes = 500, ["x-signature", "tito", "github"]
    rng = random.Random(20261122)
    jobs = []
    for i in range(n):
        scheme = schemes[i % len(schemes)]
        size = rng.choice([0, 1, 50, 700, 4000, 30000]) + rng.randrange(64)
        pad = os.urandom(size // 2 + 1).hex()[:size]
        data = json.dumps({"i": i, "scheme": scheme, "pad": pad, "u": "\u00e9\u2615"},
                          ensure_ascii=False).encode()
        extra = {}
        if signing.SCHEMES[scheme].event_header:
            extra[signing.SCHEMES[scheme].event_header] = f"load.{i}"
        jobs.append((scheme, data, extra))
    before = {s: env.listing(s) for s in schemes}

    def send(job):
        scheme, data, extra = job
        try:
            return env.deliver(scheme, data, extra)
        except Exception as e:  # noqa: BLE001 - reported below
            return e

    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(send, jobs))

    bad = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception) or r.status != 200]
    assert not bad, f"{len(bad)} of {n} concurrent deliveries failed, e.g. {bad[:5]}" + env.diag()
    ids = [accepted_id(env, r) for r in results]
    assert len(set(ids)) == n, f"only {len(set(ids))} distinct ids for {n} deliveries"

    added = set()
    for s in schemes:
        added |= {(s, f) for f in env.listing(s) - before[s]}
    expected = {(job[0], f"{i}.json") for job, i in zip(jobs, ids)}
    assert added == expected, f"spool files differ from the ids answered: " \
                              f"{len(added - expected)} unexpected, {len(expected - added)} " \
                              f"missing" + env.diag()
    for (scheme, data, extra), delivery_id in zip(jobs, ids):
        e = env.read_entry(scheme, delivery_id)
        assert e.get("id") == delivery_id and e.get("scheme") == scheme
        check_body(e, data, f" in {env.entry_path(scheme, delivery_id)}")
        if extra:
            assert e.get("event") == next(iter(extra.values()))
    env.assert_tmp_empty(*(p.name for p in (env.path / "spool").iterdir()
                           if (p / "tmp").is_dir()))


# --------------------------------------------------------------------------
# spool cannot be written


def test_spool_under_a_regular_file_is_503(env):
    b = b'{"spool": "under a file"}'
    mark = env.log_mark()
    r = env.post("/t/spool-under-file", b, signing.sign("x-signature", env.literal_secret, b))
    check_rejected(env, r, mark, status=503, reason="spool-unwritable")
    assert r.header("Retry-After"), f"503 without Retry-After: {r!r}"
    assert (env.path / "not-a-dir").is_file()


def test_spool_whose_new_is_a_file_is_503_and_tmp_cleaned(env):
    """tmp/ is writable but the move into new/ cannot happen (works as root,
    unlike chmod): the half-done delivery must not stay in tmp/."""
    b = b'{"spool": "new is a file"}'
    mark = env.log_mark()
    r = env.post("/t/spool-new-is-file", b,
                 signing.sign("x-signature", env.literal_secret, b))
    check_rejected(env, r, mark, status=503, reason="spool-unwritable", spool="new-is-file")
    assert r.header("Retry-After"), f"503 without Retry-After: {r!r}"
    assert (env.spool("new-is-file") / "new").is_file()


def test_hookguard_creates_the_spool_not_world_readable(env):
    """The spool of /hooks/github did not exist before the suite; hookguard made it."""
    body = b'{"zen":"Keep it logically awesome."}'
    delivery_id = accepted_id(env, env.deliver("github", body, {"X-GitHub-Event": "ping"}))
    root = env.spool("github")
    for directory in (root, root / "tmp", root / "new", root / "cur"):
        assert directory.is_dir(), f"{directory} missing\n" + env.diag()
        assert directory.stat().st_mode & 0o777 == 0o750, oct(directory.stat().st_mode)
    assert env.entry_path("github", delivery_id).stat().st_mode & 0o777 == 0o640
