"""Spool faults (issue 13): a full filesystem, a read-only one and a spool
hookguard's user may not write, for `serve` and for plain CGI; `tmp/`
leftovers; and what holds `drain` back (a command's setsid child keeping
fd 3, a delivery drain may not read).

Each faulty request is answered 503 with Retry-After and a log line within
its bound, leaves nothing in tmp/ and no partial entry in new/; once the
fault ends the spool is used again; a location on a healthy spool of the
same process keeps answering in under 1 s throughout. hookguard runs as
`nobody` (started as root with --user), so permissions mean what they say.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fcgi_client
import signing
from drain_support import Recorder, deliver_into, listing, make_spool, run_drain, wait_gone
from harness import HOOKGUARD_BIN, check_binary, start_hookguard, stop, tail, wait_hookguard_ready, wait_until

SECRET = "fault-secret-3c1e"
FAULT_BOUND = 2.0  # seconds: a spool write has no timeout of its own; a failing one fails at once
CGI_BOUND = 4.0  # the same, plus starting a process (sanitizer builds start slowly)
HEALTHY_BOUND = 1.0
NOBODY = pwd.getpwnam("nobody")
STALE = 37 * 3600  # beyond the 36 hours after which tmp/ leftovers are removed


def mount_tmpfs(where: Path, size: str) -> None:
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0750,uid={NOBODY.pw_uid},gid={NOBODY.pw_gid}",
                        "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); the spool fault tests need one")


def require_nobody_can_run_hookguard() -> None:
    """Skips unless `nobody` may execute the binary (its directories must be searchable)."""
    try:
        r = subprocess.run([str(HOOKGUARD_BIN), "--help"], capture_output=True, timeout=30,
                           user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[])
    except PermissionError as error:
        pytest.skip(f"nobody cannot run {HOOKGUARD_BIN}: {error}")
    if r.returncode != 0:
        pytest.skip(f"nobody cannot run {HOOKGUARD_BIN}: exit {r.returncode}")


class World:
    def __init__(self, base: Path):
        self.base = base
        self.fault = base / "fault"  # a 64 KiB tmpfs: the spool that fails
        self.healthy = base / "healthy"  # another tmpfs: the spool that must keep working
        self.log = base / "hookguard.log"

    def spool(self, which: Path) -> Path:
        return which / "spool"

    def params(self, which: Path, body: bytes) -> dict[str, str]:
        return {
            "REQUEST_METHOD": "POST", "REQUEST_URI": f"/{which.name}", "CONTENT_LENGTH": str(len(body)),
            "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": SECRET,
            "HOOKGUARD_SPOOL": str(self.spool(which)),
            "HTTP_X_SIGNATURE": signing.signature("x-signature", SECRET, body),
        }

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_spool_clean(self, which: Path, accepted: set[str]) -> None:
        """Nothing in tmp/; new/ holds exactly the accepted deliveries, each whole."""
        spool = self.spool(which)
        assert listing(spool, "tmp") == [], f"debris in tmp/: {listing(spool, 'tmp')}"
        names = listing(spool, "new")
        assert {n.removesuffix(".json") for n in names} == accepted, names
        for name in names:
            assert json.loads((spool / "new" / name).read_bytes())["id"] == name.removesuffix(".json")


@pytest.fixture
def world():
    check_binary()
    base = Path(tempfile.mkdtemp(prefix="hg-spool-faults-"))  # under /tmp: reachable by nobody
    os.chmod(base, 0o755)
    w = World(base)
    mounted = []
    try:
        for where, size in ((w.fault, "64k"), (w.healthy, "4m")):
            where.mkdir()
            mount_tmpfs(where, size)
            mounted.append(where)
        yield w
    finally:
        for where in mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)
        shutil.rmtree(base, ignore_errors=True)


def fill(where: Path) -> Path:
    """Fills the filesystem at `where` (as root) until it has no block left."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(256):  # 256 × 4 KiB is far more than 64 KiB
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


# The three faults: how to cause each, how to end it, and what the log names.
def full_start(w: World):
    return fill(w.fault)


def full_end(w: World, filler):
    filler.unlink()


def readonly_start(w: World):
    subprocess.run(["mount", "-o", "remount,ro", str(w.fault)], check=True)


def readonly_end(w: World, _):
    subprocess.run(["mount", "-o", "remount,rw", str(w.fault)], check=True)


