"""bench/run: hookguard against its peers, in one run, behind one nginx.

See bench/README.md for what each location is and what
limits it. Run through bench/run (which installs what is missing and builds
hookguard in release mode first)."""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bodies  # noqa: E402
import disk  # noqa: E402
import drain  # noqa: E402
import report  # noqa: E402
from load import RSSSampler, run_wrk, settle  # noqa: E402
from servers import BENCH, SECRET, Servers  # noqa: E402

# location, the server whose RSS is reported, what it keeps of each 2xx
LOCATIONS = [
    ("/ceiling", "nginx", None),
    ("/floor", "floor", None),
    ("/php", "php-fpm", "spool:php"),
    ("/webhook", "webhook", "commands"),
    ("/floor-spool", "floor-spool", "spool:floor"),
    ("/hookguard", "hookguard", "spool:hookguard"),
    ("/floor-socket", "floor-socket", "reader"),
    ("/hookguard-socket", "hookguard", "reader"),
    ("/hookguard-forged", "hookguard", "spool:forged"),
]
SUSTAINED = "/webhook (commands run)"


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, args, servers: Servers, body_files: dict[str, Path]):
        self.args = args
        self.servers = servers
        self.body_files = body_files
        self.signatures = {b: bodies.sign(SECRET, p.read_bytes()) for b, p in body_files.items()}
        # Forged: well-formed and of the right length, signed with another secret.
        self.forged = {b: bodies.sign("not-" + SECRET, p.read_bytes()) for b, p in body_files.items()}
        self.block_stat = disk.block_stat(servers.prefix)

    def shape(self, body: str) -> tuple[float, int, float]:
        """Seconds of sending, connections, grace seconds for answers in flight."""
        if body == "5MiB":
            return self.args.seconds_large, 4, 30
        return self.args.seconds, 16, 10

    def kept(self, what: str | None) -> int | None:
        if what is None:
            return None
        if what == "reader":
            return self.servers.reader_lines()
        if what == "commands":
            return self.servers.webhook_commands()
        return self.servers.spool_entries(what.split(":")[1])

    def row(self, round_no: int, body: str, location: str, server: str, keeps: str | None,
            seconds: float | None = None) -> list[dict]:
        send, connections, grace = self.shape(body)
        seconds = seconds or send
        forged = location.endswith("forged")
        signature = (self.forged if forged else self.signatures)[body]
        before = self.kept(keeps)
        flushes_before = disk.flushes(self.block_stat)
        started = time.monotonic()
        with RSSSampler(lambda: self.servers.rss_kib(server)) as rss:
            result = run_wrk(self.servers.bench_port, location, self.body_files[body], signature,
                             seconds, connections, grace)
            after, last_grew = None, None
            if keeps == "commands":  # webhook answers first and runs the command afterwards
                after, last_grew = settle(self.servers.webhook_commands, before + result.ok, 120)
        if keeps == "reader":  # no ack: the reader may still be reading the last lines
            after, _ = settle(self.servers.reader_lines, before + result.ok, 10)
        elif keeps is not None and after is None:
            after = self.kept(keeps)
        kept = None if keeps is None else after - before
        flushes_after = disk.flushes(self.block_stat)
        flushes = None if flushes_before is None else flushes_after - flushes_before
        problems = []
        if result.sent != result.answered:
            problems.append(f"{result.sent - result.answered} of {result.sent} sent unanswered")
        if result.socket_errors:
            problems.append(f"{result.socket_errors} socket errors")
        if forged and result.ok:
            problems.append(f"{result.ok} forged deliveries answered 2xx")
        if kept is not None and kept != result.ok:
            problems.append(f"{result.ok} answered 2xx but {kept} kept")
        row = {
            "round": round_no, "body": body, "location": location, "req_per_s": result.rate,
            "p50_ms": result.p50_us / 1000, "p99_ms": result.p99_us / 1000,
            "answered": result.answered, "non2xx": result.non2xx, "sent": result.sent,
            "kept": kept, "rss_mib": rss.peak / 1024, "check": "; ".join(problems) or "ok",
            # Device flushes per delivery kept: the whole disk's, so other writers on it count too.
            "flush_per_2xx": flushes / result.ok if flushes is not None and result.ok and keeps and
            keeps.startswith("spool") else None,
        }
        say(f"  {body:>6} {location:<18} {result.rate:9.0f} req/s  p50 {row['p50_ms']:7.2f} ms  "
            f"p99 {row['p99_ms']:7.2f} ms  non-2xx {result.non2xx:<6} RSS {row['rss_mib']:6.1f} MiB"
            + (f"  flushes/2xx {row['flush_per_2xx']:.3f}" if row["flush_per_2xx"] is not None else "")
            + f"  {row['check']}")
        rows = [row]
        if keeps == "commands" and kept:
            span = last_grew - started
            sustained = dict(row, location=SUSTAINED, req_per_s=kept / span, p50_ms=None,
                             p99_ms=None, answered=kept, non2xx=0)
            say(f"  {body:>6} {SUSTAINED:<18} {sustained['req_per_s']:9.0f} commands/s over {span:.1f} s")
            rows.append(sustained)
        return rows

    def rounds(self) -> list[dict]:
        rows = []
        say("== warming up (not counted)")
        for location, server, keeps in LOCATIONS:
            self.row(0, "1.5KB", location, server, keeps, seconds=1)
        for n in range(1, self.args.rounds + 1):
            say(f"== round {n} of {self.args.rounds}")
            for body in self.args.bodies:
                for location, server, keeps in LOCATIONS:
                    if body == "5MiB" and location == "/ceiling":
                        continue  # nginx's `return` answers before the body is read: nothing to measure
                    rows += self.row(n, body, location, server, keeps)
                    time.sleep(0.3)
        return rows

    def memory(self) -> dict:
        """hookguard's RSS idle with 4 workers, then over many socket deliveries."""
        total = self.args.memory_requests
        say(f"== hookguard RSS: idle with --workers 4, then {total:,} requests to /hookguard-socket")
        self.servers.stop_one("hookguard")
        self.servers.start_hookguard(4)
        time.sleep(1)
        idle = self.servers.rss_kib("hookguard")
        body, signature = self.body_files["1.5KB"], self.signatures["1.5KB"]
        port = self.servers.bench_port
        run_wrk(port, "/hookguard-socket", body, signature, 600, 16, 2, limit=10_000)
        warm = self.servers.rss_kib("hookguard")
        before = self.servers.reader_lines()
        result = run_wrk(port, "/hookguard-socket", body, signature, 600, 16, 2, limit=total)
        after = self.servers.rss_kib("hookguard")
        lines, _ = settle(self.servers.reader_lines, before + result.ok, 10)
        # (wrk's first thread spends one request of its share on checking the script: total - 1 are sent)
        check = "ok" if lines - before == result.ok == result.sent == result.answered >= total - 1 \
            else f"sent {result.sent}, answered {result.answered}, 2xx {result.ok}, reader got {lines - before}"
        say(f"  idle {idle / 1024:.1f} MiB; after 10,000 requests {warm / 1024:.1f} MiB; after "
            f"{total:,} more {after / 1024:.1f} MiB (growth {(after - warm) / 1024:+.1f} MiB)  {check}")
        return {"idle_mib": idle / 1024, "warm_mib": warm / 1024, "after_mib": after / 1024,
                "requests": result.answered, "check": check}


    def burst(self) -> dict | None:
        """16 concurrent 5 MiB deliveries to the durable spool from a fresh
        hookguard: its peak RSS (VmHWM, every process of it) and its RSS 10 s later."""
        if "5MiB" not in self.body_files:
            return None
        say("== hookguard RSS: 16 concurrent 5 MiB deliveries to /hookguard, then 10 s idle")
        self.servers.stop_one("hookguard")
        self.servers.start_hookguard(self.args.workers)
        time.sleep(1)
        idle = self.servers.rss_kib("hookguard")
        before = self.kept("spool:hookguard")
        result = run_wrk(self.servers.bench_port, "/hookguard", self.body_files["5MiB"],
                         self.signatures["5MiB"], 60, 16, 30, limit=16)
        peak = self.servers.rss_kib("hookguard", "VmHWM")
        time.sleep(10)
        after = self.servers.rss_kib("hookguard")
        kept = self.kept("spool:hookguard") - before
        # (wrk's first thread spends one request of its share on checking the script: 15 are sent)
        check = "ok" if result.ok == kept == result.sent >= 15 else f"sent {result.sent}, 2xx {result.ok}, stored {kept}"
        say(f"  idle {idle / 1024:.1f} MiB; peak {peak / 1024:.1f} MiB; 10 s after {after / 1024:.1f} MiB  {check}")
        return {"idle_mib": idle / 1024, "peak_mib": peak / 1024, "after_mib": after / 1024, "check": check}


