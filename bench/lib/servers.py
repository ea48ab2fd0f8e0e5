"""The receivers under test, each started privately under one PREFIX behind
one nginx, and stopped by the PIDs started here (never by name)."""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SECRET = "bench-secret-" + os.urandom(8).hex()


def free_port_run(count: int) -> int:
    """A port p such that p .. p+count-1 are free on 127.0.0.1, below the
    kernel's ephemeral range, so no outgoing connection takes one meanwhile."""
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(200):
        first = random.randrange(10000, low - count)
        held = []
        try:
            for port in range(first, first + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free ports on 127.0.0.1")


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def accepts_unix(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            return True
    except OSError:
        return False


def accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def tree_rss_kib(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (or another /proc status field in kB, such as VmHWM, the peak)
    of a process and all its descendants, in KiB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    return total


def compile_c(source: str, output: Path, *libraries: str) -> Path:
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(output), str(BENCH / source), *libraries],
                   check=True)
    return output


class Servers:
    """nginx with the bench server, and every receiver behind it."""

    def __init__(self, prefix: Path, hookguard: Path, workers: int | None):
        self.prefix = prefix
        self.hookguard_bin = hookguard
        self.workers = workers
        self.port = free_port_run(3)  # sample site, bench server, webhook
        self.bench_port = self.port + 1
        self.webhook_port = self.port + 2
        self.procs: dict[str, subprocess.Popen] = {}
        self.bin = prefix / "bin"
        self.run_dir = prefix / "run"
        self.reader_count = prefix / "reader.count"
        self.webhook_count = prefix / "webhook.count"

    # -- layout

    def render(self) -> None:
        subprocess.run([str(REPO / "scripts/lib/render-nginx"), str(self.prefix), str(self.port),
                        str(BENCH / "nginx-bench.conf")], check=True)
        conf = self.prefix / "conf" / "extra-nginx-bench.conf"
        conf.write_text(conf.read_text().replace("@BENCH@", str(BENCH))
                        .replace("@SECRET@", SECRET).replace("@WEBHOOK_PORT@", str(self.webhook_port)))
        secret = self.prefix / "secrets" / "bench.secret"
        secret.write_text(f"# the benchmark's sender\n{SECRET}\n")
        secret.chmod(0o600)
        for spool in ("php", "floor", "hookguard", "forged"):
            for sub in ("tmp", "new", "cur"):
                (self.prefix / "spool" / spool / sub).mkdir(parents=True, exist_ok=True)
        self.bin.mkdir(exist_ok=True)
        compile_c("floor.c", self.bin / "floor", "-lfcgi", "-lpthread")
        compile_c("socket-reader.c", self.bin / "socket-reader")
        compile_c("counter.c", self.bin / "counter")
        self._render_php()
        self._render_webhook()

    def _render_php(self) -> None:
        d = self.prefix / "php"
        d.mkdir(exist_ok=True)
        user = ""
        if os.getuid() == 0:
            user = "user = root\ngroup = root\n"
        # The pool as Debian's www.conf ships it (pm = dynamic, 5 children), privately.
        (d / "php-fpm.conf").write_text(f"""[global]
pid = {d}/php-fpm.pid
error_log = {d}/error.log
daemonize = no

[bench]
{user}listen = {self.run_dir}/php.sock
listen.mode = 0600
pm = dynamic
pm.max_children = 5
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
""")

    def _render_webhook(self) -> None:
        import json
        hooks = [{
            "id": "bench",
            "execute-command": str(self.bin / "counter"),
            "pass-arguments-to-command": [{"source": "string", "name": str(self.webhook_count)}],
            "command-working-directory": str(self.prefix),
            "trigger-rule-mismatch-http-response-code": 500,
            "trigger-rule": {"match": {
                "type": "payload-hmac-sha256", "secret": SECRET,
                "parameter": {"source": "header", "name": "X-Signature"}}},
        }]
        (self.prefix / "webhook.json").write_text(json.dumps(hooks, indent=2))

    # -- processes

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.prefix / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=self.prefix)
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def _ready(self, name: str, predicate, timeout: float = 15) -> None:
        proc = self.procs[name]
        wait_until(lambda: proc.poll() is not None or predicate(), timeout, f"{name} to start")
        if proc.poll() is not None:
            log = (self.prefix / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode} at start:\n{log}")

    def start(self) -> None:
        run = self.run_dir
        self.start_hookguard(self.workers)
        threads = str(self.hookguard_workers())
        self._start("floor", [str(self.bin / "floor"), str(run / "floor.sock"), threads])
        self._ready("floor", lambda: accepts_unix(run / "floor.sock"))
        self._start("socket-reader", [str(self.bin / "socket-reader"), str(run / "reader.sock"),
                                      str(self.reader_count)])
        self._ready("socket-reader", lambda: accepts_unix(run / "reader.sock"))
        # The floor of socket forwarding: the same hop, plus each body as a line to the same reader.
        self._start("floor-socket", [str(self.bin / "floor"), str(run / "floor-socket.sock"), threads,
                                     str(run / "reader.sock")])
        self._ready("floor-socket", lambda: accepts_unix(run / "floor-socket.sock"))
        # The floor of the durable spool: the same hop, plus each body made a durable file as hookguard does.
        self._start("floor-spool", [str(self.bin / "floor"), str(run / "floor-spool.sock"), threads,
                                    f"spool:{self.prefix / 'spool' / 'floor'}"])
        self._ready("floor-spool", lambda: accepts_unix(run / "floor-spool.sock"))
        fpm = sorted(glob.glob("/usr/sbin/php-fpm*"))[-1]
        argv = [fpm, "-F", "-y", str(self.prefix / "php" / "php-fpm.conf"), "-p", str(self.prefix / "php")]
        if os.getuid() == 0:
            argv.append("-R")
        self._start("php-fpm", argv)
        self._ready("php-fpm", lambda: accepts_unix(run / "php.sock"))
        self._start("webhook", ["webhook", "-hooks", str(self.prefix / "webhook.json"),
                                "-ip", "127.0.0.1", "-port", str(self.webhook_port)])
        self._ready("webhook", lambda: accepts_tcp(self.webhook_port))
        self._start("nginx", [NGINX, "-p", str(self.prefix), "-c", str(self.prefix / "conf/nginx.conf"),
                              "-e", str(self.prefix / "error.log")])
        self._ready("nginx", lambda: accepts_tcp(self.bench_port))

    def start_hookguard(self, workers: int | None) -> None:
        argv = [str(self.hookguard_bin), "serve", "--listen", f"unix:{self.run_dir}/hookguard.sock"]
        if workers:
            argv += ["--workers", str(workers)]
        self._start("hookguard", argv)
        self._ready("hookguard", lambda: accepts_unix(self.run_dir / "hookguard.sock"))

    def hookguard_workers(self) -> int:
        """The worker count hookguard reported at start (its default unless --workers)."""
        found = []

        def said():
            log = (self.prefix / "hookguard.log").read_text(errors="replace")
            found[:] = [line for line in log.splitlines() if "serving" in line and "workers=" in line]
            return bool(found)

        wait_until(said, 15, "hookguard's serving line")
        return int(found[-1].split("workers=")[1].split()[0])

    def stop_one(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT if name in ("nginx", "php-fpm") else signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        for name in ["nginx", *[n for n in list(self.procs) if n != "nginx"]]:
            self.stop_one(name)

    def rss_kib(self, server: str, field: str = "VmRSS") -> int:
        proc = self.procs.get(server)
        return tree_rss_kib(proc.pid, field) if proc and proc.poll() is None else 0

    def reader_lines(self) -> int:
        """Lines the socket reader has received so far."""
        proc = self.procs["socket-reader"]
        self.reader_count.unlink(missing_ok=True)
        proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: self.reader_count.exists() and self.reader_count.read_text().endswith("\n"),
                   5, "the socket reader's count")
        return int(self.reader_count.read_text())

    def webhook_commands(self) -> int:
        try:
            return self.webhook_count.stat().st_size
        except FileNotFoundError:
            return 0

    def spool_entries(self, name: str) -> int:
        with os.scandir(self.prefix / "spool" / name / "new") as entries:
            return sum(1 for _ in entries)
