"""The FastCGI transport under faulty clients, and bounded shutdown.

A hookguard with 2 workers and short timeouts (--read-timeout 0.5,
--idle-timeout 1) behind its own small nginx (upstream keepalive +
fastcgi_keep_conn on). Raw FastCGI clients connect straight to its socket and
send nothing, stall in the parameters or stall in the body, or keep a
connection idle; a normal delivery through nginx must still be answered within
the bound, hookguard must close those connections after its timeouts, and
descriptors and threads must not grow.
SIGTERM, with such connections open, must end the process (supervisor and
child) within --grace + 2 s without spinning. Plain CGI: a stalled body read
ends after HOOKGUARD_READ_TIMEOUT; SIGTERM ends a stalled request after
HOOKGUARD_GRACE.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import fcgi_client
import signing
from harness import (HOOKGUARD_BIN, NGINX, check_binary, free_port, make_maildir, port_open,
                     start_hookguard, stop, tail, wait_hookguard_ready, wait_until)

SECRET = "transport-secret-3c1f"
WORKERS = 2
READ = 0.5  # --read-timeout
IDLE = 1.0  # --idle-timeout
GRACE = 1.0  # --grace in the SIGTERM tests
SLACK = 2.0  # what a bound may exceed its timeout by (shared CPU, sanitizers)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# clients that misbehave


def params_for(spool: Path, body: bytes) -> dict[str, str]:
    return {
        "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "REQUEST_URI": "/hook", "SCRIPT_NAME": "/hook",
        "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost",
        "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": SECRET,
        "HOOKGUARD_SPOOL": str(spool),
        "HTTP_X_SIGNATURE": signing.signature("x-signature", SECRET, body),
    }


def connect(sock_path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(sock_path))
    return s


def silent(sock_path: Path, spool: Path) -> socket.socket:
    """Connects and sends nothing."""
    return connect(sock_path)


def stalled_in_params(sock_path: Path, spool: Path) -> socket.socket:
    """Sends BEGIN_REQUEST and 10 of the 200 bytes a PARAMS record announces."""
    s = connect(sock_path)
    s.sendall(fcgi_client.begin_request() + fcgi_client.record_header(fcgi_client.FCGI_PARAMS, 200)
              + b"\x0e\x04REQUEST_")
    return s


def stalled_in_body(sock_path: Path, spool: Path) -> socket.socket:
    """Sends the whole head of a 64-byte delivery and 10 bytes of its body."""
    body = b'{"stalled": "in the body, never finished"}'.ljust(64)
    s = connect(sock_path)
    s.sendall(fcgi_client.begin_request() + fcgi_client.params_stream(params_for(spool, body))
              + fcgi_client.record_header(fcgi_client.FCGI_STDIN, len(body)) + body[:10])
    return s


def reading_a_socket(pid: int) -> bool:
    """Whether a thread of `pid` is blocked reading a Unix socket: a worker
    has the stalled request, not only the waiting room."""
    for wchan in Path(f"/proc/{pid}/task").glob("*/wchan"):
        try:
            if wchan.read_text() == "unix_stream_read_generic":
                return True
        except OSError:
            continue
    return False


def closed_by_peer(s: socket.socket, within: float) -> tuple[float | None, bytes]:
    """Seconds until the peer closed `s` (None if it was still open after
    `within`), and what it sent before."""
    start = time.monotonic()
    received = b""
    while True:
        left = within - (time.monotonic() - start)
        if left <= 0:
            return None, received
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return None, received
        except OSError:
            return time.monotonic() - start, received
        if not chunk:
            return time.monotonic() - start, received
        received += chunk


# --------------------------------------------------------------------------
# the process, seen from /proc


def child_of(pid: int) -> int:
    """The supervisor's one child (the socket accepts before it is forked)."""
    def children():
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    wait_until(children, 10)
    assert len(children()) == 1, f"supervisor {pid} has children {children()}"
    return int(children()[0])


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --------------------------------------------------------------------------
# hookguard behind a small nginx of its own

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/ngx-body;
    fastcgi_temp_path {dir}/ngx-fastcgi;
    proxy_temp_path {dir}/ngx-proxy;
    uwsgi_temp_path {dir}/ngx-uwsgi;
    scgi_temp_path {dir}/ngx-scgi;
    upstream hookguard {{
        server unix:{sock};
        keepalive 2;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /hook {{
            fastcgi_pass hookguard;
            fastcgi_keep_conn on;
            fastcgi_read_timeout 20s;
            include /etc/nginx/fastcgi_params;
            fastcgi_param HOOKGUARD_SCHEME x-signature;
            fastcgi_param HOOKGUARD_SECRET {secret};
            fastcgi_param HOOKGUARD_SPOOL {spool};
        }}
    }}
}}
"""


@dataclass
class Stack:
    dir: Path
    sock: Path
    spool: Path
    log: Path
    port: int
    hookguard: subprocess.Popen
    child: int
    baseline_fds: int
    baseline_threads: int

    def deliver(self, body: bytes, timeout: float = 20) -> tuple[int, float]:
        """POSTs a signed delivery through nginx: (status, seconds)."""
        start = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", "/hook", body=body, headers={
                "Content-Type": "application/json",
                "X-Signature": signing.signature("x-signature", SECRET, body)})
            status = conn.getresponse().status
        finally:
            conn.close()
        return status, time.monotonic() - start

    def settled(self) -> bool:
        """Back to the descriptors and threads it had before any connection."""
        return descriptors(self.child) <= self.baseline_fds and threads(self.child) <= self.baseline_threads

    def settle(self) -> None:
        """Waits until hookguard holds no connection (nginx's kept one included)."""
        assert wait_until(self.settled, IDLE + SLACK + 1), \
            f"still {descriptors(self.child)} descriptors (baseline {self.baseline_fds})\n{tail(self.log)}"

    def diag(self) -> str:
        return f"{tail(self.log)}\n-- nginx:\n{tail(self.dir / 'nginx-error.log', 10)}"


def short_dir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))  # a Unix socket path must fit in 108 bytes
    os.chmod(d, 0o755)  # nginx's workers (nobody) reach the socket through it
    return d


