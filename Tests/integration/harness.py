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

import grp
import http.client
import json
import os
import pwd
import shutil
import signal
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

import answers_table  # noqa: E402
import public_keys  # noqa: E402
import senders  # noqa: E402
import signing  # noqa: E402

HOOKGUARD_BIN = Path(os.environ.get("HOOKGUARD_BIN") or REPO / ".build" / "debug" / "hookguard")
RENDER = REPO / "scripts" / "lib" / "render-nginx"
EXTRA_CONF = HERE / "nginx-extra.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

LITERAL_SECRET = "literal-secret-5b9d2e"  # also in nginx-extra.conf
# The secret of issue 16: its base64 lost the trailing "=" (the libraries pad it back).
UNPADDED_WHSEC = "whsec_OGg6NYbF+IVj+TSFkQWmsxdykKqIwY8yPHV+flc8l/A"
UNUSABLE_WHSEC = "whsec_this*is*not*base64"
VERIFY_TOKEN = "meta-verify-token-7c1e"  # Meta's hub.verify_token for /t/preset/meta
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
        self.catalog_secrets = {name: (senders.new_secret(name), senders.new_secret(name)) for name in senders.SENDERS}
        self.key_pairs = {name: (public_keys.KeyPair(name), public_keys.KeyPair(name)) for name in public_keys.HEADERS}
        self.v1a_shared = signing.new_secret("standard-webhooks")
        self.v1a_pair = public_keys.V1aKey()
        self.url_secrets = {name: (f"{name}-old-{os.urandom(8).hex()}", f"{name}-new-{os.urandom(8).hex()}")
                            for name in ("twilio", "square", "hubspot", "mailgun")}
        # Adyen's HMAC keys are hex (Customer Area); old in upper case, new in lower, as either is pasted.
        self.adyen_keys = (os.urandom(32).hex().upper(), os.urandom(32).hex())

    def render(self) -> None:
        subprocess.run([str(RENDER), str(self.path), str(self.port), str(EXTRA_CONF)],
                       check=True, capture_output=True)
        answers_table.render(self.path)
        sec = self.path / "secrets"
        for name, secret in self.secrets.items():
            # comments and blank lines around the one secret, as deployed
            write_file(sec / f"{name}.secret", f"# {name} secret\n\n{secret}\n")
        # issue 16: every catalog preset at /t/preset/<name>, with two secrets (a rotation)
        for name, pair in self.catalog_secrets.items():
            write_file(sec / f"preset-{name}.secret", f"# {name}: old, then new\n{pair[0]}\n{pair[1]}\n")
        write_file(sec / "preset-slack.secret", f"{self.secrets['slack']}\n")
        write_file(sec / "v1a.secret", f"{self.v1a_shared}\n{self.v1a_pair.whpk}\n")
        write_file(sec / "verify-token", f"{VERIFY_TOKEN}\n")
        for name, pair in self.url_secrets.items():
            write_file(sec / f"preset-{name}.secret", f"{pair[0]}\n{pair[1]}\n")
        write_file(sec / "preset-adyen.secret", f"# adyen: old, then new\n{self.adyen_keys[0]}\n{self.adyen_keys[1]}\n")
        # issue 16: the public-key presets, with two of the sender's public keys each
        for name, pairs in self.key_pairs.items():
            write_file(sec / f"preset-{name}.secret", "".join(p.public_text + "\n" for p in pairs))
        # issue 16: a Standard Webhooks secret without its base64 padding, after a line that is no key
        write_file(sec / "unpadded.secret", f"# rotating\n{UNUSABLE_WHSEC}\n{UNPADDED_WHSEC}\n")
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




# --------------------------------------------------------------------------
# Apache, and the other ways of starting hookguard (test_apache.py,
# test_launch_modes.py)

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
RENDER_APACHE = REPO / "scripts" / "lib" / "render-apache"
APACHE_MODES = ("proxy-fcgi", "fcgid", "cgid")
# Apache started as root runs its children, and the hookguard that mod_fcgid
# and mod_cgid start, as www-data, like a packaged Apache.
WEB_USER = "www-data" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
WEB_GROUP = grp.getgrgid(pwd.getpwnam(WEB_USER).pw_gid).gr_name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(prefix: Prefix) -> subprocess.Popen:
    """The private nginx on a rendered Prefix, up on both its ports."""
    with open(prefix.path / "nginx.stderr", "ab") as nginx_stderr:
        nginx = subprocess.Popen(
            [NGINX, "-p", str(prefix.path), "-c", str(prefix.nginx_conf), "-e",
             str(prefix.nginx_error)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=nginx_stderr)
    ok = wait_until(lambda: nginx.poll() is not None
                    or (port_open(prefix.port) and port_open(prefix.port2)), 10)
    if nginx.poll() is not None or not ok:
        stop(nginx, signal.SIGTERM, 5)
        raise RuntimeError(f"nginx did not come up on {prefix.port}/{prefix.port2}:\n"
                           f"{tail(prefix.path / 'nginx.stderr')}\n{tail(prefix.nginx_error)}")
    return nginx


def processes_running(exe: Path) -> list[int]:
    """PIDs of the processes running the program file exe."""
    pids, target = [], os.path.realpath(exe)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "exe") == target:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def own(path: Path, mode: int, user: str | None = None, group: str | None = None) -> None:
    """chmod, and chown when root: the setup an administrator does for the
    web server's user."""
    if os.geteuid() == 0 and (user or group):
        shutil.chown(path, user, group)
    os.chmod(path, mode)


