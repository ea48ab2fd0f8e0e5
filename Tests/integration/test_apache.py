"""hookguard behind a private Apache (Debian's apache2) in each of its three
modes, with the project's own apache/hookguard-MODE.conf:

  proxy-fcgi  mod_proxy_fcgi to the socket of a hookguard the test started
  fcgid       mod_fcgid starts hookguard itself (no arguments, socket on fd 0)
  cgid        mod_cgid runs hookguard as a CGI program, once per request

Apache runs its children, and the hookguard it starts, as www-data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import signing
from checks import accepted_id, check_entry, check_rejected
from harness import (APACHE_MODES, WEB_GROUP, ApacheEnv, ApachePrefix, check_binary, free_port,
                     processes_running, start_apache, stop, tail,
                     wait_hookguard_ready)

SCHEMES = ["github", "tito"]


@pytest.fixture(scope="module", params=APACHE_MODES)
def apache(request):
    check_binary()
    mode = request.param
    path = Path(tempfile.mkdtemp(prefix=f"hg-apache-{mode}-"))
    prefix = ApachePrefix(path, free_port(), mode)
    prefix.render()
    apache_failure = ""

    hookguard = None
    if mode == "proxy-fcgi":
        # As docs/configuration.md's setup runs it: the web server's group may connect.
        log = open(prefix.log, "ab")
        hookguard = subprocess.Popen(
            [str(prefix.bin), "serve", "--listen", f"unix:{prefix.socket}",
             "--socket-group", WEB_GROUP, "--workers", "4"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=path)
        log.close()
        try:
            wait_hookguard_ready(hookguard, prefix.socket, prefix.log)
        except RuntimeError as e:
            stop(hookguard, signal.SIGKILL, 5)
            pytest.fail(str(e), pytrace=False)
    server = None
    for _ in range(3):  # the free port may be taken by someone else meanwhile
        try:
            server = start_apache(prefix)
            break
        except RuntimeError as e:
            apache_failure = str(e)
            if "Address already in use" not in apache_failure:
                break
            prefix.port = prefix.port2 = free_port()
            prefix.render_config()
    if server is None:
        if hookguard is not None:
            stop(hookguard, signal.SIGTERM, 10)
        pytest.fail(apache_failure, pytrace=False)

    yield ApacheEnv(prefix, hookguard, server)

    code = stop(server, signal.SIGTERM, 15)
    assert code == 0, f"apache2 ({mode}) exit status {code}\n{tail(prefix.error_log)}"
    if hookguard is not None:
        code = stop(hookguard, signal.SIGTERM, 10)
        assert code == 0, f"hookguard exit status {code}\n{tail(prefix.log)}"
    # Apache stops what it started: no hookguard of mod_fcgid's outlives it.
    left = processes_running(prefix.bin)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"hookguard processes left running after apache2 stopped: {left}"
    if os.environ.get("HOOKGUARD_KEEP_PREFIX"):
        print(f"\nhookguard Apache {mode} PREFIX kept at {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


def body_for(scheme: str, tag: str) -> bytes:
    doc = {"scheme": scheme, "tag": tag, "nonce": os.urandom(6).hex(),
           "note": "caf\u00e9 \u2615 \"quoted\" \\ back\tslash\n", "n": [1, 2.5, None]}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def test_rendered_apache_config_is_valid(apache):
    r = apache.prefix.config_test()
    assert r.returncode == 0, f"apache2 -t failed:\n{r.stdout}{r.stderr}"
    site = (apache.path / "conf" / "site.conf").read_text()
    for system_path in ("/run/hookguard/", "/etc/hookguard/", "/var/spool/hookguard/"):
        assert f" {system_path}" not in site, f"{system_path} left in the rendered site"
    assert str(apache.prefix.bin) in site or apache.mode == "proxy-fcgi"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_genuine_delivery_is_spooled_byte_exact(apache, scheme):
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, f"genuine-{apache.mode}")
    extra = {"X-Delivery-Trace": f"trace-{apache.mode}"}
    if s.event_header:
        extra[s.event_header] = f"{scheme}.created"
    before, mark = apache.listing(scheme), apache.log_mark()

    r = apache.deliver(scheme, body, extra)

    delivery_id = accepted_id(apache, r)
    apache.assert_logged(mark, "status=200", f"id={delivery_id}")
    sent = {"Content-Type": "application/json", "Content-Length": str(len(body)),
            **signing.sign(scheme, apache.secrets[scheme], body), **extra}
    check_entry(apache, scheme, delivery_id, scheme=scheme, uri=s.path, body=body,
                headers=sent, event=extra.get(s.event_header) if s.event_header else None)
    assert apache.listing(scheme) - before == {f"{delivery_id}.json"}
    apache.assert_tmp_empty(scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_forged_delivery_is_refused_and_not_spooled(apache, scheme):
    body = body_for(scheme, f"forged-{apache.mode}")
    before, mark = apache.listing(scheme), apache.log_mark()
    r = apache.deliver(scheme, body, secret="not-" + apache.secrets[scheme])
    check_rejected(apache, r, mark, status=500, reason="signature-mismatch", spool=scheme,
                   before=before)
    assert b"Signature refused" in r.body, f"not hookguard's own answer: {r!r}"
    assert apache.secrets[scheme].encode() not in r.body


def test_headers_named_like_parameters_change_nothing(apache):
    """HOOKGUARD-SECRET becomes HTTP_HOOKGUARD_SECRET; HOOKGUARD_SECRET is
    dropped by Apache (underscore): neither sets the location's secret or spool."""
    elsewhere = apache.path / "spool-from-header"
    injected = {"HOOKGUARD-SECRET": "x", "HOOKGUARD_SECRET": "x",
                "HOOKGUARD-SPOOL": str(elsewhere), "HOOKGUARD_SPOOL": str(elsewhere),
                "HOOKGUARD_SCHEME": "custom"}
    body = body_for("github", f"injected-{apache.mode}")
    before, mark = apache.listing("github"), apache.log_mark()
    r = apache.deliver("github", body, injected, secret="x")
    check_rejected(apache, r, mark, status=500, reason="signature-mismatch", spool="github",
                   before=before)
    assert not elsewhere.exists(), "a request header chose the spool"

    genuine = body_for("github", f"injected-genuine-{apache.mode}")
    headers = {"HOOKGUARD-SECRET": "from-dash", "HOOKGUARD_SECRET": "from-underscore",
               "HOOKGUARD_SPOOL": str(elsewhere)}
    delivery_id = accepted_id(apache, apache.deliver("github", genuine, headers))
    entry = check_entry(apache, "github", delivery_id, scheme="github", uri="/hooks/github",
                        body=genuine, headers={"hookguard-secret": "from-dash"})
    assert "hookguard-spool" not in entry["headers"], entry["headers"]
    assert not elsewhere.exists()


