"""Starting and stopping hookguard, and the rendered nginx config itself.

The hookguards here are private ones on their own sockets, spoken to
directly over FastCGI (fcgi_client.py), never the session's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import tempfile
from pathlib import Path

import pytest

import fcgi_client
import signing
from checks import UUID7
from harness import (check_binary, make_maildir, start_hookguard, stop, tail,
                     wait_hookguard_ready)

SECRET = "lifecycle-secret-0c41"


def test_rendered_nginx_config_is_valid(prefix):
    """Needs no hookguard: the sample site plus nginx-extra.conf pass nginx -t."""
    r = prefix.nginx_test()
    assert r.returncode == 0, f"nginx -t failed:\n{r.stdout}{r.stderr}"
    conf = (prefix.path / "conf" / "extra-nginx-extra.conf").read_text()
    assert "@" not in conf.replace("\"", ""), "an @NAME@ was left unsubstituted"
    assert f"127.0.0.1:{prefix.port2};" in conf


@pytest.fixture
def workdir():
    # short path: a unix socket path must fit in 108 bytes
    d = Path(tempfile.mkdtemp(prefix="hg-life-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def fcgi_delivery(sock: Path, spool: Path, data: bytes) -> fcgi_client.FcgiResponse:
    params = {
        "QUERY_STRING": "", "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)), "SCRIPT_NAME": "/hooks/direct",
        "REQUEST_URI": "/hooks/direct", "DOCUMENT_URI": "/hooks/direct",
        "DOCUMENT_ROOT": "/", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "http",
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_SOFTWARE": "fcgi_client.py",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_NAME": "localhost", "HTTP_HOST": "localhost",
        "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": SECRET,
        "HOOKGUARD_SPOOL": str(spool),
        "HTTP_X_SIGNATURE": signing.signature("x-signature", SECRET, data),
    }
    return fcgi_client.request(str(sock), params, data)


def serve_one_and_stop(workdir: Path, sock: Path) -> None:
    """Start hookguard on sock, deliver once over FastCGI, SIGTERM it."""
    log = workdir / "hookguard.log"
    spool = workdir / "spool"
    make_maildir(spool)
    proc = start_hookguard(sock, log, workdir, workers=2)
    try:
        wait_hookguard_ready(proc, sock, log)
        data = b'{"direct": "fastcgi"}'
        r = fcgi_delivery(sock, spool, data)
        assert r.status == 200, f"direct FastCGI delivery answered {r}\n{tail(log)}"
        delivery_id = json.loads(r.body)["id"]
        assert UUID7.match(delivery_id)
        entry = json.loads((spool / "new" / f"{delivery_id}.json").read_text())
        assert entry["body"] == data.decode() and entry["uri"] == "/hooks/direct"

        code = stop(proc, signal.SIGTERM, 10)
        assert code == 0, f"hookguard exit status after SIGTERM: {code} " \
                          f"(None: still running after 10 s)\n{tail(log)}"
        assert not sock.exists(), "hookguard left its socket file behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_exits_zero_and_removes_socket(workdir):
    check_binary()
    serve_one_and_stop(workdir, workdir / "hg.sock")


def test_starts_over_a_stale_socket_file(workdir):
    check_binary()
    sock = workdir / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(sock))
    s.close()  # no unlink: the file stays, nobody listens
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    serve_one_and_stop(workdir, sock)
