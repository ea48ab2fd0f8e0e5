"""The ways hookguard is started besides `serve --listen`: as a CGI program,
under spawn-fcgi (socket on fd 0), under systemd's socket activation
(LISTEN_FDS, fd 3; or the socket on fd 0 as StandardInput=socket gives it),
and without arguments, where it must work out which of these it is.

The FastCGI ones run behind a private nginx rendered from the sample site,
each on its own PREFIX, and the systemd ones take their socket path and
command line from packaging/systemd/."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

import fcgi_client
import signing
from checks import UUID7, accepted_id, check_entry, check_rejected
from harness import (HOOKGUARD_BIN, REPO, Env, Prefix, check_binary, free_port, free_port_pair,
                     start_hookguard,
                     start_nginx, stop, tail, unix_socket_accepts, wait_hookguard_ready,
                     wait_until, write_file)

SCHEMES = ["github", "tito"]
SYSTEMD = REPO / "packaging" / "systemd"


def body_for(scheme: str, tag: str) -> bytes:
    doc = {"scheme": scheme, "tag": tag, "nonce": os.urandom(6).hex(), "note": "caf\u00e9 \u2615"}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def no_inherited_environment() -> dict[str, str]:
    """The test's environment without anything that would make hookguard
    think it is a CGI program or systemd's service."""
    names = ("GATEWAY_INTERFACE", "REQUEST_METHOD", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    return {k: v for k, v in os.environ.items() if k not in names and not k.startswith("HOOKGUARD_")}


# --------------------------------------------------------------------------
# plain CGI, run directly with the environment a web server prepares


@dataclass
class CGIAnswer:
    returncode: int
    status_line: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw: bytes

    # what checks.accepted_id reads
    @property
    def status(self) -> int:
        return int(self.status_line.split()[0])

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class CGIWorld(Env):
    """A spool and a log for hookguard run as a CGI program (no servers)."""

    def __init__(self, path: Path):
        secrets = {name: f"{name}-cgi-secret-{os.urandom(6).hex()}" for name in signing.SCHEMES}
        prefix = SimpleNamespace(path=path, log=path / "hookguard.log", secrets=secrets,
                                 spool_dir=lambda name: path / "spool" / name)
        super().__init__(prefix, None, None)
        (path / "secrets").mkdir()
        for name, secret in secrets.items():
            write_file(path / "secrets" / f"{name}.secret", f"{secret}\n")

    def diag(self) -> str:
        return f"\n--- hookguard CGI stderr: {self.prefix.log}\n{tail(self.prefix.log)}\n"

    def environ(self, scheme: str, body: bytes, *, secret: str | None = None,
                method: str = "POST", length: int | None = None, **extra: str) -> dict:
        """What Apache's mod_cgid puts in a CGI program's environment."""
        s = signing.SCHEMES[scheme]
        env = {
            **no_inherited_environment(),
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "Apache/2.4", "REQUEST_METHOD": method,
            "REQUEST_URI": s.path, "SCRIPT_NAME": s.path, "QUERY_STRING": "",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body) if length is None else length),
            "HTTP_HOST": "hooks.example", "REMOTE_ADDR": "127.0.0.1",
            "HOOKGUARD_SCHEME": scheme,
            "HOOKGUARD_SECRET_FILE": str(self.path / "secrets" / f"{scheme}.secret"),
            "HOOKGUARD_SPOOL": str(self.prefix.spool_dir(scheme)),
        }
        for header, value in signing.sign(scheme, secret or self.secrets[scheme], body).items():
            env["HTTP_" + header.upper().replace("-", "_")] = value
        env.update(extra)
        return env

    def run(self, environ: dict, stdin: bytes, args: tuple[str, ...] = ()) -> CGIAnswer:
        with open(self.prefix.log, "ab") as log:
            r = subprocess.run([str(HOOKGUARD_BIN), *args], env=environ, input=stdin,
                               stdout=subprocess.PIPE, stderr=log, timeout=30)
        head, sep, body = r.stdout.partition(b"\r\n\r\n")
        assert sep, f"no blank line after the CGI head: {r.stdout[:500]!r}" + self.diag()
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            assert colon and name == name.strip(), f"bad CGI header line {line!r}"
            headers[name.lower()] = value.strip()
        assert lines[0].startswith("Status: "), f"first line is not Status: {lines[0]!r}"
        return CGIAnswer(r.returncode, lines[0].removeprefix("Status: "), headers, body, r.stdout)