def test_body_over_fcgid_default_request_limit_is_accepted(apache):
    """300 KiB: over mod_fcgid's default FcgidMaxRequestLen (128 KiB), which
    the sample raises; the other modes have no such limit."""
    body = json.dumps({"blob": "\u00e9" * (150 * 1024)}, ensure_ascii=False).encode()
    assert len(body) > 300 * 1024
    delivery_id = accepted_id(apache, apache.deliver("github", body))
    check_entry(apache, "github", delivery_id, scheme="github", uri="/hooks/github", body=body)


def test_chunked_body_is_spooled_byte_exact(apache):
    """No Content-Length: proxy_fcgi and fcgid read the body first and pass
    CONTENT_LENGTH; mod_cgid streams it and hookguard reads to the end."""
    body = body_for("tito", f"chunked-{apache.mode}")
    headers = {"Content-Type": "application/json",
               **signing.sign("tito", apache.secrets["tito"], body)}
    pieces = iter([body[:7], body[7:40], body[40:]])
    r = apache.post("/hooks/tito", pieces, headers, encode_chunked=True)
    delivery_id = accepted_id(apache, r)
    check_entry(apache, "tito", delivery_id, scheme="tito", uri="/hooks/tito", body=body)


def test_other_answers_pass_through(apache):
    mark = apache.log_mark()
    r = apache.request("GET", "/hooks/github")
    assert r.status == 405 and r.header("Allow") == "POST", f"{r!r}" + apache.diag()
    apache.assert_logged(mark, "status=405", "reason=method-not-allowed")
    # Only the configured locations reach hookguard: Apache answers the rest
    # itself (403 here, where the document root is not granted; 404 where it is).
    mark = apache.log_mark()
    r = apache.post("/hooks/no-such-sender", b"{}", {"Content-Type": "application/json"})
    assert r.status in (403, 404), f"{r!r}" + apache.diag()
    assert "uri=/hooks/no-such-sender" not in apache.log_since(mark), apache.diag()