def hmac_benchmark(binary: Path) -> str:
    say("== HMAC-SHA256 of 5 MiB: hookguard's MessageAuthentication.code vs openssl speed")
    out = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    say(out.stdout.rstrip())
    return out.stdout


def stop_on_signal(signo, frame) -> None:
    raise SystemExit(f"bench/run: stopped by signal {signo}")


def main() -> int:
    # SIGTERM or SIGINT unwinds, so every server started is stopped and the directory removed.
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (about 2 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--seconds", type=float, help="sending time per row, 1.5 KB and 64 KiB")
    parser.add_argument("--bodies", default="1.5KB,64KiB,5MiB", help="comma-separated: 1.5KB,64KiB,5MiB")
    parser.add_argument("--workers", type=int, help="hookguard --workers (default: its own default)")
    parser.add_argument("--keep", action="store_true", help="keep the bench directory (spools, logs)")
    parser.add_argument("--out", type=Path, help="results directory (default bench/results/<time>)")
    parser.add_argument("--create-threshold-us", type=float, default=120,
                        help="wait until the median file create is this fast (default 120)")
    parser.add_argument("--create-wait", type=float, help="wait at most this long (s) for fast creates")
    parser.add_argument("--hookguard", type=Path, required=True, help=argparse.SUPPRESS)
    parser.add_argument("--hmac-bench", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (2 if args.quick else 5)
    args.seconds_large = 2 if args.quick else 4
    args.create_wait = args.create_wait if args.create_wait is not None else (45 if args.quick else 180)
    args.memory_requests = 20_000 if args.quick else 100_000
    args.bodies = [b for b in args.bodies.split(",") if b]
    for b in args.bodies:
        if b not in bodies.SIZES:
            parser.error(f"unknown body {b}: choose from {', '.join(bodies.SIZES)}")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    out = args.out or BENCH / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    prefix = Path(tempfile.mkdtemp(prefix="hookguard-bench-"))
    servers = Servers(prefix, args.hookguard, args.workers)
    started = time.monotonic()
    try:
        servers.render()
        body_files = bodies.write_bodies(prefix / "bodies", args.bodies)
        disk.wait_for_fast_creates(prefix / "create-probe", args.create_threshold_us,
                                   args.create_wait, say)
        servers.start()
        workers = servers.hookguard_workers()
        say(f"== {prefix}: nginx on 127.0.0.1:{servers.bench_port}, hookguard with {workers} "
            f"workers, php-fpm (pm dynamic, 5 children), webhook, floor with {workers} threads")
        bench = Bench(args, servers, body_files)
        rows = bench.rounds()
        memory = bench.memory()
        burst = bench.burst()
        drain_rows = drain.measure(args.hookguard, f"http://127.0.0.1:{servers.bench_port}/ceiling", say=say)
    finally:
        servers.stop()
        if args.keep:
            say(f"kept {prefix}")
        else:
            shutil.rmtree(prefix, ignore_errors=True)

    report.add_ratios(rows)
    summary = report.medians(rows)
    report.write_tsv(out / "rounds.tsv", report.ROUND_COLUMNS, rows)
    report.write_tsv(out / "medians.tsv", report.MEDIAN_COLUMNS, summary)
    report.write_chart_data(out / "chart.dat", summary, args.bodies)
    table = report.table(summary, args.rounds)
    hmac_text = hmac_benchmark(args.hmac_bench) if args.hmac_bench else ""
    machine = f"{os.cpu_count()} cores, {' '.join(os.uname().release.split()[:1])}"
    with open(out / "summary.txt", "w") as f:
        shown = [a for i, a in enumerate(sys.argv[1:]) if not a.startswith("--h") and not sys.argv[i].startswith("--h")]
        f.write(f"bench/run {' '.join(shown)}  ({stamp}, {machine}, hookguard {workers} workers)\n\n")
        f.write(table + "\n\n")
        f.write(report.bars(summary, burst) + "\n\n")
        f.write("hookguard RSS (--workers 4): idle {idle_mib:.1f} MiB, after 10,000 requests "
                "{warm_mib:.1f} MiB, after {requests:,} more {after_mib:.1f} MiB; {check}\n"
                .format(**memory))
        if burst:
            f.write("hookguard RSS, 16 concurrent 5 MiB deliveries: idle {idle_mib:.1f} MiB, peak "
                    "{peak_mib:.1f} MiB, 10 s after {after_mib:.1f} MiB; {check}\n".format(**burst))
        f.write("\n" + drain.table(drain_rows) + "\n")
        f.write("\n" + hmac_text)
    report.chart(out / "chart.dat", out / "chart.png",
                 f"hookguard and its peers behind one nginx: wrk, {args.rounds} round(s), {stamp}")
    say("")
    say(table)
    say("")
    say(report.bars(summary, burst))
    say(f"hookguard RSS (--workers 4): idle {memory['idle_mib']:.1f} MiB, after {memory['requests']:,} "
        f"more requests {memory['after_mib']:.1f} MiB (growth {memory['after_mib'] - memory['warm_mib']:+.1f} MiB)")
    say(drain.table(drain_rows))
    say(f"\nresults: {out}  ({time.monotonic() - started:.0f} s)")
    # A peer that answers 2xx for more deliveries than it keeps is a finding, not a failed run.
    failed = [r for r in summary if r["checks"] != "ok" and not r["location"].startswith("/webhook")] \
        or memory["check"] != "ok" or (burst is not None and burst["check"] != "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