def permissions_start(w: World):
    tmp = w.spool(w.fault) / "tmp"
    os.chown(tmp, 0, 0)
    os.chmod(tmp, 0o755)


def permissions_end(w: World, _):
    os.chown(w.spool(w.fault) / "tmp", NOBODY.pw_uid, NOBODY.pw_gid)


FAULTS = {
    "full": (full_start, full_end, "No space left on device"),
    "read-only": (readonly_start, readonly_end, "Read-only file system"),
    "permissions": (permissions_start, permissions_end, "Permission denied"),
}


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def prepare_fault_spool(w: World) -> None:
    """The fault spool as hookguard's user would have made it, with a stale
    and a fresh leftover in tmp/."""
    spool = w.spool(w.fault)
    for sub in ("", "tmp", "new", "cur"):
        (spool / sub).mkdir(exist_ok=True)
        os.chown(spool / sub, NOBODY.pw_uid, NOBODY.pw_gid)
        os.chmod(spool / sub, 0o750)
    for name, age in (("stale.json", STALE), ("fresh.json", 0)):
        path = spool / "tmp" / name
        path.write_text("{}\n")
        then = time.time() - age
        os.utime(path, (then, then))


@pytest.fixture
def served(world):
    """hookguard serve as nobody, 4 workers, on a Unix socket."""
    sock = world.base / "hg.sock"
    proc = start_hookguard(sock, world.log, world.base, workers=4, extra_args=["--user", "nobody"])
    try:
        wait_hookguard_ready(proc, sock, world.log)
        yield world, sock
    finally:
        code = stop(proc, signal.SIGTERM, 15)
        assert code == 0, f"hookguard did not stop cleanly ({code})\n{tail(world.log)}"


def test_serve_answers_each_spool_fault_503_in_bound_while_a_healthy_spool_answers(served):
    w, sock = served
    prepare_fault_spool(w)

    def post(which: Path, body: bytes):
        return timed(lambda: fcgi_client.request(str(sock), w.params(which, body), body, timeout=10))

    # The first store into the spool sweeps tmp/: the stale leftover goes, the fresh one stays.
    (r, _) = post(w.fault, b'{"first":true}')
    assert r.status == 200, (r, tail(w.log))
    accepted = {json.loads(r.body)["id"]}
    assert listing(w.spool(w.fault), "tmp") == ["fresh.json"]
    assert "removed stale files from the spool's tmp/" in w.log_text() and "stale.json" in w.log_text()
    (w.spool(w.fault) / "tmp" / "fresh.json").unlink()

    body = b'{"fill":"' + b"f" * 8000 + b'"}'
    for name, (start, end, words) in FAULTS.items():
        logged_before = w.log_text().count("reason=spool-unwritable")
        state = start(w)
        probes: list[tuple[int, float]] = []
        stop_probing = threading.Event()

        def probe():
            for _ in range(200):  # bounded: 200 probes or the end of the fault phase
                if stop_probing.is_set():
                    return
                r, took = post(w.healthy, b'{"probe":true}')
                probes.append((r.status, took))
                time.sleep(0.02)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(max_workers=3) as pool:
                answers = list(pool.map(lambda _: post(w.fault, body), range(12)))
            wait_until(lambda: len(probes) >= 10, 5)  # still during the fault
        finally:
            stop_probing.set()
            prober.join(30)
        for r, took in answers:
            assert r.status == 503, f"{name}: {r.status} {r.body!r}"
            assert r.headers.get("retry-after"), f"{name}: 503 without Retry-After"
            assert took < FAULT_BOUND, f"{name}: answered after {took:.2f}s"
        assert probes and all(status == 200 for status, _ in probes), f"{name}: healthy spool {probes}"
        slowest = max(took for _, took in probes)
        print(f"serve {name}: 503 in at most {max(t for _, t in answers) * 1000:.0f} ms; "
              f"healthy spool {len(probes)} probes, slowest {slowest * 1000:.0f} ms")
        assert slowest < HEALTHY_BOUND, f"{name}: the healthy spool took {slowest:.2f}s"
        text = w.log_text()
        assert text.count("reason=spool-unwritable") - logged_before >= 12, f"{name}:\n{tail(w.log)}"
        assert words in text, f"{name}: the log does not say {words!r}\n{tail(w.log)}"

        end(w, state)
        w.check_spool_clean(w.fault, accepted)
        (r, took) = post(w.fault, body)
        assert r.status == 200, f"{name}: not used again after the fault: {r.status} {r.body!r}\n{tail(w.log)}"
        accepted.add(json.loads(r.body)["id"])
        w.check_spool_clean(w.fault, accepted)