@pytest.fixture(scope="module")
def stack():
    check_binary()
    d = short_dir("hg-tr-")
    sock, log, spool = d / "hg.sock", d / "hookguard.log", d / "spool"
    make_maildir(spool)
    hookguard = start_hookguard(sock, log, d, workers=WORKERS, extra_args=[
        "--read-timeout", str(READ), "--idle-timeout", str(IDLE), "--grace", "2",
        "--socket-mode", "0666"])
    nginx = None
    try:
        wait_hookguard_ready(hookguard, sock, log)
        child = child_of(hookguard.pid)
        # started (every thread) and past the readiness probe's connection: the same twice running
        previous = None
        for _ in range(50):
            time.sleep(0.3)
            now = (descriptors(child), threads(child))
            if now == previous:
                break
            previous = now
        port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, sock=sock, port=port, secret=SECRET, spool=spool))
        with open(d / "nginx.stderr", "ab") as err:
            nginx = subprocess.Popen([NGINX, "-p", str(d), "-c", str(conf), "-e", str(d / "nginx-error.log")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        assert wait_until(lambda: nginx.poll() is not None or port_open(port), 10) and nginx.poll() is None, \
            f"nginx did not start:\n{tail(d / 'nginx.stderr')}"
        yield Stack(d, sock, spool, log, port, hookguard, child, descriptors(child), threads(child))
    finally:
        if nginx is not None:
            stop(nginx, signal.SIGQUIT, 10)
        code = stop(hookguard, signal.SIGTERM, 10)
        text = tail(log)
        shutil.rmtree(d, ignore_errors=True)
    assert code == 0, f"hookguard exit status after SIGTERM: {code}\n{text}"


@dataclass
class Place:
    """A directory of one test's own: socket, log, spool, and what it started."""
    dir: Path
    started: list

    @property
    def sock(self) -> Path:
        return self.dir / "hg.sock"

    @property
    def log(self) -> Path:
        return self.dir / "hookguard.log"

    @property
    def spool(self) -> Path:
        return self.dir / "spool"

    def track(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.started.append(proc)
        return proc


@pytest.fixture
def place():
    check_binary()
    p = Place(short_dir("hg-tr1-"), [])
    make_maildir(p.spool)
    yield p
    for proc in p.started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(p.dir, ignore_errors=True)


CLIENTS = {"silent": silent, "stalled-in-params": stalled_in_params, "stalled-in-body": stalled_in_body}


@pytest.mark.parametrize("kind", CLIENTS)
def test_as_many_stalled_connections_as_workers_do_not_stop_a_delivery(stack, kind):
    stack.settle()
    held = [CLIENTS[kind](stack.sock, stack.spool) for _ in range(WORKERS)]
    try:
        time.sleep(0.1)  # every worker has taken one
        status, seconds = stack.deliver(b'{"through": "nginx"}')
        assert status == 200, stack.diag()
        assert seconds < READ + SLACK, f"answered after {seconds:.2f}s\n{stack.diag()}"
        for s in held:
            closed, answer = closed_by_peer(s, READ + SLACK)
            assert closed is not None, f"{kind} connection still open after {READ + SLACK}s\n{stack.diag()}"
            if kind == "stalled-in-body":
                assert b"Status: 400" in answer and b"shorter than its Content-Length" in answer, answer
            else:
                assert answer == b"", answer
    finally:
        for s in held:
            s.close()


def test_many_more_silent_connections_than_workers_hold_none(stack):
    stack.settle()
    held = [silent(stack.sock, stack.spool) for _ in range(10 * WORKERS)]
    try:
        time.sleep(0.1)
        status, seconds = stack.deliver(b'{"behind": "twenty silent ones"}')
        assert status == 200, stack.diag()
        assert seconds < READ + SLACK, f"answered after {seconds:.2f}s\n{stack.diag()}"
        for s in held:
            closed, answer = closed_by_peer(s, READ + SLACK)
            assert closed is not None and answer == b"", stack.diag()
    finally:
        for s in held:
            s.close()


def test_idle_kept_connections_hold_no_worker_and_close_after_the_idle_timeout(stack):
    stack.settle()
    body = b'{"kept": true}'
    kept = [fcgi_client.KeptConnection(str(stack.sock)) for _ in range(WORKERS + 1)]
    try:
        answered_at = []
        for connection in kept:
            first = connection.request(params_for(stack.spool, body), body)
            second = connection.request(params_for(stack.spool, body), body)
            answered_at.append(time.monotonic())
            assert (first.status, second.status) == (200, 200), stack.diag()
        # more kept connections idle than there are workers: none is held
        status, seconds = stack.deliver(body)
        assert status == 200 and seconds < SLACK, f"{status} after {seconds:.2f}s\n{stack.diag()}"
        for connection, answered in zip(kept, answered_at):
            assert connection.peer_closed(IDLE + SLACK), f"kept connection still open after {IDLE + SLACK}s"
            idle = time.monotonic() - answered
            assert idle > IDLE - 0.3, f"closed after {idle:.2f}s idle, before --idle-timeout {IDLE}"
    finally:
        for connection in kept:
            connection.close()
    # nginx's own kept connection is closed the same way, and nginx opens another
    time.sleep(IDLE + 0.3)
    status, seconds = stack.deliver(body)
    assert status == 200 and seconds < SLACK, stack.diag()


def test_descriptors_and_threads_do_not_grow_across_a_burst(stack):
    stack.settle()
    held = []
    for _ in range(2):
        for client in CLIENTS.values():
            held.append(client(stack.sock, stack.spool))
    try:
        rounds = -(-len(held) // WORKERS)
        for s in held:
            closed, _ = closed_by_peer(s, rounds * READ + SLACK)
            assert closed is not None, stack.diag()
    finally:
        for s in held:
            s.close()
    assert wait_until(stack.settled, SLACK), \
        f"descriptors {descriptors(stack.child)} (was {stack.baseline_fds}), " \
        f"threads {threads(stack.child)} (was {stack.baseline_threads})\n{stack.diag()}"
    status, _ = stack.deliver(b'{"after": "the burst"}')
    assert status == 200, stack.diag()


# --------------------------------------------------------------------------
# SIGTERM


@pytest.mark.parametrize("supervised", [True, False], ids=["supervised", "no-supervisor"])
def test_sigterm_with_silent_and_stalled_connections_ends_within_grace(place, supervised):
    sock, log, spool = place.sock, place.log, place.spool
    # the read timeout outlasts the grace period: the grace period must end it
    proc = place.track(start_hookguard(sock, log, place.dir, workers=WORKERS, extra_args=[
        "--read-timeout", "30", "--grace", str(GRACE)] + ([] if supervised else ["--no-supervisor"])))
    held = []
    try:
        wait_hookguard_ready(proc, sock, log)
        server = child_of(proc.pid) if supervised else proc.pid
        time.sleep(0.3)  # the readiness probe's connection is closed
        before = descriptors(server)
        held = [silent(sock, spool), stalled_in_body(sock, spool), silent(sock, spool)]
        assert wait_until(lambda: descriptors(server) >= before + WORKERS, 5), tail(log)
        # In flight only once a worker reads its body (exit 1 after the grace).
        assert wait_until(lambda: reading_a_socket(server), 5), tail(log)
        cpu_before = cpu_seconds(server)

        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        time.sleep(GRACE * 0.8)
        cpu_during = cpu_seconds(server) if alive(server) else None
        try:
            code = proc.wait(GRACE + SLACK)
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - start
        assert code is not None, f"still running {GRACE + SLACK}s after SIGTERM\n{tail(log)}"
        assert code == 1, f"exit status {code}: 1 is documented when the grace period runs out\n{tail(log)}"
        assert seconds < GRACE + SLACK, f"exited after {seconds:.2f}s"
        assert not alive(server), f"worker process {server} left behind"
        if cpu_during is not None:
            assert cpu_during - cpu_before < 0.3, \
                f"{cpu_during - cpu_before:.2f}s of CPU within {GRACE * 0.8}s of SIGTERM: spinning"
        assert "grace period over" in log.read_text()
        assert not sock.exists(), "socket file left behind"
        for s in held:
            closed, _ = closed_by_peer(s, 1)
            assert closed is not None, "a connection outlived the process"
    finally:
        for s in held:
            s.close()


def test_sigterm_closes_an_idle_kept_connection_and_exits_zero_at_once(place):
    sock, log, spool = place.sock, place.log, place.spool
    proc = place.track(start_hookguard(sock, log, place.dir, workers=WORKERS, extra_args=[
        "--idle-timeout", "30", "--grace", "10"]))
    wait_hookguard_ready(proc, sock, log)
    body = b'{"kept": "over SIGTERM"}'
    with fcgi_client.KeptConnection(str(sock)) as kept:
        assert kept.request(params_for(spool, body), body).status == 200, tail(log)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert kept.peer_closed(SLACK), "kept connection still open after SIGTERM"
        code = proc.wait(SLACK)
        seconds = time.monotonic() - start
    assert code == 0, tail(log)
    assert seconds < SLACK, f"exited {seconds:.2f}s after SIGTERM, with nothing in flight"


# --------------------------------------------------------------------------
# plain CGI


@pytest.fixture
def stalled_cgi(place):
    """Starts hookguard as a CGI program (with these extra variables) for a
    64-byte delivery whose body stops after 10 bytes."""
    pipes = []

    def start(extra_env: dict[str, str]) -> subprocess.Popen:
        body = b'{"cgi": "stalled"}'.ljust(64)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **params_for(place.spool, body), **extra_env}
        read_end, write_end = os.pipe()
        pipes.append(write_end)  # held open: the body never ends
        os.write(write_end, body[:10])
        with open(place.log, "ab") as log:
            proc = place.track(subprocess.Popen([str(HOOKGUARD_BIN)], stdin=read_end, stdout=subprocess.PIPE,
                                                stderr=log, env=env, cwd=place.dir))
        os.close(read_end)
        return proc
    yield start
    for fd in pipes:
        os.close(fd)


def test_cgi_stalled_body_ends_after_the_read_timeout(place, stalled_cgi):
    proc = stalled_cgi({"HOOKGUARD_READ_TIMEOUT": "1"})
    start = time.monotonic()
    out, _ = proc.communicate(timeout=1 + SLACK + 3)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, tail(place.log)
    assert b"Status: 400" in out and b"shorter than its Content-Length" in out, out
    assert 0.9 < seconds < 1 + SLACK, f"answered after {seconds:.2f}s"


def test_cgi_sigterm_ends_a_stalled_request_after_the_grace_period(place, stalled_cgi):
    proc = stalled_cgi({"HOOKGUARD_READ_TIMEOUT": "60", "HOOKGUARD_GRACE": str(GRACE)})

    def term_handled():  # SIGTERM (15) is blocked: its waiting thread has it
        status = Path(f"/proc/{proc.pid}/status").read_text()
        blocked = int(next(l for l in status.splitlines() if l.startswith("SigBlk:")).split()[1], 16)
        return blocked & (1 << (signal.SIGTERM - 1))
    assert wait_until(lambda: proc.poll() is not None or term_handled(), 10) and proc.poll() is None, \
        tail(place.log)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=GRACE + SLACK + 3)
    seconds = time.monotonic() - start
    assert proc.returncode == 1, f"exit status {proc.returncode}\n{tail(place.log)}"
    assert GRACE - 0.1 < seconds < GRACE + SLACK, f"ended {seconds:.2f}s after SIGTERM"
    assert "grace period over" in place.log.read_text()
    assert list((place.spool / "new").iterdir()) == []


# --------------------------------------------------------------------------
# accept failures


def test_accept_failures_are_logged_at_most_once_a_second_and_serving_resumes(place):
    import resource
    sock, log, spool = place.sock, place.log, place.spool
    limit = 24  # a few more than hookguard's own descriptors: accept(2) soon fails with EMFILE

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    with open(log, "ab") as out:
        proc = place.track(subprocess.Popen(
            [str(HOOKGUARD_BIN), "serve", "--listen", f"unix:{sock}", "--workers", str(WORKERS),
             "--read-timeout", "1", "--no-supervisor"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=place.dir, preexec_fn=low_limit))
    held = []
    try:
        wait_hookguard_ready(proc, sock, log)
        start = time.monotonic()
        held = [silent(sock, spool) for _ in range(2 * limit)]
        time.sleep(2.5)
        for s in held:
            s.close()
        elapsed = time.monotonic() - start
        lines = [l for l in log.read_text().splitlines() if "cannot accept connections" in l]
        assert lines, f"no accept failure logged\n{tail(log)}"
        assert "Too many open files" in lines[0] and "count=" in lines[0], lines[0]
        assert len(lines) <= elapsed + 1, f"{len(lines)} lines in {elapsed:.1f}s:\n" + "\n".join(lines)
        body = b'{"after": "EMFILE"}'
        r = fcgi_client.request(str(sock), params_for(spool, body), body, timeout=1 + SLACK + 2)
        assert r.status == 200, tail(log)
        assert cpu_seconds(proc.pid) < 2, "spun while out of descriptors"
        assert stop(proc, signal.SIGTERM, 5) == 0, tail(log)
    finally:
        for s in held:
            s.close()
