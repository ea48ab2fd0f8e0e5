"""`hookguard drain` and `hookguard spool`: the real binary, on spools filled
with real deliveries posted through the private nginx (drain_support.py)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import signing
from checks import accepted_id
from drain_support import (DRAIN_LOCATION, DRAIN_SPOOL, DrainProcess, Recorder, deliver_into,
                           deliver_scheme_into, listing, make_spool, process_gone, record_of,
                           run_drain, wait_gone)
from harness import HOOKGUARD_BIN, check_binary, wait_until


@pytest.fixture
def work(env):
    """A private spool and a recorder in a fresh directory; drains started
    through `work.start` are stopped at the end."""
    check_binary()
    base = Path(tempfile.mkdtemp(prefix="drain-", dir=env.path))

    class Work:
        path = base
        spool = make_spool(base / "spool")
        rec = Recorder(base / "rec")
        drains: list[DrainProcess] = []

        def start(self, *options, command=None, log="drain.log", **behaviour):
            d = DrainProcess(self.spool, command or [str(self.rec.script)], *options,
                             env=self.rec.environ(**behaviour), log=base / log)
            self.drains.append(d)
            return d

        def run(self, *options, command=None, timeout=60, **behaviour):
            return run_drain(self.spool, command or [str(self.rec.script)], *options,
                             env=self.rec.environ(**behaviour), timeout=timeout)

        def left(self) -> dict[str, list[str]]:
            return {sub: listing(self.spool, sub) for sub in ("new", "cur", "failed")}

    w = Work()
    yield w
    for d in w.drains:
        d.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def out(r: subprocess.CompletedProcess) -> str:
    return f"\nexit {r.returncode}\n--- stderr\n{r.stderr.decode(errors='replace')[-4000:]}"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


EMPTY = {"new": [], "cur": [], "failed": []}


# --------------------------------------------------------------------------
# running commands


def test_each_delivery_runs_once_oldest_first_with_its_metadata(env, work):
    sent = []
    for i in range(5):
        body = json.dumps({"ticket": i, "name": "Zoë"}, ensure_ascii=False).encode()
        event = f"ticket.completed.{i}"
        delivery_id = deliver_scheme_into(env, work.spool, "tito", body, {"X-Webhook-Name": event})
        sent.append((delivery_id, body, event))
    envelopes = {i: sha(work.spool / "new" / f"{i}.json") for i, _, _ in sent}

    r = work.run("--log-level", "debug")
    assert r.returncode == 0, out(r)
    runs = work.rec.runs()
    assert [run.id for run in runs] == sorted(i for i, _, _ in sent), "not oldest first" + out(r)
    assert all(run.status == 0 and run.attempt == 1 for run in runs)
    for delivery_id, body, event in sent:
        assert work.rec.body(delivery_id) == body
        e = work.rec.environment(delivery_id)
        e.pop("HOOKGUARD_BIN", None)  # drain's own environment passes through
        envelope = work.spool / "cur" / f"{delivery_id}.json"
        assert e == {"HOOKGUARD_ID": delivery_id, "HOOKGUARD_EVENT": event, "HOOKGUARD_SCHEME": "tito",
                     "HOOKGUARD_DELIVERY_ID": "", "HOOKGUARD_ENVELOPE": str(envelope),
                     "HOOKGUARD_ATTEMPT": "1"}, e
    assert work.left() == EMPTY
    log = r.stderr.decode()
    assert log.count(" msg=delivered ") == 5 and "delivered=5" in log, out(r)
    assert len(set(envelopes.values())) == 5


def test_the_command_can_read_its_envelope_file(env, work):
    delivery_id = deliver_scheme_into(env, work.spool, "github", b'{"zen":"Design for failure."}',
                                      {"X-GitHub-Event": "ping"})
    original = (work.spool / "new" / f"{delivery_id}.json").read_bytes()
    copy = work.path / "copy.json"
    r = work.run(command=["sh", "-c", f'cp "$HOOKGUARD_ENVELOPE" {copy}'])
    assert r.returncode == 0, out(r)
    assert copy.read_bytes() == original
    assert json.loads(original)["event"] == "ping"


def test_bodies_reach_the_command_byte_exact(env, work):
    bodies = [
        b"",
        b'{"plain": "json"}',
        bytes(range(0x20)) + b'"\\/\x7f' + "é€𝄞 \u2028\u2029 \ufeff".encode(),
        b"\xff\xfe\x00binary, not UTF-8 \xc0\x80",
        os.urandom(3 * 1024 * 1024),
        ("line\n" * 200_000).encode(),
    ]
    ids = deliver_into(env, work.spool, bodies)
    r = work.run("--concurrency", "3")
    assert r.returncode == 0, out(r)
    for delivery_id, body in zip(ids, bodies):
        got = work.rec.body(delivery_id)
        assert got == body, f"{delivery_id}: {len(got)} bytes reached the command, {len(body)} were sent"
    assert work.left() == EMPTY


def test_a_command_that_ignores_its_input_does_not_hurt_drain(env, work):
    ids = deliver_into(env, work.spool, [os.urandom(4 * 1024 * 1024), b"small"])
    r = work.run(command=["true"])
    assert r.returncode == 0, out(r)
    assert r.stderr.decode().count(" msg=delivered ") == len(ids), out(r)
    assert work.left() == EMPTY


# --------------------------------------------------------------------------
# failures, retries, failed/


def test_fail_then_succeed_retries_with_backoff(env, work):
    ids = deliver_into(env, work.spool, [b'{"n": 1}', b'{"n": 2}'])
    r = work.run("--backoff", "200ms", fail_until=3)
    assert r.returncode == 0, out(r)
    for delivery_id in ids:
        runs = [run for run in work.rec.runs() if run.id == delivery_id]
        assert [(run.attempt, run.status) for run in runs] == [(1, 3), (2, 3), (3, 0)], runs
        # 200ms after the first failure, 400ms after the second.
        assert runs[1].start - runs[0].end >= 0.19, runs
        assert runs[2].start - runs[1].end >= 0.39, runs
        assert work.rec.body(delivery_id, 3) == work.rec.body(delivery_id, 1)
    assert work.left() == EMPTY, "a record or envelope was left behind"
    assert r.stderr.decode().count("attempt failed; will retry") == 4, out(r)


def test_always_failing_moves_to_failed_with_status_and_stderr(env, work):
    ids = deliver_into(env, work.spool, [b'{"crm": "down"}', b"\xffbinary"])
    before = {i: sha(work.spool / "new" / f"{i}.json") for i in ids}
    r = work.run("--max-attempts", "3", "--backoff", "10ms", fail_always=1)
    assert r.returncode == 0, out(r)
    assert work.left()["new"] == [] and work.left()["cur"] == []
    for delivery_id in ids:
        assert sha(work.spool / "failed" / f"{delivery_id}.json") == before[delivery_id], \
            "the envelope changed on its way to failed/"
        record = record_of(work.spool, "failed", delivery_id)
        assert record["attempts"] == 3 and record["exit_status"] == 7, record
        assert record["outcome"] == "exit status 7" and record["timed_out"] is False, record
        assert f"cannot reach the CRM for {delivery_id} (attempt 3)" in record["stderr_tail"], record
        assert "next_attempt_at" not in record
        assert len([run for run in work.rec.runs() if run.id == delivery_id]) == 3
    log = r.stderr.decode()
    assert log.count("gave up; moved to failed/") == 2, out(r)
    assert "cannot reach the CRM" in log, "the command's stderr should reach drain's" + out(r)

    counts = json.loads(subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.spool), "--json"],
                                       capture_output=True, check=True).stdout)
    assert counts == {"spool": str(work.spool), "new": 0, "in_progress": 0, "retrying": 0,
                      "failed": 2, "oldest_age_seconds": None}

    # Back for a fresh set of attempts, and this time the command works.
    r = work.run("--retry-failed")
    assert r.returncode == 0, out(r)
    assert work.left() == EMPTY
    assert len(work.rec.runs()) == 8
    assert all(run.attempt == 1 for run in work.rec.runs()[-2:]), "attempts did not start afresh"


def test_retry_failed_without_a_command_only_moves_them_back(env, work):
    ids = deliver_into(env, work.spool, [b"a"])
    assert work.run("--max-attempts", "1", fail_always=1).returncode == 0
    r = subprocess.run([str(HOOKGUARD_BIN), "drain", str(work.spool), "--retry-failed"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, out(r)
    assert work.left() == {"new": [f"{ids[0]}.json"], "cur": [], "failed": []}
    assert "deliveries=1" in r.stderr.decode(), out(r)


def test_attempt_count_and_backoff_survive_a_restart(env, work):
    [delivery_id] = deliver_into(env, work.spool, [b'{"restart": true}'])
    d = work.start("--max-attempts", "2", "--backoff", "1s", fail_always=1)
    record = work.spool / "cur" / f"{delivery_id}.attempts"
    assert wait_until(record.exists, 15), "no attempt record after the first failure" + d.diag()
    assert d.terminate() == 0, "drain waiting for a retry did not exit 0 on SIGTERM" + d.diag()
    first = record_of(work.spool, "cur", delivery_id)
    assert first["attempts"] == 1 and first["exit_status"] == 7, first
    assert work.left()["cur"] == [f"{delivery_id}.attempts", f"{delivery_id}.json"]

    r = work.run("--max-attempts", "2", "--backoff", "1s", fail_always=1)
    assert r.returncode == 0, out(r)
    runs = work.rec.runs()
    assert [run.attempt for run in runs] == [1, 2], runs
    assert runs[1].start - runs[0].end >= 0.95, "the restarted drain did not wait out the backoff"
    assert record_of(work.spool, "failed", delivery_id)["attempts"] == 2


def test_a_hanging_command_is_killed_at_the_timeout(env, work):
    [delivery_id] = deliver_into(env, work.spool, [b'{"hang": true}'])
    pids = work.path / "pids"
    script = f'echo $$ >> {pids}; sleep 60 & echo $! >> {pids}; wait'
    started = time.monotonic()
    r = work.run("--timeout", "300ms", "--max-attempts", "1", command=["sh", "-c", script])
    elapsed = time.monotonic() - started
    assert r.returncode == 0, out(r)
    assert elapsed < 10, f"drain took {elapsed:.1f}s for a 300ms timeout"
    record = record_of(work.spool, "failed", delivery_id)
    assert record["timed_out"] is True and record["outcome"] == "timed out after 300ms", record
    for pid in map(int, pids.read_text().split()):
        assert wait_gone(pid, 5), f"process {pid} of the timed-out command is still running"
    assert "command timed out" in r.stderr.decode(), out(r)


def test_an_unreadable_envelope_goes_to_failed_without_running(env, work):
    bad = "01a20426-3ace-7000-be8f-3d7232b50bcc"
    (work.spool / "new" / f"{bad}.json").write_text('{"id": "truncated", "sche')
    r = work.run()
    assert r.returncode == 0, out(r)
    assert work.rec.runs() == []
    record = record_of(work.spool, "failed", bad)
    assert record["outcome"].startswith("envelope unreadable: not a hookguard envelope"), record
    assert "gave up; moved to failed/" in r.stderr.decode(), out(r)


def test_drain_refuses_a_command_it_cannot_run(work):
    for command, message in [(["/no/such/handler"], "cannot run \"/no/such/handler\""),
                             (["no-such-handler-anywhere"], "on PATH"), ([], "after --")]:
        args = [str(HOOKGUARD_BIN), "drain", str(work.spool)] + (["--", *command] if command else [])
        r = subprocess.run(args, capture_output=True, timeout=30)
        assert r.returncode == 64, out(r)
        assert message in r.stderr.decode(), out(r)


# --------------------------------------------------------------------------
# stopping, crashing, two at once


def test_sigterm_lets_the_running_command_finish_and_claims_no_more(env, work):
    ids = sorted(deliver_into(env, work.spool, [b"1", b"2", b"3"]))
    d = work.start(sleep=1)
    assert wait_until(lambda: work.rec.runs(), 15), d.diag()
    assert d.terminate() == 0, d.diag()
    runs = work.rec.runs()
    assert [(run.id, run.status) for run in runs] == [(ids[0], 0)], runs
    assert work.left() == {"new": [f"{i}.json" for i in ids[1:]], "cur": [], "failed": []}


def test_after_the_grace_period_the_command_is_stopped_and_the_delivery_kept(env, work):
    [delivery_id] = deliver_into(env, work.spool, [b'{"slow": true}'])
    d = work.start("--grace", "300ms", sleep=60)
    assert wait_until(lambda: work.rec.runs(), 15), d.diag()
    command_pid = work.rec.runs()[0].pid
    started = time.monotonic()
    assert d.terminate() == 0, d.diag()
    assert time.monotonic() - started < 5, "drain did not stop its command after the grace period"
    assert wait_gone(command_pid, 5)
    assert work.left() == {"new": [], "cur": [f"{delivery_id}.json"], "failed": []}, \
        "an interrupted attempt must not count: no record"
    assert "stopped by shutdown" in d.text(), d.diag()

    # The next drain takes it over, as a first attempt.
    shutil.rmtree(work.rec.dir / "running" / delivery_id, ignore_errors=True)
    r = work.run()
    assert r.returncode == 0, out(r)
    assert [(run.attempt, run.status) for run in work.rec.runs()[1:]] == [(1, 0)]
    assert work.left() == EMPTY


def test_kill_9_during_200_deliveries_loses_none(env, work):
    bodies = [json.dumps({"n": i}).encode() for i in range(200)]
    ids = deliver_into(env, work.spool, bodies)
    d = work.start("--concurrency", "4", sleep=0.02)
    assert wait_until(lambda: work.rec.ends() >= 40, 30), d.diag()
    d.kill9()
    killed_at = time.time()
    # Its commands run on (they hold their deliveries' locks); a new drain starts at once.
    r = work.run("--concurrency", "4", sleep=0.02, timeout=120)
    assert r.returncode == 0, out(r)

    assert work.rec.overlaps() == [], "a delivery ran twice at the same time"
    runs = work.rec.runs()
    completed = {run.id for run in runs if run.status == 0}
    assert completed == set(ids), f"{len(set(ids) - completed)} deliveries never completed"
    assert work.left() == EMPTY, "deliveries left behind"
    for delivery_id, body in zip(ids, bodies):
        assert work.rec.body(delivery_id) == body
    first_drain = [run for run in runs if run.drain_pid == d.pid]
    assert 40 <= len(first_drain) < 200, "the kill did not land mid-run"
    assert any(run.start > killed_at for run in runs), "the restarted drain ran nothing"


def test_a_command_that_outlives_a_killed_drain_keeps_its_delivery(env, work):
    [delivery_id] = deliver_into(env, work.spool, [b'{"long": true}'])
    d = work.start(sleep=1.5)
    assert wait_until(lambda: work.rec.runs(), 15), d.diag()
    d.kill9()
    r = work.run()
    assert r.returncode == 0, out(r)
    first, second = work.rec.runs()
    assert first.end is not None and second.start >= first.end, \
        f"the second drain started {delivery_id} while the first drain's command still ran"
    assert work.rec.overlaps() == []
    assert work.left() == EMPTY


def test_two_drains_never_run_a_delivery_at_the_same_time(env, work):
    ids = deliver_into(env, work.spool, [json.dumps({"n": i}).encode() for i in range(150)])
    options = ("--concurrency", "3", "--backoff", "20ms")
    a = work.start(*options, log="a.log", sleep=0.005, fail_until=2)
    b = work.start(*options, log="b.log", sleep=0.005, fail_until=2)
    assert a.wait(120) == 0, a.diag()
    assert b.wait(120) == 0, b.diag()

    assert work.rec.overlaps() == [], "a delivery ran in two places at once"
    runs = work.rec.runs()
    per_id: dict[str, list] = {}
    for run in runs:
        per_id.setdefault(run.id, []).append(run)
    assert set(per_id) == set(ids)
    for delivery_id, its_runs in per_id.items():
        assert [r.status for r in its_runs][-1] == 0 and len(its_runs) >= 2, its_runs
        spans = sorted((r.start, r.end) for r in its_runs)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"{delivery_id}: runs overlap in time {spans}"
    by_drain = {run.drain_pid for run in runs}
    assert by_drain == {a.pid, b.pid}, f"only {by_drain} ran anything"
    assert work.left() == EMPTY


# --------------------------------------------------------------------------
# --follow, through nginx


def test_follow_picks_up_a_delivery_posted_through_nginx_within_a_second(env, work):
    spool = env.spool(DRAIN_SPOOL)
    d = DrainProcess(spool, [str(work.rec.script)], "--follow", env=work.rec.environ(),
                     log=work.path / "follow.log")
    work.drains.append(d)
    assert d.wait_logged("draining"), d.diag()
    delays = []
    for i in range(3):
        body = json.dumps({"follow": i}).encode()
        r = env.post(DRAIN_LOCATION, body, {"Content-Type": "application/json",
                                            **signing.sign("x-signature", env.literal_secret, body)})
        answered = time.time()
        delivery_id = accepted_id(env, r)
        assert wait_until(lambda: any(run.id == delivery_id and run.end for run in work.rec.runs()), 5), \
            f"--follow did not run {delivery_id}" + d.diag() + env.diag()
        run = next(run for run in work.rec.runs() if run.id == delivery_id)
        delays.append(run.start - answered)
        assert work.rec.body(delivery_id) == body
        time.sleep(0.1)
    assert max(delays) < 1.0, f"picked up after {delays} s"
    assert wait_until(lambda: listing(spool, "new") == [] and listing(spool, "cur") == [], 5)
    assert d.terminate() == 0, d.diag()
    assert "delivered=3" in d.text(), d.diag()


def test_follow_waits_without_polling(env, work):
    """An idle --follow drain sleeps in poll(): it uses no CPU time."""
    d = work.start("--follow")
    assert d.wait_logged("draining"), d.diag()

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{d.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    before = cpu_ticks()
    time.sleep(1.0)
    assert cpu_ticks() - before <= 1, "an idle --follow drain kept using CPU time"
    ids = deliver_into(env, work.spool, [b"late"])
    assert wait_until(lambda: work.rec.ends() == 1, 5), d.diag()
    assert work.rec.runs()[0].id == ids[0]
    assert d.terminate() == 0, d.diag()


# --------------------------------------------------------------------------
# hookguard spool


def test_spool_counts_what_an_operator_looks_at(env, work):
    ids = deliver_into(env, work.spool, [f"{i}".encode() for i in range(7)], workers=1)
    time.sleep(1.1)  # so the oldest has an age to show
    # 3 waiting, 1 running (its lock held here), 1 waiting for a retry, 2 given up on.
    for delivery_id in ids[:2]:
        os.rename(work.spool / "new" / f"{delivery_id}.json", work.spool / "cur" / f"{delivery_id}.json")
    (work.spool / "failed").mkdir()
    for delivery_id in ids[2:4]:
        os.rename(work.spool / "new" / f"{delivery_id}.json", work.spool / "failed" / f"{delivery_id}.json")
    with open(work.spool / "cur" / f"{ids[0]}.json", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        r = subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.spool), "--json"],
                           capture_output=True, timeout=30)
        human = subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.spool)],
                               capture_output=True, timeout=30, text=True)
    assert r.returncode == 0, out(r)
    counts = json.loads(r.stdout)
    age = counts.pop("oldest_age_seconds")
    assert counts == {"spool": str(work.spool), "new": 3, "in_progress": 1, "retrying": 1, "failed": 2}
    assert 1.0 <= age < 60, age
    shown = [" ".join(line.split()) for line in human.stdout.splitlines()]
    assert shown[:6] == [f"spool {work.spool}", "new 3", "in progress 1", "retrying 1", "failed 2",
                         shown[5]] and re.fullmatch(r"oldest \d+s", shown[5]), human.stdout

    r = subprocess.run([str(HOOKGUARD_BIN), "spool", str(work.path / "no-such-spool")],
                       capture_output=True, timeout=30)
    assert r.returncode != 0 and b"no-such-spool" in r.stderr, out(r)