def cgi_environ(w: World, body: bytes) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_SOFTWARE": "Apache/2.4",
        "SCRIPT_NAME": "/fault", "QUERY_STRING": "", "CONTENT_TYPE": "application/json",
        **w.params(w.fault, body),
    }


def run_cgi(w: World, body: bytes) -> tuple[int, bytes, float]:
    def call():
        with open(w.log, "ab") as log:
            return subprocess.run([str(HOOKGUARD_BIN)], env=cgi_environ(w, body), input=body,
                                  stdout=subprocess.PIPE, stderr=log, timeout=30,
                                  user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[])
    r, took = timed(call)
    head = r.stdout.partition(b"\r\n\r\n")[0].decode("latin-1")
    status = int(head.split("\r\n")[0].removeprefix("Status: ").split()[0])
    return status, r.stdout, took


def test_plain_cgi_answers_each_spool_fault_503_in_bound_and_recovers(world):
    require_nobody_can_run_hookguard()
    w = world
    prepare_fault_spool(w)
    status, out, _ = run_cgi(w, b'{"first":true}')
    assert status == 200, out
    accepted = {json.loads(out.partition(b"\r\n\r\n")[2])["id"]}
    # A CGI process stores once: its first store sweeps tmp/ too.
    assert listing(w.spool(w.fault), "tmp") == ["fresh.json"], tail(w.log)
    (w.spool(w.fault) / "tmp" / "fresh.json").unlink()

    body = b'{"fill":"' + b"c" * 8000 + b'"}'
    for name, (start, end, words) in FAULTS.items():
        state = start(w)
        for _ in range(2):
            status, out, took = run_cgi(w, body)
            assert status == 503, f"{name}: {out!r}"
            assert b"Retry-After:" in out, out
            assert took < CGI_BOUND, f"{name}: answered after {took:.2f}s"
            print(f"cgi {name}: 503 in {took * 1000:.0f} ms")
        assert words in w.log_text(), f"{name}:\n{tail(w.log)}"
        end(w, state)
        w.check_spool_clean(w.fault, accepted)
        status, out, _ = run_cgi(w, body)
        assert status == 200, f"{name}: not used again after the fault: {out!r}\n{tail(w.log)}"
        accepted.add(json.loads(out.partition(b"\r\n\r\n")[2])["id"])
        w.check_spool_clean(w.fault, accepted)


# --------------------------------------------------------------------------
# drain


@pytest.fixture
def drain_work():
    """A spool and a recorder in a directory nobody may use."""
    check_binary()
    base = Path(tempfile.mkdtemp(prefix="hg-drain-faults-"))
    os.chmod(base, 0o755)
    spool = make_spool(base / "spool")
    rec = Recorder(base / "rec")
    for root, dirs, files in os.walk(base):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, NOBODY.pw_uid, NOBODY.pw_gid)
    leftovers: list[int] = []
    yield base, spool, rec, leftovers
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(base, ignore_errors=True)


# A command that starts a setsid child keeping fd 3 (and so the delivery's
# lock) for 30 s, writes the child's pid down, and fails.
LEAVES_A_CHILD = r"""#!/bin/sh
setsid sh -c 'echo $$ > "$0/leftover.$1"; exec sleep 30' "$REC_DIR" "$HOOKGUARD_ATTEMPT" </dev/null >/dev/null 2>&1 &
while [ ! -s "$REC_DIR/leftover.$HOOKGUARD_ATTEMPT" ]; do sleep 0.01; done
echo "attempt $HOOKGUARD_ATTEMPT" >> "$REC_DIR/attempts.log"
exit 3
"""


