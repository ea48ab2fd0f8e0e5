"""Issue 16's first finding: a Standard Webhooks / Svix secret whose base64 lost
its trailing "=" is accepted by serve, verify and sign, as the official
`standardwebhooks` and `svix` libraries accept it; and one unusable line in a
secret file is reported (log, doctor) without disabling the good ones.
Every signature here comes from the libraries, never from hookguard."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest

from checks import accepted_id, check_entry
from harness import HOOKGUARD_BIN, UNPADDED_WHSEC, UNUSABLE_WHSEC

import standardwebhooks  # PyPI, installed by scripts/lib/install-deps test
import svix.webhooks as svix_webhooks

LIBRARIES = {"standard-webhooks": (standardwebhooks.Webhook, "webhook-"),
             "svix": (svix_webhooks.Webhook, "svix-")}


def library_signed(name: str, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    webhook, prefix = LIBRARIES[name]
    msg_id = f"msg_{os.urandom(6).hex()}"
    ts = int(time.time()) if timestamp is None else timestamp
    signature = webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())
    return {prefix + "id": msg_id, prefix + "timestamp": str(ts), prefix + "signature": signature}


def run(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(HOOKGUARD_BIN), *args], input=input, capture_output=True, timeout=30)


@pytest.mark.parametrize("name", LIBRARIES)
def test_library_signed_with_unpadded_secret_is_accepted_beside_a_bad_line(env, name):
    body = json.dumps({"type": "user.created", "n": os.urandom(4).hex()}).encode()
    headers = library_signed(name, UNPADDED_WHSEC, body)
    path = f"/t/unpadded/{name}"
    delivery_id = accepted_id(env, env.post(path, body, {"Content-Type": "application/json", **headers}))
    check_entry(env, f"unpadded-{name}", delivery_id, scheme=name, uri=path, body=body, headers=headers)
    # The bad line is reported, by its number, without its text.
    assert "secret-unusable" in env.log_text(), env.diag()
    line = next(l for l in env.log_text().splitlines() if "secret-unusable" in l)
    assert "unpadded.secret line 2" in line and "whsec_ followed by base64" in line, line
    assert UNUSABLE_WHSEC not in env.log_text() and UNPADDED_WHSEC not in env.log_text()


@pytest.mark.parametrize("name", LIBRARIES)
def test_another_key_is_still_refused(env, name):
    other = "whsec_" + "QUJD" * 8  # a valid key, not in the file
    body = b'{"type":"forged"}'
    r = env.post(f"/t/unpadded/{name}", body, library_signed(name, other, body))
    assert r.status == 500 and b"does not match" in r.body, r


@pytest.mark.parametrize("name", LIBRARIES)
def test_hookguard_sign_with_unpadded_secret_passes_the_library(name, tmp_path):
    body = b'{"type":"invoice.paid","amount":1200}'
    (tmp_path / "body.json").write_bytes(body)
    r = run("sign", "--scheme", name, "--secret", UNPADDED_WHSEC, str(tmp_path / "body.json"))
    assert r.returncode == 0, r.stderr.decode()
    headers = dict(line.split(": ", 1) for line in r.stdout.decode().splitlines())
    webhook, prefix = LIBRARIES[name]
    # The library verifies it (it raises on any mismatch), under either spelling of the key.
    webhook(UNPADDED_WHSEC).verify(body, headers)
    webhook(UNPADDED_WHSEC + "=").verify(body, headers)
    with pytest.raises(Exception):
        webhook("whsec_" + "QUJD" * 8).verify(body, headers)


@pytest.mark.parametrize("name", LIBRARIES)
def test_hookguard_verify_skips_the_bad_line(env, name, tmp_path):
    body = b'{"type":"checked.offline"}'
    (tmp_path / "body.json").write_bytes(body)
    headers = library_signed(name, UNPADDED_WHSEC, body)
    args = ["verify", "--scheme", name, "--secret-file", str(env.path / "secrets" / "unpadded.secret")]
    for k, v in headers.items():
        args += ["--header", f"{k}: {v}"]
    r = run(*args, str(tmp_path / "body.json"))
    out = r.stdout.decode()
    assert r.returncode == 0, out + r.stderr.decode()
    assert "unpadded.secret line 2" in out and "genuine" in out, out
    # Only the bad line: nothing usable, refused with the reason.
    only_bad = tmp_path / "bad.secret"
    only_bad.write_text(UNUSABLE_WHSEC + "\n")
    only_bad.chmod(0o600)
    args[args.index("--secret-file") + 1] = str(only_bad)
    r = run(*args, str(tmp_path / "body.json"))
    assert r.returncode == 1 and "secret-unusable" in r.stdout.decode(), r


def test_doctor_names_the_bad_line(env):
    r = subprocess.run([str(HOOKGUARD_BIN), "doctor", "--param", "HOOKGUARD_SCHEME=svix",
                        "--param", f"HOOKGUARD_SECRET_FILE={env.path / 'secrets' / 'unpadded.secret'}",
                        "--param", f"HOOKGUARD_SPOOL={env.path / 'spool' / 'doctor-unpadded'}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout
    bad = [l for l in r.stdout.splitlines() if l.startswith("✗")]
    assert len(bad) == 1 and "unpadded.secret line 2" in bad[0] and "correct line 2" in bad[0], r.stdout