@pytest.fixture
def cgi():
    check_binary()
    path = Path(tempfile.mkdtemp(prefix="hg-cgi-"))
    yield CGIWorld(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_cgi_genuine_delivery(cgi, scheme):
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, "cgi")
    extra = {"HTTP_" + s.event_header.upper().replace("-", "_"): "order.paid"} \
        if s.event_header else {}
    mark = cgi.log_mark()
    r = cgi.run(cgi.environ(scheme, body, **extra), body)

    assert r.returncode == 0, f"exit {r.returncode}" + cgi.diag()
    assert r.status_line == "200 OK", r.raw
    assert r.header("Content-Length") == str(len(r.body)), r.raw
    delivery_id = accepted_id(cgi, r)
    cgi.assert_logged(mark, "status=200", f"id={delivery_id}")
    sent = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Host": "hooks.example",
            **signing.sign(scheme, cgi.secrets[scheme], body)}
    check_entry(cgi, scheme, delivery_id, scheme=scheme, uri=s.path, body=body, headers=sent,
                event="order.paid" if s.event_header else None)
    assert cgi.listing(scheme) == {f"{delivery_id}.json"}
    cgi.assert_tmp_empty(scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_cgi_forged_delivery(cgi, scheme):
    body = body_for(scheme, "cgi-forged")
    mark = cgi.log_mark()
    r = cgi.run(cgi.environ(scheme, body, secret="forger"), body)
    assert r.returncode == 0, f"exit {r.returncode}" + cgi.diag()
    assert r.status_line == "500 Internal Server Error", r.raw
    check_rejected(cgi, r, mark, status=500, reason="signature-mismatch", spool=scheme,
                   before=set())
    assert cgi.secrets[scheme].encode() not in r.raw


def test_cgi_other_answers(cgi):
    body = body_for("github", "cgi-answers")
    r = cgi.run(cgi.environ("github", body, method="GET", CONTENT_LENGTH=""), b"")
    assert (r.returncode, r.status, r.header("Allow")) == (0, 405, "POST"), r.raw

    mark = cgi.log_mark()
    r = cgi.run(cgi.environ("github", body, length=len(body) + 10), body)  # client went away
    assert (r.returncode, r.status) == (0, 400), r.raw
    cgi.assert_logged(mark, "reason=body-incomplete")

    mark = cgi.log_mark()
    r = cgi.run(cgi.environ("github", body, HOOKGUARD_SCHEME=""), body)
    assert (r.returncode, r.status) == (0, 500), r.raw
    cgi.assert_logged(mark, "reason=config-invalid", "HOOKGUARD_SCHEME")
    assert cgi.listing("github") == set()


def test_cgi_body_without_length_is_read_to_its_end(cgi):
    """mod_cgid passes a chunked body with no CONTENT_LENGTH."""
    body = body_for("github", "cgi-no-length")
    r = cgi.run(cgi.environ("github", body, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"),
                body)
    delivery_id = accepted_id(cgi, r)
    check_entry(cgi, "github", delivery_id, scheme="github", uri="/hooks/github", body=body)


def test_cgi_rejects_a_bad_environment_option(cgi):
    body = body_for("github", "cgi-bad-option")
    mark = cgi.log_mark()
    with open(cgi.prefix.log, "ab") as log:
        r = subprocess.run([str(HOOKGUARD_BIN)], input=body, stdout=subprocess.PIPE, stderr=log,
                           env=cgi.environ("github", body, HOOKGUARD_LOG_LEVEL="loud"), timeout=30)
    assert r.returncode == 1 and r.stdout == b"", r
    cgi.assert_logged(mark, "HOOKGUARD_LOG_LEVEL", "loud", "trace")
    assert cgi.listing("github") == set()


# --------------------------------------------------------------------------
# no arguments, nothing inherited


def test_without_arguments_at_a_terminal_prints_help():
    check_binary()
    r = subprocess.run([str(HOOKGUARD_BIN)], stdin=subprocess.DEVNULL, capture_output=True,
                       env=no_inherited_environment(), timeout=30)
    assert r.returncode == 0, r
    assert b"USAGE: hookguard" in r.stdout and b"serve" in r.stdout, r


def test_serve_without_listen_needs_an_inherited_socket():
    check_binary()
    r = subprocess.run([str(HOOKGUARD_BIN), "serve"], stdin=subprocess.DEVNULL,
                       capture_output=True, env=no_inherited_environment(), timeout=30)
    assert r.returncode != 0, r
    assert b"no --listen" in r.stderr and b"LISTEN_FDS" in r.stderr, r


def test_systemd_variables_for_another_process_are_ignored():
    """LISTEN_PID names the process the sockets are for; a leftover for
    another pid is not ours (sd_listen_fds)."""
    check_binary()
    env = {**no_inherited_environment(), "LISTEN_FDS": "1", "LISTEN_PID": "1"}
    r = subprocess.run([str(HOOKGUARD_BIN)], stdin=subprocess.DEVNULL, capture_output=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and b"USAGE: hookguard" in r.stdout, r


def test_more_than_one_systemd_socket_is_refused():
    check_binary()
    env = {**no_inherited_environment(), "LISTEN_FDS": "2", "HOOKGUARD_BIN": str(HOOKGUARD_BIN)}
    # exec keeps the shell's pid, so LISTEN_PID=$$ names hookguard.
    r = subprocess.run(["sh", "-c", 'LISTEN_PID=$$ exec "$HOOKGUARD_BIN"'],
                       stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30)
    assert r.returncode == 1, r
    assert b"LISTEN_FDS=2" in r.stderr and b"exactly one socket" in r.stderr, r


# --------------------------------------------------------------------------
# FastCGI on an inherited socket, behind the private nginx


def unit_setting(unit: Path, section: str, key: str) -> str:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str
    parser.read(unit)
    return parser[section][key]


def localize(text: str, prefix: Path) -> str:
    return text.replace("/run/hookguard/", f"{prefix}/run/") \
        .replace("/usr/local/bin/hookguard", str(HOOKGUARD_BIN))


# id: (command, what hookguard logs as its socket, its workers when the
# launcher chooses them: --workers 3, or HOOKGUARD_WORKERS=5 without arguments)
LAUNCHERS = {
    "spawn-fcgi serve": (lambda p: ["spawn-fcgi", "-n", "-s", str(p.socket), "-M", "0660", "--",
                                    str(HOOKGUARD_BIN), "serve", "--workers", "3"], "fd:0", 3),
    # Apache's mod_fcgid starts it like this: no arguments, options from the environment.
    "spawn-fcgi no-arguments": (lambda p: ["spawn-fcgi", "-n", "-s", str(p.socket), "-M", "0660",
                                           "--", str(HOOKGUARD_BIN)], "fd:0", 5),
    # packaging/systemd/hookguard.socket + hookguard.service: LISTEN_FDS, fd 3.
    "systemd LISTEN_FDS": (lambda p: [
        "systemd-socket-activate",
        "-l", localize(unit_setting(SYSTEMD / "hookguard.socket", "Socket", "ListenStream"), p.path),
        *shlex.split(localize(unit_setting(SYSTEMD / "hookguard.service", "Service", "ExecStart"),
                              p.path))], "fd:3", None),
    # The same service with StandardInput=socket: the socket on fd 0.
    "systemd StandardInput=socket": (lambda p: [
        "systemd-socket-activate", "--inetd",
        "-l", localize(unit_setting(SYSTEMD / "hookguard.socket", "Socket", "ListenStream"), p.path),
        *shlex.split(localize(unit_setting(SYSTEMD / "hookguard.service", "Service", "ExecStart"),
                              p.path))], "fd:0", None),
}


@pytest.fixture(params=list(LAUNCHERS), scope="module")
def launched(request):
    """hookguard started by spawn-fcgi or systemd-socket-activate on the
    socket of a freshly rendered nginx PREFIX, and that nginx."""
    check_binary()
    command, socket_name, workers = LAUNCHERS[request.param]
    path = Path(tempfile.mkdtemp(prefix="hg-launch-"))
    prefix = Prefix(path, free_port_pair())
    prefix.render()
    env = {**no_inherited_environment(), "HOOKGUARD_WORKERS": "5"}
    with open(prefix.log, "ab") as log:
        proc = subprocess.Popen(command(prefix), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, cwd=path)
    # systemd-socket-activate starts hookguard at the first connection: this one.
    if not wait_until(lambda: proc.poll() is not None or unix_socket_accepts(prefix.socket), 15) \
            or proc.poll() is not None:
        stop(proc, signal.SIGKILL, 5)
        pytest.fail(f"{request.param} did not come up:\n{tail(prefix.log)}", pytrace=False)
    try:
        nginx = start_nginx(prefix)
    except RuntimeError as e:
        stop(proc, signal.SIGTERM, 10)
        pytest.fail(str(e), pytrace=False)
    e = Env(prefix, proc, nginx)
    serving = e.wait_log(0, "serving", timeout=10)
    assert serving, f"no 'serving' line\n{tail(prefix.log)}"
    yield SimpleNamespace(env=e, serving=serving, socket_name=socket_name, workers=workers,
                          name=request.param)

    stop(nginx, signal.SIGQUIT, 10)
    code = stop(proc, signal.SIGTERM, 10)
    assert code == 0, f"hookguard did not exit 0 on SIGTERM (got {code})\n{tail(prefix.log)}"
    assert e.wait_log(0, "stopped"), tail(prefix.log)
    # The socket belongs to whoever made it: hookguard leaves it where it was.
    assert prefix.socket.is_socket(), f"hookguard removed the inherited socket {prefix.socket}"
    shutil.rmtree(path, ignore_errors=True)


def test_serves_the_inherited_socket(launched):
    sock = launched.env.prefix.socket
    assert f"listen=\"{launched.socket_name} (unix:{sock})\"" in launched.serving, launched.serving
    if launched.workers is not None:
        assert re.search(rf"\bworkers={launched.workers}\b", launched.serving), launched.serving


@pytest.mark.parametrize("scheme", SCHEMES)
def test_inherited_socket_genuine_and_forged(launched, scheme):
    env = launched.env
    s = signing.SCHEMES[scheme]
    body = body_for(scheme, launched.name)
    delivery_id = accepted_id(env, env.deliver(scheme, body))
    check_entry(env, scheme, delivery_id, scheme=scheme, uri=s.path, body=body,
                headers=signing.sign(scheme, env.secrets[scheme], body))

    forged = body_for(scheme, launched.name + " forged")
    before, mark = env.listing(scheme), env.log_mark()
    r = env.deliver(scheme, forged, secret="forger")
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool=scheme,
                   before=before)


def test_inherited_tcp_socket_on_loopback_is_served(tmp_path):
    check_binary()
    port = free_port()
    log = tmp_path / "hookguard.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(["spawn-fcgi", "-n", "-a", "127.0.0.1", "-p", str(port), "--",
                                 str(HOOKGUARD_BIN), "serve", "--workers", "1"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=no_inherited_environment())
    try:
        assert wait_until(lambda: "serving" in log.read_text(), 10), tail(log)
        assert f"listen=\"fd:0 (127.0.0.1:{port})\"" in log.read_text(), tail(log)
        assert stop(proc, signal.SIGTERM, 10) == 0, tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# the server loop: a kept connection, and a stop while one is open


def test_kept_connection_is_served_and_does_not_hold_up_a_stop():
    """FCGI_KEEP_CONN (nginx's fastcgi_keep_conn, Apache's enablereuse):
    requests on one connection are all answered, and SIGTERM still stops
    hookguard promptly while that connection sits idle."""
    check_binary()
    work = Path(tempfile.mkdtemp(prefix="hg-keep-"))
    sock, log, spool = work / "hg.sock", work / "hookguard.log", work / "spool"
    proc = start_hookguard(sock, log, work, workers=1)
    try:
        wait_hookguard_ready(proc, sock, log)
        with fcgi_client.KeptConnection(str(sock)) as conn:
            for n in range(3):
                data = json.dumps({"kept": n}).encode()
                r = conn.request({
                    "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/kept",
                    "CONTENT_LENGTH": str(len(data)), "HOOKGUARD_SCHEME": "x-signature",
                    "HOOKGUARD_SECRET": "kept", "HOOKGUARD_SPOOL": str(spool),
                    "HTTP_X_SIGNATURE": signing.signature("x-signature", "kept", data)}, data)
                assert r.status == 200, f"request {n} on the kept connection: {r}\n{tail(log)}"
                assert UUID7.match(json.loads(r.body)["id"])
            # The one worker waits on this idle connection, not in accept().
            proc.send_signal(signal.SIGTERM)
            assert conn.peer_closed(5), f"hookguard kept the connection open on SIGTERM\n{tail(log)}"
        # libfcgi lingers until the web server closes its end, as this one just did.
        code = proc.wait(10)
        assert code == 0, f"exit status {code} after SIGTERM with a kept connection\n{tail(log)}"
        assert len(os.listdir(spool / "new")) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_a_socket_held_by_its_maker_outlives_hookguard():
    """As systemd holds a .socket unit's socket: hookguard stops, the socket
    goes on listening (never shut down), and the next hookguard serves the
    delivery that queued meanwhile."""
    check_binary()
    work = Path(tempfile.mkdtemp(prefix="hg-held-"))
    sock, log, spool = work / "hg.sock", work / "hookguard.log", work / "spool"
    held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    held.bind(str(sock))
    held.listen(16)

    def start() -> subprocess.Popen:
        # systemd's protocol by hand: the socket on fd 3, LISTEN_PID = hookguard's pid.
        with open(log, "ab") as out:
            return subprocess.Popen(
                ["sh", "-c", 'exec 3<&0 </dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" serve',
                 str(HOOKGUARD_BIN)],
                stdin=held.fileno(), stdout=out, stderr=out, env=no_inherited_environment())

    def deliver(tag: str) -> fcgi_client.FcgiResponse:
        data = json.dumps({"held": tag}).encode()
        return fcgi_client.request(str(sock), {
            "REQUEST_METHOD": "POST", "REQUEST_URI": "/hooks/held", "CONTENT_LENGTH": str(len(data)),
            "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": "held",
            "HOOKGUARD_SPOOL": str(spool),
            "HTTP_X_SIGNATURE": signing.signature("x-signature", "held", data)}, data, timeout=20)

    first = second = None
    try:
        first = start()
        r = deliver("first")
        assert r.status == 200, f"{r}\n{tail(log)}"
        assert stop(first, signal.SIGTERM, 10) == 0, tail(log)

        with ThreadPoolExecutor(1) as pool:
            queued = pool.submit(deliver, "queued while stopped")
            time.sleep(0.3)
            assert not queued.done(), f"answered with no hookguard running: {queued.result()}"
            second = start()
            r = queued.result(timeout=20)
        assert r.status == 200, f"the queued delivery: {r}\n{tail(log)}"
        assert len(os.listdir(spool / "new")) == 2
        assert stop(second, signal.SIGTERM, 10) == 0, tail(log)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        held.close()
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------
# the systemd units themselves


def test_systemd_units_verify_and_are_hardened(tmp_path):
    check_binary()
    for unit in ("hookguard.socket", "hookguard.service"):
        (tmp_path / unit).write_text(localize((SYSTEMD / unit).read_text(), tmp_path))
    units = [str(tmp_path / "hookguard.socket"), str(tmp_path / "hookguard.service")]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stderr.strip(), f"{r.stdout}{r.stderr}"
    # systemd's own exposure score, 0 (locked down) to 10: the unit as shipped scores 0.9.
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=15",
                        units[1]], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"exposure above 1.5:\n{r.stdout[-3000:]}{r.stderr}"
    service = (SYSTEMD / "hookguard.service").read_text()
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                    "ReadWritePaths=/var/spool/hookguard", "PrivateTmp=yes", "User=hookguard"):
        assert f"\n{setting}\n" in service, f"{setting} missing from hookguard.service"


# --------------------------------------------------------------------------
# nginx, for comparison with Apache (test_apache.py): header names with
# underscores never arrive


def test_nginx_drops_parameter_named_headers_with_underscores(env):
    elsewhere = env.path / "spool-from-header"
    body = body_for("x-signature", "nginx-underscore")
    injected = {"HOOKGUARD_SECRET": "x", "HOOKGUARD_SPOOL": str(elsewhere),
                "HOOKGUARD_SCHEME": "custom"}
    before, mark = env.listing("x-signature"), env.log_mark()
    r = env.deliver("x-signature", body, injected, secret="x")
    check_rejected(env, r, mark, status=500, reason="signature-mismatch", spool="x-signature",
                   before=before)
    assert not elsewhere.exists()

    genuine = body_for("x-signature", "nginx-underscore-genuine")
    headers = {"HOOKGUARD-SECRET": "from-dash", "HOOKGUARD_SECRET": "from-underscore"}
    delivery_id = accepted_id(env, env.deliver("x-signature", genuine, headers))
    check_entry(env, "x-signature", delivery_id, scheme="x-signature", uri="/hooks/x-signature",
                body=genuine, headers={"hookguard-secret": "from-dash"})