def test_a_setsid_child_holding_fd_3_does_not_hold_the_retries_back(env, drain_work):
    base, spool, rec, leftovers = drain_work
    script = base / "leaves-a-child.sh"
    script.write_text(LEAVES_A_CHILD)
    script.chmod(0o755)
    [delivery_id] = deliver_into(env, spool, [b'{"leaves":"a child"}'])
    started = time.monotonic()
    r = run_drain(spool, [str(script)], "--backoff", "200ms", "--max-attempts", "3",
                  env=dict(os.environ, REC_DIR=str(rec.dir)), timeout=20)
    took = time.monotonic() - started
    leftovers.extend(int((rec.dir / f"leftover.{n}").read_text()) for n in (1, 2, 3)
                     if (rec.dir / f"leftover.{n}").exists())
    err = r.stderr.decode()
    assert (rec.dir / "attempts.log").read_text().split("\n")[:3] == ["attempt 1", "attempt 2", "attempt 3"], err
    assert took < 10, f"three attempts 200ms apart took {took:.1f}s: the leftover held them back\n{err}"
    assert "left processes holding the delivery" in err and str(leftovers[0]) in err, err
    assert listing(spool, "failed") == [f"{delivery_id}.attempts", f"{delivery_id}.json"], err
    assert r.returncode == 0, err


def test_drain_exits_nonzero_on_a_delivery_it_cannot_read_and_follow_retries_it(env, drain_work):
    require_nobody_can_run_hookguard()
    base, spool, rec, _ = drain_work
    ids = deliver_into(env, spool, [b'{"readable":false}', b'{"readable":true}'])
    unreadable = spool / "new" / f"{ids[0]}.json"
    os.chown(spool / "new" / f"{ids[1]}.json", NOBODY.pw_uid, NOBODY.pw_gid)
    os.chown(unreadable, 0, 0)
    os.chmod(unreadable, 0o600)
    as_nobody = dict(user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[])
    environ = rec.environ()
    # A stale leftover in tmp/ goes when drain starts; a fresh one stays.
    for name, age in (("stale.json", STALE), ("fresh.json", 0)):
        path = spool / "tmp" / name
        path.write_text("{}\n")
        os.utime(path, (time.time() - age, time.time() - age))

    r = subprocess.run([str(HOOKGUARD_BIN), "drain", str(spool), "--", str(rec.script)], env=environ,
                       capture_output=True, timeout=20, stdin=subprocess.DEVNULL, **as_nobody)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "cannot read delivery" in err and ids[0] in err and "left deliveries it could not read" in err, err
    assert [run.id for run in rec.runs()] == [ids[1]]
    assert listing(spool, "new") == [unreadable.name]
    assert listing(spool, "tmp") == ["fresh.json"] and "stale.json" in err, err

    log = base / "follow.log"
    with open(log, "wb") as out:
        follow = subprocess.Popen([str(HOOKGUARD_BIN), "drain", str(spool), "--follow", "--rescan-interval", "300ms",
                                   "--", str(rec.script)], env=environ, stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=out, **as_nobody)
    try:
        assert wait_until(lambda: "cannot read delivery" in log.read_text(), 15), log.read_text()
        os.chmod(unreadable, 0o644)
        assert wait_until(lambda: ids[0] in [run.id for run in rec.runs() if run.end], 10), log.read_text()
        assert wait_until(lambda: listing(spool, "new") == [] and listing(spool, "cur") == [], 5), log.read_text()
        assert log.read_text().count("cannot read delivery") == 1, "logged at every rescan"
    finally:
        assert stop(follow, signal.SIGTERM, 15) == 0, log.read_text()


def test_follow_names_what_holds_a_delivery_back_then_runs_it(env, drain_work):
    base, spool, rec, _ = drain_work
    [delivery_id] = deliver_into(env, spool, [b'{"held":"by the test"}'])
    holder = os.open(spool / "new" / f"{delivery_id}.json", os.O_RDONLY)
    log = base / "held.log"
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with open(log, "wb") as out:
            follow = subprocess.Popen([str(HOOKGUARD_BIN), "drain", str(spool), "--follow", "--rescan-interval",
                                       "300ms", "--", str(rec.script)], env=rec.environ(),
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            assert wait_until(lambda: "delivery held by another process" in log.read_text(), 10), log.read_text()
            line = next(l for l in log.read_text().splitlines() if "delivery held by another process" in l)
            assert f"holders={os.getpid()}" in line and delivery_id in line, line
            assert rec.runs() == []
            os.close(holder)
            holder = -1
            assert wait_until(lambda: [run.id for run in rec.runs() if run.end] == [delivery_id], 10), log.read_text()
        finally:
            assert stop(follow, signal.SIGTERM, 15) == 0, log.read_text()
    finally:
        if holder >= 0:
            os.close(holder)
