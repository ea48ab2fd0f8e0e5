"""Machinery for the `hookguard drain` tests (test_drain.py): real deliveries
moved into a private spool, a recording command, and drain processes.

Deliveries are real: POSTed through the private nginx to hookguard (the
/t/drain location of nginx-extra.conf, or a scheme's sample location), then
renamed from that location's new/ into the test's own spool, byte for byte as
hookguard wrote them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import signing
from checks import accepted_id
from harness import HOOKGUARD_BIN, stop, tail, wait_until

DRAIN_LOCATION = "/t/drain"
DRAIN_SPOOL = "drain"  # env.spool(DRAIN_SPOOL) is where /t/drain writes

# The command the tests run for each delivery. It records every run in
# runs.log (one short O_APPEND write per line): "start ID ATTEMPT TIME PID PPID"
# and "end ID ATTEMPT STATUS TIME". A run holds the directory running/ID while
# it works; mkdir fails if another run of the same delivery holds it, and the
# run then records "overlap ID", the one thing that must never appear.
# It saves its body (bodies/ID.ATTEMPT) and environment (env/ID.ATTEMPT).
# Behaviour, from the environment: REC_SLEEP seconds of work; REC_FAIL_UNTIL:
# attempts below it exit 3; REC_FAIL_ALWAYS: every attempt exits 7 after a
# line on stderr.
RECORDER = r"""#!/bin/sh
dir=$REC_DIR
id=$HOOKGUARD_ID
now() { date +%s.%N; }
if ! mkdir "$dir/running/$id" 2>/dev/null; then echo "overlap $id $$" >> "$dir/runs.log"; fi
echo "start $id $HOOKGUARD_ATTEMPT $(now) $$ $PPID" >> "$dir/runs.log"
cat > "$dir/bodies/$id.$HOOKGUARD_ATTEMPT"
env | grep '^HOOKGUARD_' | sort > "$dir/env/$id.$HOOKGUARD_ATTEMPT"
[ -n "$REC_SLEEP" ] && sleep "$REC_SLEEP"
status=0
if [ -n "$REC_FAIL_UNTIL" ] && [ "$HOOKGUARD_ATTEMPT" -lt "$REC_FAIL_UNTIL" ]; then status=3; fi
if [ -n "$REC_FAIL_ALWAYS" ]; then echo "cannot reach the CRM for $id (attempt $HOOKGUARD_ATTEMPT)" >&2; status=7; fi
rmdir "$dir/running/$id"
echo "end $id $HOOKGUARD_ATTEMPT $status $(now)" >> "$dir/runs.log"
exit $status
"""


@dataclass
class Run:
    id: str
    attempt: int
    start: float
    pid: int
    drain_pid: int
    end: float | None = None
    status: int | None = None


@dataclass
class Recorder:
    """The recording command and what it recorded."""

    dir: Path
    script: Path = field(init=False)

    def __post_init__(self):
        for sub in ("running", "bodies", "env"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.script = self.dir / "record.sh"
        self.script.write_text(RECORDER)
        self.script.chmod(0o755)
        (self.dir / "runs.log").touch()

    def environ(self, **behaviour) -> dict[str, str]:
        env = dict(os.environ, REC_DIR=str(self.dir))
        for key, value in behaviour.items():
            env[f"REC_{key.upper()}"] = str(value)
        return env

    def lines(self) -> list[list[str]]:
        return [line.split() for line in (self.dir / "runs.log").read_text().splitlines() if line]

    def overlaps(self) -> list[str]:
        return [" ".join(parts) for parts in self.lines() if parts[0] == "overlap"]

    def runs(self) -> list[Run]:
        """Every run in start order, with its end when it ended."""
        runs: list[Run] = []
        open_runs: dict[tuple[str, int], Run] = {}
        for parts in self.lines():
            if parts[0] == "start":
                run = Run(parts[1], int(parts[2]), float(parts[3]), int(parts[4]), int(parts[5]))
                runs.append(run)
                open_runs[(run.id, run.attempt)] = run
            elif parts[0] == "end":
                run = open_runs.pop((parts[1], int(parts[2])), None)
                if run is not None:
                    run.status, run.end = int(parts[3]), float(parts[4])
        return runs

    def ends(self) -> int:
        return sum(1 for parts in self.lines() if parts[0] == "end")

    def body(self, delivery_id: str, attempt: int = 1) -> bytes:
        return (self.dir / "bodies" / f"{delivery_id}.{attempt}").read_bytes()

    def environment(self, delivery_id: str, attempt: int = 1) -> dict[str, str]:
        text = (self.dir / "env" / f"{delivery_id}.{attempt}").read_text()
        return dict(line.split("=", 1) for line in text.splitlines())


# --------------------------------------------------------------------------
# deliveries


def make_spool(path: Path) -> Path:
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def move_delivery(env, source_spool: str, delivery_id: str, target: Path) -> None:
    name = f"{delivery_id}.json"
    os.rename(env.spool(source_spool) / "new" / name, target / "new" / name)


def deliver_into(env, target: Path, bodies: list[bytes], workers: int = 8) -> list[str]:
    """POSTs each body, signed, to /t/drain and moves the spooled envelopes
    into target's new/. Returns the ids in the order of bodies."""
    def post(body: bytes) -> str:
        r = env.post(DRAIN_LOCATION, body, {"Content-Type": "application/json",
                                            **signing.sign("x-signature", env.literal_secret, body)})
        return accepted_id(env, r)

    if len(bodies) == 1 or workers == 1:
        ids = [post(b) for b in bodies]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ids = list(pool.map(post, bodies))
    for delivery_id in ids:
        move_delivery(env, DRAIN_SPOOL, delivery_id, target)
    return ids


def deliver_scheme_into(env, target: Path, scheme: str, body: bytes, headers: dict) -> str:
    """A genuinely signed delivery to a scheme's sample location, moved into target."""
    delivery_id = accepted_id(env, env.deliver(scheme, body, headers))
    move_delivery(env, scheme, delivery_id, target)
    return delivery_id


def listing(spool: Path, sub: str) -> list[str]:
    try:
        return sorted(os.listdir(spool / sub))
    except FileNotFoundError:
        return []


def record_of(spool: Path, sub: str, delivery_id: str) -> dict:
    return json.loads((spool / sub / f"{delivery_id}.attempts").read_text())


# --------------------------------------------------------------------------
# drain processes


def drain_args(spool: Path, command: list[str], *options: str) -> list[str]:
    return [str(HOOKGUARD_BIN), "drain", str(spool), *options, "--", *command]


def run_drain(spool: Path, command: list[str], *options: str, env: dict | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(drain_args(spool, command, *options), env=env, capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class DrainProcess:
    """A drain in the background, its standard error in a file."""

    def __init__(self, spool: Path, command: list[str], *options: str, env: dict | None = None,
                 log: Path):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(drain_args(spool, command, *options), env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_logged(self, needle: str, timeout: float = 15) -> bool:
        return bool(wait_until(lambda: needle in self.text() or self.proc.poll() is not None, timeout)) \
            and needle in self.text()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, timeout: float = 15) -> int | None:
        return stop(self.proc, signal.SIGTERM, timeout)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def diag(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"\n--- drain {self.pid} ({state}) log tail: {self.log}\n{tail(self.log)}\n"


def process_gone(pid: int) -> bool:
    """True once pid no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 10) -> bool:
    return bool(wait_until(lambda: process_gone(pid), timeout))


def now() -> float:
    return time.time()
