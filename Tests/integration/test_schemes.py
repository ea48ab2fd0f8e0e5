"""Every signature scheme of the sample site, and secret files that change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import signing
from checks import accepted_id, check_entry, check_rejected
from harness import WORKERS, write_file

ALL = list(signing.SCHEMES)
# enough requests in a row that every hookguard worker sees one (round-robin
# is not promised, so twice the worker count)
ROUNDS = 2 * WORKERS


def body_for(scheme: str, tag: str = "") -> bytes:
    doc = {"scheme": scheme, "tag": tag, "nonce": os.urandom(6).hex(),
           "note": "caf\u00e9 \u2615 \U0001F680", "nested": {"a": [1, 2.5, None, True]}}
    return json.dumps(doc, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")


# --------------------------------------------------------------------------
# the reference signers themselves (no hookguard involved)


def test_signers_match_published_vectors():
    # GitHub's documented example (docs "Validating webhook deliveries")
    assert signing.signature("github", "It's a Secret to Everybody", b"Hello, World!") == \
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    # `printf x | openssl dgst -sha512 -hmac k -binary | base64`
    assert signing.signature("custom", "k", b"x") == "v1=OPvLCUuZ+ac9hi0MsrAfmIIlnFYvuufz45/" \
        "gXr8dy3pnWA2Moj3SoN5xDDVj2YgBiuFCTlstLeNN1PTt48f8TA=="
    assert signing.signature("tito", "k", b"x") == \
        signing.encode(bytes.fromhex(signing.signature("x-signature", "k", b"x")), "base64")


# --------------------------------------------------------------------------
# genuine deliveries


@pytest.mark.parametrize("scheme", ALL)
def test_genuine_delivery_is_spooled(env, scheme):
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, "genuine")
    extra = {"X-Delivery-Trace": f"trace-{scheme}", "User-Agent": "hookguard-it/1"}
    if s.event_header:
        extra[s.event_header] = f"{scheme}.order.created"
    before = env.listing(scheme)
    mark = env.log_mark()

    r = env.deliver(scheme, body, extra)

    delivery_id = accepted_id(env, r)
    env.assert_logged(mark, "status=200")
    sent = {"Content-Type": "application/json", "Content-Length": str(len(body)),
            **signing.sign(scheme, env.secrets[scheme], body), **extra}
    check_entry(env, scheme, delivery_id, scheme=scheme, uri=s.path, body=body, headers=sent,
                event=extra.get(s.event_header) if s.event_header else None)
    assert env.listing(scheme) - before == {f"{delivery_id}.json"}
    env.assert_tmp_empty(scheme)


@pytest.mark.parametrize("scheme", signing.EVENT_SCHEMES)
def test_event_is_absent_when_event_header_not_sent(env, scheme):
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, "no-event")
    delivery_id = accepted_id(env, env.deliver(scheme, body))
    check_entry(env, scheme, delivery_id, scheme=scheme, uri=s.path, body=body, event=None)


def test_uri_keeps_the_query_string(env):
    body = body_for("github", "query")
    uri = "/hooks/github?delivery=42&retry=1"
    h = {"Content-Type": "application/json", **signing.sign("github", env.secrets["github"], body)}
    delivery_id = accepted_id(env, env.post(uri, body, h))
    check_entry(env, "github", delivery_id, scheme="github", uri=uri, body=body)


def test_empty_body_is_accepted_and_spooled_empty(env):
    delivery_id = accepted_id(env, env.deliver("x-signature", b""))
    check_entry(env, "x-signature", delivery_id, scheme="x-signature",
                uri="/hooks/x-signature", body=b"")


@pytest.mark.parametrize("scheme", signing.HEX_SCHEMES)
def test_upper_case_hex_is_accepted(env, scheme):
    body = body_for(scheme, "upper-hex")
    sig = signing.signature(scheme, env.secrets[scheme], body, encoding="hex", upper=True)
    assert sig != sig.lower()
    delivery_id = accepted_id(env, env.deliver(scheme, body, encoding="hex", upper=True))
    check_entry(env, scheme, delivery_id, scheme=scheme, uri=f"/hooks/{scheme}", body=body)


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_tikkl_accepts_hex_and_base64(env, encoding):
    body = body_for("tikkl", encoding)
    delivery_id = accepted_id(env, env.deliver("tikkl", body, encoding=encoding))
    check_entry(env, "tikkl", delivery_id, scheme="tikkl", uri="/hooks/tikkl", body=body,
                headers=signing.sign("tikkl", env.secrets["tikkl"], body, encoding=encoding))


# --------------------------------------------------------------------------
# refused deliveries


@pytest.mark.parametrize("scheme", ALL)
def test_forged_delivery_is_rejected_without_leaking(env, scheme):
    body = body_for(scheme, "forged")
    before = env.listing(scheme)
    mark = env.log_mark()

    r = env.deliver(scheme, body, secret=f"not-the-{scheme}-secret")

    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=scheme,
                   before=before)
    secret = env.secrets[scheme]
    logged = env.log_since(mark)
    for expected in signing.all_encodings_of_expected(scheme, secret, body):
        assert expected.encode() not in r.body, f"reject body holds the expected signature: {r!r}"
        assert expected not in logged, f"hookguard logged the expected signature {expected!r}"
    assert secret.encode() not in r.body, f"reject body holds the secret: {r!r}"
    assert secret not in env.log_text(), "hookguard logged the secret"


@pytest.mark.parametrize("scheme", ALL)
def test_signature_over_another_body_is_rejected(env, scheme):
    body = body_for(scheme, "tampered")
    h = {"Content-Type": "application/json",
         **signing.sign(scheme, env.secrets[scheme], body + b" ")}
    before = env.listing(scheme)
    mark = env.log_mark()
    r = env.post(signing.SCHEMES[scheme].path, body, h)
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=scheme,
                   before=before)


@pytest.mark.parametrize("scheme", ALL)
def test_missing_signature_is_rejected(env, scheme):
    body = body_for(scheme, "unsigned")
    before = env.listing(scheme)
    mark = env.log_mark()
    r = env.post(signing.SCHEMES[scheme].path, body, {"Content-Type": "application/json"})
    check_rejected(env, r, mark, status=500, reason="signature-missing", spool=scheme,
                   before=before)
    assert env.secrets[scheme].encode() not in r.body


@pytest.mark.parametrize(("scheme", "value"),
                         [(s, v) for s in ALL for v in signing.malformed_values(s)])
def test_malformed_signature_is_rejected(env, scheme, value):
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, "malformed")
    before = env.listing(scheme)
    mark = env.log_mark()
    r = env.post(s.path, body, {"Content-Type": "application/json", s.header: value})
    check_rejected(env, r, mark, status=500, reason="signature-malformed", spool=scheme,
                   before=before)


def test_only_the_scheme_header_counts(env):
    """A genuine signature in another scheme's header is still a missing one."""
    body = body_for("x-signature", "wrong-header")
    h = {"X-Hub-Signature-256": signing.signature("github", env.secrets["x-signature"], body)}
    before = env.listing("x-signature")
    mark = env.log_mark()
    r = env.post("/hooks/x-signature", body, h)
    check_rejected(env, r, mark, status=500, reason="signature-missing", spool="x-signature",
                   before=before)