class ApachePrefix:
    """A private Apache in one mode (apache/hookguard-MODE.conf rendered by
    scripts/lib/render-apache), with secrets, spools and a copy of the binary
    laid out as an administrator would, for the web server's user.

    Quacks like Prefix, so Env and checks.py work on it."""

    def __init__(self, path: Path, port: int, mode: str):
        self.path = path
        self.port = self.port2 = port
        self.mode = mode
        self.bin = path / "bin" / "hookguard"  # /usr/local/bin/hookguard
        self.socket = path / "run" / "hookguard.sock"  # proxy-fcgi only
        self.conf = path / "conf" / "httpd.conf"
        self.error_log = path / "logs" / "error.log"
        # Where hookguard's own lines go: its stderr, which is Apache's error
        # log when Apache starts it.
        self.log = path / "logs" / ("hookguard.log" if mode == "proxy-fcgi" else "error.log")
        self.secrets = {name: f"{name}-secret-{os.urandom(8).hex()}" for name in signing.SCHEMES}
        # Who runs hookguard: the test (proxy-fcgi, like a systemd service) or Apache.
        self.hookguard_user = pwd.getpwuid(os.geteuid()).pw_name if mode == "proxy-fcgi" \
            else WEB_USER

    def render(self) -> None:
        self.bin.parent.mkdir(parents=True)
        shutil.copy2(HOOKGUARD_BIN, self.bin)  # the clone itself may not be www-data's to read
        self.render_config()
        os.chmod(self.path, 0o711)  # mkdtemp's 0700 would stop www-data at the door
        own(self.path / "run", 0o750, group=WEB_GROUP)  # hookguard's, fcgid's and cgid's sockets
        own(self.path / "secrets", 0o750, group=WEB_GROUP)
        for name, secret in self.secrets.items():
            p = self.path / "secrets" / f"{name}.secret"
            write_file(p, f"# {name} secret\n\n{secret}\n")
            own(p, 0o640, group=WEB_GROUP)
        user = self.hookguard_user
        own(self.path / "spool", 0o750, user, grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name)

    def render_config(self) -> None:
        """conf/ for the current port (again after a port turned out taken)."""
        subprocess.run([str(RENDER_APACHE), str(self.path), str(self.port), self.mode,
                        str(self.bin)], check=True, capture_output=True,
                       env={**os.environ, "APACHE_USER": WEB_USER})

    def spool_dir(self, name: str) -> Path:
        return self.path / "spool" / name

    def config_test(self) -> subprocess.CompletedProcess:
        return subprocess.run([APACHE, "-t", "-f", str(self.conf)], capture_output=True,
                              text=True)


def start_apache(prefix: ApachePrefix) -> subprocess.Popen:
    """apache2 in the foreground on the rendered prefix, up on its port."""
    # Written once Apache holds its port: an open port alone may be someone else's.
    pid_file = prefix.path / "run" / "apache2.pid"
    pid_file.unlink(missing_ok=True)
    with open(prefix.path / "logs" / "apache2.stderr", "ab") as stderr:
        apache = subprocess.Popen([APACHE, "-f", str(prefix.conf), "-DFOREGROUND"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=stderr)
    ok = wait_until(lambda: apache.poll() is not None
                    or (pid_file.exists() and port_open(prefix.port)), 15)
    if apache.poll() is not None or not ok:
        stop(apache, signal.SIGTERM, 10)
        raise RuntimeError(f"apache2 did not come up on {prefix.port}:\n"
                           f"{tail(prefix.path / 'logs' / 'apache2.stderr')}\n"
                           f"{tail(prefix.error_log)}")
    return apache


class ApacheEnv(Env):
    """Env for a private Apache; `hookguard` is the one the test started
    (proxy-fcgi), or None when Apache starts it."""

    def __init__(self, prefix: ApachePrefix, hookguard: subprocess.Popen | None,
                 apache: subprocess.Popen):
        super().__init__(prefix, hookguard, apache)
        self.apache = apache
        self.mode = prefix.mode

    def port_for(self, path: str) -> int:
        return self.prefix.port

    def diag(self) -> str:
        text = f"\n--- apache2 {self.mode} error.log tail: {self.prefix.error_log}\n" \
               f"{tail(self.prefix.error_log)}\n"
        if self.hookguard is not None:
            alive = "running" if self.hookguard.poll() is None \
                else f"EXITED {self.hookguard.returncode}"
            text += f"--- hookguard ({alive}) log tail: {self.prefix.log}\n{tail(self.prefix.log)}\n"
        return text
