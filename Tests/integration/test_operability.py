"""Operations: Prometheus metrics, the health check, logs, and `hookguard doctor`."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import fcgi_client
import signing
from checks import accepted_id
from harness import (HOOKGUARD_BIN, LITERAL_SECRET, start_hookguard, stop,
                     wait_hookguard_ready, wait_until)

# --------------------------------------------------------------------------
# metrics


def scrape(env, via: str = "location") -> dict[tuple, float]:
    """Every sample as {(name, sorted labels): value}, parsed by prometheus_client."""
    if via == "location":
        r = env.request("GET", "/hookguard/metrics")
        assert r.status == 200, r
        assert r.header("Content-Type").startswith("text/plain; version=0.0.4"), r
        text = r.body.decode()
    else:
        conn = http.client.HTTPConnection("127.0.0.1", env.prefix.metrics_port, timeout=5)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        assert resp.status == 200
        text = resp.read().decode()
        conn.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def deliveries(samples, location: str, reason: str) -> float:
    return sum(v for (name, labels), v in samples.items()
               if name == "hookguard_deliveries_total"
               and dict(labels).get("location") == location and dict(labels).get("reason") == reason)


def post_literal(env, path: str, body: bytes, secret: str = LITERAL_SECRET):
    headers = {"Content-Type": "application/json"}
    headers.update(signing.sign("x-signature", secret, body))
    return env.post(path, body, headers)


def test_metrics_counters_move_exactly_with_requests(env):
    before = scrape(env)
    for i in range(3):
        accepted_id(env, env.deliver("tito", b'{"metrics":%d}' % i, {"X-Webhook-Name": "ticket.created"}))
    for _ in range(2):
        assert env.deliver("tito", b'{"forged":1}', secret="wrong").status == 500
    assert env.post("/hooks/tito", b"{}", {"Tito-Signature": "%%%"}).status == 500
    assert env.post("/hooks/tito", b"{}").status == 500
    assert env.request("GET", "/hooks/tito").status == 405
    assert post_literal(env, "/t/max-body-1024", b"x" * 2000).status == 413
    assert post_literal(env, "/t/socket-spool", b'{"fallback":1}').status == 200  # no reader
    assert post_literal(env, "/t/bad/unknown-scheme", b"{}").status == 500
    after = scrape(env)

    expected = {
        ("/hooks/tito", "accepted"): 3,
        ("/hooks/tito", "signature-mismatch"): 2,
        ("/hooks/tito", "signature-malformed"): 1,
        ("/hooks/tito", "signature-missing"): 1,
        ("/hooks/tito", "method-not-allowed"): 1,
        ("/t/max-body-1024", "body-too-large"): 1,
        ("/t/socket-spool", "fell-back-to-spool"): 1,
        ("/t/bad/unknown-scheme", "config-invalid"): 1,
    }
    for (location, reason), count in expected.items():
        moved = deliveries(after, location, reason) - deliveries(before, location, reason)
        assert moved == count, f"{location} {reason}: moved {moved}, expected {count}"

    def total(samples, name, **labels):
        return sum(v for (n, ls), v in samples.items()
                   if n == name and all(dict(ls).get(k) == val for k, val in labels.items()))

    assert total(after, "hookguard_received_bytes_total", location="/hooks/tito") \
        - total(before, "hookguard_received_bytes_total", location="/hooks/tito") \
        == sum(len(b'{"metrics":%d}' % i) for i in range(3)) + 2 * len(b'{"forged":1}') + 2 * 2
    assert total(after, "hookguard_request_duration_seconds_count", location="/hooks/tito") \
        - total(before, "hookguard_request_duration_seconds_count", location="/hooks/tito") == 8
    assert total(after, "hookguard_forward_duration_seconds_count", destination="socket", result="failed") \
        > total(before, "hookguard_forward_duration_seconds_count", destination="socket", result="failed")
    assert total(after, "hookguard_workers") == 8
    assert total(after, "hookguard_workers_busy") >= 1  # the scrape itself
    tito_spool = str(env.spool("tito"))
    assert total(after, "hookguard_spool_depth", spool=tito_spool) == len(env.listing("tito"))


def test_metrics_listen_serves_the_same_registry(env):
    accepted_id(env, env.deliver("github", b'{"zen":"metrics"}', {"X-GitHub-Event": "ping"}))
    direct = scrape(env, via="listen")
    through_nginx = scrape(env)
    key = [k for k in direct if k[0] == "hookguard_deliveries_total"
           and dict(k[1]).get("location") == "/hooks/github" and dict(k[1]).get("reason") == "accepted"]
    assert key and direct[key[0]] == through_nginx[key[0]] >= 1
    github_spool = str(env.spool("github"))
    assert direct[("hookguard_spool_depth", (("spool", github_spool),))] == len(env.listing("github"))
    conn = http.client.HTTPConnection("127.0.0.1", env.prefix.metrics_port, timeout=5)
    conn.request("GET", "/elsewhere")
    assert conn.getresponse().status == 404


def test_metrics_location_is_get_only(env):
    r = env.post("/hookguard/metrics", b"{}")
    assert r.status == 405 and r.header("Allow") == "GET, HEAD", r


# --------------------------------------------------------------------------
# health


def test_health_flips_when_a_spool_becomes_unwritable(env):
    probe = env.spool("health-probe")
    r = env.request("GET", "/t/health")
    assert r.status == 200, r
    assert probe.is_dir(), "the health location's spool was not checked"
    moved = probe.with_name("health-probe.moved")
    probe.rename(moved)
    probe.write_text("a file where the spool was\n")
    try:
        r = env.request("GET", "/t/health")
        assert r.status == 503, r
        assert b"health-probe" in r.body and r.header("Retry-After"), r
    finally:
        probe.unlink()
        moved.rename(probe)
    assert env.request("GET", "/t/health").status == 200
    assert env.request("GET", "/hookguard/health").status == 200


# --------------------------------------------------------------------------
# logs

LOGFMT = re.compile(r'\s*([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line: str) -> dict[str, str]:
    fields, pos = {}, 0
    while pos < len(line):
        m = LOGFMT.match(line, pos)
        assert m, f"not logfmt at {pos}: {line!r}"
        key, value = m.group(1), m.group(2)
        fields[key] = json.loads(value) if value.startswith('"') else value
        pos = m.end()
    return fields


REQUEST_KEYS = {"time", "level", "msg", "uri", "outcome", "reason", "status", "duration_ms"}


def test_log_lines_are_logfmt_with_the_request_fields_and_no_secret(env):
    mark = env.log_mark()
    delivery_id = accepted_id(env, env.deliver("github", b'{"log":"line"}', {"X-GitHub-Event": "push"}))
    assert env.deliver("github", b'{"log":"forged"}', secret="also-wrong").status == 500
    env.assert_logged(mark, "reason=signature-mismatch")
    # Every line hookguard's logger wrote; a crash report of the deliberately
    # crashed workers (test_hardening.py's crafted records) is not a log line.
    lines = [l for l in env.log_text().splitlines() if l.startswith("time=")]
    assert len(lines) > 10
    requests = []
    for line in lines:
        fields = parse_logfmt(line)
        assert {"time", "level", "msg"} <= fields.keys(), line
        if fields["msg"] == "request":
            requests.append(fields)
            assert REQUEST_KEYS <= fields.keys(), line
    accepted = [f for f in requests if f.get("id") == delivery_id]
    assert accepted and accepted[0]["scheme"] == "github" and accepted[0]["status"] == "200" \
        and accepted[0]["bytes"] == str(len(b'{"log":"line"}'))
    text = env.log_text()
    for secret in list(env.secrets.values()) + [LITERAL_SECRET]:
        assert secret not in text, "a secret reached the log"
    forged = signing.sign("github", env.secrets["github"], b'{"log":"forged"}')
    assert list(forged.values())[0].split("=", 1)[1] not in text, "an expected signature reached the log"


@pytest.fixture
def own_hookguard(tmp_path):
    started = []

    def start(*args: str):
        sock = tmp_path / "hg.sock"
        proc = start_hookguard(sock, tmp_path / "stderr.log", tmp_path, workers=2, extra_args=list(args))
        wait_hookguard_ready(proc, sock, tmp_path / "stderr.log")
        started.append(proc)
        return proc, sock

    yield start
    for proc in started:
        assert stop(proc, signal.SIGTERM, 10) == 0


def fcgi_post(sock: Path, spool: Path, body: bytes, secret: str = "json-log-secret"):
    params = {
        "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/json", "CONTENT_LENGTH": str(len(body)),
        "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": "json-log-secret",
        "HOOKGUARD_SPOOL": str(spool),
        "HTTP_X_SIGNATURE": signing.signature("x-signature", secret, body),
    }
    return fcgi_client.request(str(sock), params, body)


def test_json_log_file_reopened_on_sighup(own_hookguard, tmp_path):
    log = tmp_path / "hookguard.json.log"
    proc, sock = own_hookguard("--log-format", "json", "--log-file", str(log))
    spool = tmp_path / "spool"
    assert fcgi_post(sock, spool, b'{"n":1}').status == 200
    assert fcgi_post(sock, spool, b'{"n":2}', secret="wrong").status == 500
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    requests = [l for l in lines if l["msg"] == "request"]
    assert [r["status"] for r in requests] == ["200", "500"]
    assert REQUEST_KEYS <= requests[0].keys()
    assert "json-log-secret" not in log.read_text()

    rotated = tmp_path / "hookguard.json.log.1"
    log.rename(rotated)
    proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: log.exists(), 5), "SIGHUP did not reopen the log file"
    assert fcgi_post(sock, spool, b'{"n":3}').status == 200
    assert wait_until(lambda: '"status":"200"' in log.read_text(), 5)
    assert len(rotated.read_text().splitlines()) == len(lines)


# --------------------------------------------------------------------------
# doctor


def doctor(*args: str) -> tuple[int, list[str]]:
    r = subprocess.run([str(HOOKGUARD_BIN), "doctor", *args], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout.splitlines()


def failures(lines: list[str]) -> list[str]:
    return [l for l in lines if l.startswith("✗")]


def test_doctor_passes_the_sample_config(env):
    code, lines = doctor("--nginx", str(env.path / "conf" / "site.conf"))
    assert code == 0 and not failures(lines), "\n".join(lines)
    assert any("location = /hooks/tito: scheme tito" in l for l in lines)
    assert all(l.startswith("✓ ") for l in lines)


@pytest.fixture
def broken(env, tmp_path):
    """A copy of the rendered sample site to break, with its own secrets."""
    site = (env.path / "conf" / "site.conf").read_text()
    secrets = tmp_path / "secrets"
    shutil.copytree(env.path / "secrets", secrets)  # copies keep their 0600 modes
    site = site.replace(str(env.path / "secrets"), str(secrets))

    def variant(old: str = "", new: str = "") -> Path:
        text = site.replace(old, new, 1) if old else site
        assert not old or text != site, f"{old!r} not in the sample"
        path = tmp_path / "site.conf"
        path.write_text(text)
        return path

    variant.secrets = secrets
    return variant


def test_doctor_finds_a_world_readable_secret(broken):
    (broken.secrets / "tito.secret").chmod(0o644)
    code, lines = doctor("--nginx", str(broken()))
    assert code == 1
    assert any("tito.secret is readable by everyone — fix: chmod o-rwx" in l for l in failures(lines)), lines


def test_doctor_finds_an_empty_and_a_missing_secret_file(broken):
    (broken.secrets / "github.secret").write_text("# rotated out\n")
    (broken.secrets / "tikkl.secret").unlink()
    code, lines = doctor("--nginx", str(broken()))
    bad = failures(lines)
    assert code == 1
    assert any("/hooks/github" in l and "holds no secret" in l for l in bad), lines
    assert any("/hooks/tikkl" in l and "is missing" in l for l in bad), lines


def test_doctor_finds_an_unknown_scheme(broken):
    code, lines = doctor("--nginx", str(broken("HOOKGUARD_SCHEME      tito;", "HOOKGUARD_SCHEME      titto;")))
    assert code == 1
    assert any('unknown scheme "titto"' in l and "fix: set HOOKGUARD_SCHEME" in l for l in failures(lines)), lines


def test_doctor_finds_a_body_limit_below_hookguards(broken):
    site = broken("client_max_body_size 25m;", "client_max_body_size 1m;")
    senders = sum(1 for line in site.read_text().splitlines()
                  if line.strip().startswith("fastcgi_param HOOKGUARD_SCHEME"))
    code, lines = doctor("--nginx", str(site))
    bad = failures(lines)
    assert code == 1 and senders >= 7 and len(bad) == senders, bad  # every sender location
    assert all("client_max_body_size 1048576 < HOOKGUARD_MAX_BODY 26214400" in l for l in bad), bad


def test_doctor_finds_an_unwritable_spool_and_an_unreachable_socket(env, broken, tmp_path):
    (tmp_path / "a-file").write_text("not a directory\n")
    site = broken(f"HOOKGUARD_SPOOL       {env.path}/spool/tito;", f"HOOKGUARD_SPOOL       {tmp_path}/a-file/tito;")
    text = site.read_text().replace(
        f"HOOKGUARD_SPOOL       {env.path}/spool/github;",
        f"HOOKGUARD_SOCKET      {tmp_path}/nobody.sock;")
    site.write_text(text)
    code, lines = doctor("--nginx", str(site))
    bad = failures(lines)
    assert code == 1
    assert any("/hooks/tito" in l and "a-file/tito" in l for l in bad), lines
    assert any("/hooks/github" in l and "nobody.sock" in l for l in bad), lines


def test_doctor_checks_parameters_from_an_env_file_and_flags(env, tmp_path):
    env_file = tmp_path / "tito.env"
    env_file.write_text(
        "# the Tito location\n"
        "HOOKGUARD_SCHEME=tito\n"
        f"export HOOKGUARD_SECRET_FILE=\"{env.path}/secrets/tito.secret\"\n"
        f"HOOKGUARD_SPOOL={env.path}/spool/tito\n")
    code, lines = doctor("--env-file", str(env_file))
    assert code == 0 and len(lines) >= 4 and not failures(lines), lines
    code, lines = doctor("--env-file", str(env_file), "--param", "HOOKGUARD_ALGORITHM=sha1",
                         "--param", "HOOKGUARD_SCHEME=custom")
    assert code == 1 and any("HOOKGUARD_SIGNATURE_HEADER" in l for l in failures(lines)), lines
