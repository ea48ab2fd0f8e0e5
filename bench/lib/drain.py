"""The drain rows of the benchmark: how many spooled deliveries per second
`hookguard drain` gets through, with `--to-url` and with the command it
replaces (`-- curl -sf --data-binary @- URL`), in the same run, against the
same local HTTP service (nginx `return 204`: bench/run's /ceiling).

Run by bench/run (bench/lib/main.py) after its rounds; on its own:

    python3 bench/lib/drain.py --hookguard .build/release/hookguard --url http://127.0.0.1:PORT/ceiling

Also home of `fill`, which scripts/bench-drain uses too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

import fcgi_client  # noqa: E402
import signing  # noqa: E402

SECRET = "bench-drain-secret"


def fill(hookguard: Path, work: Path, spool: Path, count: int, body_bytes: int = 230) -> None:
    """COUNT real deliveries of about body_bytes each in spool/new: a private
    `hookguard serve` on a Unix socket, genuinely signed x-signature requests over FastCGI."""
    sock = work / "hg.sock"
    with open(work / "serve.log", "wb") as log:
        serve = subprocess.Popen([str(hookguard), "serve", "--listen", f"unix:{sock}", "--workers", "4",
                                  "--log-level", "warning"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            if serve.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"hookguard serve did not start:\n{(work / 'serve.log').read_text()}")
            time.sleep(0.02)

        def deliver(i: int) -> None:
            head = f'{{"bench": {i}, "pad": "'
            body = (head + "x" * max(0, body_bytes - len(head) - 2) + '"}').encode()
            params = {
                "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)), "REQUEST_URI": "/hooks/bench",
                "HOOKGUARD_SCHEME": "x-signature", "HOOKGUARD_SECRET": SECRET,
                "HOOKGUARD_SPOOL": str(spool),
                "HTTP_X_SIGNATURE": signing.signature("x-signature", SECRET, body),
            }
            r = fcgi_client.request(str(sock), params, body)
            if r.status != 200:
                raise RuntimeError(f"delivery {i} answered {r.status}: {r.body!r}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(deliver, range(count)))
    finally:
        serve.terminate()
        serve.wait(10)


def timed_drain(command: list[str], spool: Path, template: Path, count: int) -> float:
    """Puts the template's envelopes back in new/, runs drain to its exit; seconds taken."""
    for name in os.listdir(template):
        shutil.copy2(template / name, spool / "new" / name)
    started = time.monotonic()
    r = subprocess.run(command, capture_output=True)
    elapsed = time.monotonic() - started
    left = sum(len(os.listdir(spool / sub)) for sub in ("new", "cur", "failed"))
    if r.returncode != 0 or left:
        raise RuntimeError(f"drain exited {r.returncode} with {left} left:\n{r.stderr.decode()[-2000:]}")
    return elapsed


def measure(hookguard: Path, url: str, count: int = 2000, levels=(1, 8), say=print) -> list[dict]:
    """One row per concurrency: deliveries/s with --to-url and with curl, and their ratio."""
    curl = shutil.which("curl") or "curl"
    work = Path(tempfile.mkdtemp(prefix="hg-bench-drain-"))
    rows = []
    try:
        spool = work / "spool"
        fill(hookguard, work, spool, count, body_bytes=1536)
        template = work / "template"
        shutil.copytree(spool / "new", template)
        say(f"== drain: {count} spooled 1.5 KB deliveries to {url} (nginx return 204)")
        for n in levels:
            base = [str(hookguard), "drain", str(spool), "--concurrency", str(n), "--log-level", "warning"]
            to_url = count / timed_drain(base + ["--to-url", url], spool, template, count)
            command = count / timed_drain(base + ["--", curl, "-sf", "--data-binary", "@-", url], spool, template, count)
            row = {"concurrency": n, "to_url_per_s": to_url, "curl_per_s": command, "ratio": to_url / command}
            say(f"drain --concurrency {n}: --to-url {to_url:,.0f}/s, -- curl {command:,.0f}/s, "
                f"ratio {row['ratio']:.1f}x")
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["drain (2,000 x 1.5 KB)   --to-url/s   -- curl/s   ratio"]
    for r in rows:
        lines.append(f"--concurrency {r['concurrency']:<11} {r['to_url_per_s']:>10,.0f} {r['curl_per_s']:>11,.0f}"
                     f" {r['ratio']:>6.1f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hookguard", type=Path, required=True)
    parser.add_argument("--url", required=True, help="a local HTTP service answering 2xx")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--levels", default="1,8")
    args = parser.parse_args()
    rows = measure(args.hookguard, args.url, args.count, [int(n) for n in args.levels.split(",")])
    print(table(rows))


if __name__ == "__main__":
    main()