# --------------------------------------------------------------------------
# secret files: several secrets, comments, and rotation without a restart


def _post(env, path: str, secret: str, tag: str):
    body = json.dumps({"tag": tag, "nonce": os.urandom(4).hex()}).encode()
    return env.post(path, body, signing.sign("x-signature", secret, body))


def _expect(env, path: str, secret: str, accepted: bool, what: str, rounds: int = 1):
    for i in range(rounds):
        r = _post(env, path, secret, f"{what}-{i}")
        if accepted:
            assert r.status == 200, f"{what}: request {i + 1}/{rounds} refused: {r!r}" + env.diag()
        else:
            assert r.status == 500, f"{what}: request {i + 1}/{rounds} not refused: {r!r}" \
                                    + env.diag()


def _secret(tag: str, length: int = 32) -> str:
    s = f"{tag}-{os.urandom(32).hex()}"
    return s[:length]


@pytest.mark.parametrize("how", ["rename", "inplace"])
def test_secret_file_rotation(env, how):
    path = f"/t/rotate-{how}"
    spool = f"rotate-{how}"
    file = Path(env.path, "secrets", f"rotate-{how}.secret")
    a, b = _secret("alpha"), _secret("bravo")
    comment = "# primary"
    write_file(file, f"{comment}\n\n{a}\n\n# secondary, until the move\n{b}\n")

    # both secrets work, on every worker; comments and blank lines are no secrets
    _expect(env, path, a, True, "first secret", ROUNDS)
    _expect(env, path, b, True, "second secret", ROUNDS)
    _expect(env, path, comment, False, "a comment line used as a secret")
    _expect(env, path, "", False, "the empty secret (from a blank line)")

    old = file.stat()
    if how == "rename":
        # Same length, same mtime: only the inode tells the files apart.
        c, d = _secret("charlie", len(a)), _secret("delta", len(b))
        new_text = f"{comment}\n\n{c}\n\n# secondary, until the move\n{d}\n"
        tmp = file.with_name(file.name + ".new")
        write_file(tmp, new_text)
        os.utime(tmp, ns=(old.st_atime_ns, old.st_mtime_ns))
        os.replace(tmp, file)
        now = file.stat()
        assert now.st_ino != old.st_ino and now.st_size == old.st_size \
            and now.st_mtime_ns == old.st_mtime_ns
        new_secrets = [c, d]
    else:
        # Same inode, same mtime, another length: only the size tells.
        c = _secret("charlie", len(a) + 7)
        with open(file, "r+") as f:
            f.truncate(0)
            f.write(f"# rotated\n{c}\n")
        os.utime(file, ns=(old.st_atime_ns, old.st_mtime_ns))
        now = file.stat()
        assert now.st_ino == old.st_ino and now.st_size != old.st_size \
            and now.st_mtime_ns == old.st_mtime_ns
        new_secrets = [c]

    for s in new_secrets:
        _expect(env, path, s, True, "the new secret after the rewrite", ROUNDS)
    before = env.listing(spool)
    mark = env.log_mark()
    _expect(env, path, a, False, "the removed secret after the rewrite", ROUNDS)
    _expect(env, path, b, False, "the removed second secret after the rewrite", ROUNDS)
    assert env.listing(spool) == before
    env.assert_logged(mark, "status=500", "reason=signature-mismatch")
    for s in (a, b, *new_secrets):
        assert s not in env.log_text(), "hookguard logged a secret"


def test_secret_file_mtime_only_change_is_noticed(env):
    """A rewrite of the same length (same inode) is noticed by its mtime."""
    path, spool = "/t/rotate-inplace", "rotate-inplace"
    file = Path(env.path, "secrets", "rotate-inplace.secret")
    a = _secret("echo")
    write_file(file, f"{a}\n")
    _expect(env, path, a, True, "the secret", ROUNDS)
    old = file.stat()
    b = _secret("foxtrot", len(a))
    with open(file, "r+") as f:
        f.write(f"{b}\n")
    os.utime(file, ns=(old.st_atime_ns, old.st_mtime_ns + 1_000_000_000))
    now = file.stat()
    assert now.st_ino == old.st_ino and now.st_size == old.st_size
    _expect(env, path, b, True, "the new secret", ROUNDS)
    _expect(env, path, a, False, "the old secret", ROUNDS)
    env.assert_tmp_empty(spool)
