"""Integration harness: a private nginx in front of a real hookguard.

The fixtures are in conftest.py; this module holds the machinery.

One session-wide PREFIX (a temp dir) holds the rendered nginx config
(scripts/lib/render-nginx + nginx-extra.conf), the secret files, the spools,
hookguard's socket and both logs.

Environment:
  HOOKGUARD_BIN          the binary (default: <repo>/.build/debug/hookguard)
  HOOKGUARD_KEEP_PREFIX  set to 1 to keep PREFIX after the run (path is printed)
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import signing  # noqa: E402

HOOKGUARD_BIN = Path(os.environ.get("HOOKGUARD_BIN") or REPO / ".build" / "debug" / "hookguard")
RENDER = REPO / "scripts" / "lib" / "render-nginx"
EXTRA_CONF = HERE / "nginx-extra.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

LITERAL_SECRET = "literal-secret-5b9d2e"  # also in nginx-extra.conf
WORKERS = 8


# --------------------------------------------------------------------------
# small helpers


@dataclass
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def __repr__(self) -> str:  # short and readable in assertion messages
        hdrs = ", ".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"<HTTP {self.status} {self.reason} [{hdrs}] body={self.body[:300]!r}>"


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"({path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


def free_port_pair() -> int:
    """A port p such that p, p+1 (nginx-extra.conf) and p+2 (NATS) are free on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65533:
                continue
            others = [socket.socket(), socket.socket()]
            try:
                others[0].bind(("127.0.0.1", p + 1))
                others[1].bind(("127.0.0.1", p + 2))
            except OSError:
                continue
            finally:
                for o in others:
                    o.close()
            return p
    raise RuntimeError("no three consecutive free ports on 127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def unix_socket_accepts(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect(str(path))
            return True
    except OSError:
        return False


def make_maildir(path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o750)


def wait_until(predicate, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def start_hookguard(socket_path: Path, log_path: Path, cwd: Path,
                    workers: int = WORKERS, extra_args: list[str] = ()) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            [str(HOOKGUARD_BIN), "serve", "--listen", f"unix:{socket_path}",
             "--workers", str(workers), *extra_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
        )
    finally:
        log.close()


def wait_hookguard_ready(proc: subprocess.Popen, socket_path: Path, log_path: Path,
                         timeout: float = 15.0) -> None:
    def ready():
        return proc.poll() is not None or unix_socket_accepts(socket_path)
    wait_until(ready, timeout)
    if proc.poll() is not None:
        raise RuntimeError(f"hookguard exited with {proc.returncode} at start:\n{tail(log_path)}")
    if not unix_socket_accepts(socket_path):
        raise RuntimeError(f"hookguard not accepting on {socket_path} after {timeout}s:\n"
                           f"{tail(log_path)}")


def stop(proc: subprocess.Popen, sig: int, timeout: float) -> int | None:
    """Send sig, wait up to timeout; SIGKILL if it is still there. Returns the
    exit code it chose itself, or None if it had to be killed."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def check_binary() -> None:
    if not HOOKGUARD_BIN.exists():
        pytest.fail(f"hookguard binary not found at {HOOKGUARD_BIN} "
                    f"(build it with `swift build`, or set HOOKGUARD_BIN)", pytrace=False)
    try:
        r = subprocess.run([str(HOOKGUARD_BIN), "serve", "--help"], capture_output=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"`{HOOKGUARD_BIN} serve --help` failed: {e}", pytrace=False)
    if r.returncode != 0:
        pytest.fail(f"`{HOOKGUARD_BIN} serve --help` exited {r.returncode}:\n"
                    f"{r.stdout.decode(errors='replace')}{r.stderr.decode(errors='replace')}",
                    pytrace=False)


# --------------------------------------------------------------------------
# the rendered PREFIX


class Prefix:
    """PREFIX laid out by render-nginx, with secrets and spools in place."""

    def __init__(self, path: Path, port: int):
        self.path = path
        self.port = port  # the sample site
        self.port2 = port + 1  # nginx-extra.conf
        self.metrics_port = free_port()  # hookguard serve --metrics-listen
        self.nats_port = port + 2  # test_nats.py's nats-server
        self.socket = path / "run" / "hookguard.sock"
        self.log = path / "hookguard.log"
        self.nginx_error = path / "error.log"
        self.nginx_conf = path / "conf" / "nginx.conf"
        self.secrets = {name: signing.new_secret(name) for name in signing.ALL_NAMES}

    def render(self) -> None:
        subprocess.run([str(RENDER), str(self.path), str(self.port), str(EXTRA_CONF)],
                       check=True, capture_output=True)
        sec = self.path / "secrets"
        for name, secret in self.secrets.items():
            # comments and blank lines around the one secret, as deployed
            write_file(sec / f"{name}.secret", f"# {name} secret\n\n{secret}\n")
        write_file(sec / "comments-only.secret", "# nothing here yet\n\n# still nothing\n")
        write_file(sec / "empty.secret", "")
        write_file(sec / "rotate-rename.secret", f"{LITERAL_SECRET}\n")
        write_file(sec / "rotate-inplace.secret", f"{LITERAL_SECRET}\n")
        # a regular file where /t/spool-under-file expects a directory
        write_file(self.path / "not-a-dir", "this is not a directory\n")
        # Every other spool is left for hookguard to create on first delivery.
        broken = self.spool_dir("new-is-file")
        make_maildir(broken)
        (broken / "new").rmdir()
        write_file(broken / "new", "new/ should be a directory\n")

    def spool_dir(self, name: str) -> Path:
        return self.path / "spool" / name

    def nginx_test(self) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX, "-t", "-p", str(self.path), "-c", str(self.nginx_conf),
                               "-e", str(self.nginx_error)], capture_output=True, text=True)


def write_file(path: Path, text: str, mode: int = 0o600) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


# --------------------------------------------------------------------------
# the running pair


class Env:
    """What a test sees: the two nginx servers, the spools and the logs."""

    def __init__(self, prefix: Prefix, hookguard: subprocess.Popen, nginx: subprocess.Popen):
        self.prefix = prefix
        self.path = prefix.path
        self.hookguard = hookguard
        self.nginx = nginx
        self.secrets = prefix.secrets
        self.literal_secret = LITERAL_SECRET

    # -- HTTP

    def port_for(self, path: str) -> int:
        return self.prefix.port2 if path.startswith("/t/") else self.prefix.port

    def base_url(self, extra: bool = False) -> str:
        return f"http://127.0.0.1:{self.prefix.port2 if extra else self.prefix.port}"

    def request(self, method: str, path: str, body=None, headers: dict | None = None,
                timeout: float = 30.0, encode_chunked: bool = False) -> Response:
        conn = http.client.HTTPConnection("127.0.0.1", self.port_for(path), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {},
                         encode_chunked=encode_chunked)
            r = conn.getresponse()
            return Response(r.status, r.reason, r.headers, r.read())
        finally:
            conn.close()

    def post(self, path: str, body: bytes, headers: dict | None = None, **kw) -> Response:
        return self.request("POST", path, body, headers, **kw)

    def deliver(self, scheme: str, body: bytes, headers: dict | None = None,
                secret: str | bytes | None = None, **sign_kw) -> Response:
        """POST a genuinely signed delivery to the scheme's sample location."""
        secret = self.secrets[scheme] if secret is None else secret
        h = {"Content-Type": "application/json"}
        h.update(signing.sign(scheme, secret, body, **sign_kw))
        h.update(headers or {})
        return self.post(signing.SCHEMES[scheme].path, body, h)

    # -- spools

    def spool(self, name: str) -> Path:
        return self.prefix.spool_dir(name)

    def listing(self, name: str, sub: str = "new") -> set[str]:
        """Names in a spool subdirectory; empty before hookguard made the spool."""
        try:
            return set(os.listdir(self.spool(name) / sub))
        except FileNotFoundError:
            return set()

    def entry_path(self, name: str, delivery_id: str) -> Path:
        return self.spool(name) / "new" / f"{delivery_id}.json"

    def read_entry(self, name: str, delivery_id: str) -> dict:
        p = self.entry_path(name, delivery_id)
        assert p.exists(), f"no spool file {p}; new/ has {sorted(self.listing(name))[:20]}\n" \
                           + self.diag()
        raw = p.read_bytes()
        return json.loads(raw.decode("utf-8"))  # strict: raw control chars are an error

    def assert_tmp_empty(self, *names: str) -> None:
        for name in names:
            left = self.listing(name, "tmp")
            assert not left, f"{self.spool(name)}/tmp not empty: {sorted(left)}\n" + self.diag()

    # -- logs

    def log_mark(self) -> int:
        try:
            return self.prefix.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        with open(self.prefix.log, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def log_text(self) -> str:
        return self.log_since(0)

    def wait_log(self, mark: int, *needles: str, timeout: float = 5.0) -> str | None:
        """The first log line written after mark that holds every needle."""
        def find():
            for line in self.log_since(mark).splitlines():
                if all(n in line for n in needles):
                    return line
            return None
        return wait_until(find, timeout)

    def assert_logged(self, mark: int, *needles: str, timeout: float = 5.0) -> str:
        line = self.wait_log(mark, *needles, timeout=timeout)
        assert line, f"no hookguard log line with {needles} since the request\n" + self.diag()
        return line

    def diag(self) -> str:
        alive = "running" if self.hookguard.poll() is None else f"EXITED {self.hookguard.returncode}"
        return (f"\n--- hookguard ({alive}) log tail: {self.prefix.log}\n{tail(self.prefix.log)}"
                f"\n--- nginx error.log tail: {self.prefix.nginx_error}\n"
                f"{tail(self.prefix.nginx_error)}\n")


