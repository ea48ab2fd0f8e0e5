"""Medians over the rounds, ratios to /floor and /php of the same round, the
printed table, the TSV files and the chart."""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

from servers import BENCH

ROUND_COLUMNS = ["round", "body", "location", "req_per_s", "p50_ms", "p99_ms", "answered",
                 "non2xx", "sent", "kept", "rss_mib", "flush_per_2xx", "x_floor", "x_php", "check"]
MEDIAN_COLUMNS = ["body", "location", "req_per_s", "p50_ms", "p99_ms", "non2xx", "answered",
                  "rss_mib", "flush_per_2xx", "x_floor", "x_php", "checks"]


def add_ratios(rows: list[dict]) -> None:
    """Each row's rate over /floor's and /php's with the same body in the same round."""
    by_key = {(r["round"], r["body"], r["location"]): r for r in rows}
    for r in rows:
        for name, column in (("/floor", "x_floor"), ("/php", "x_php")):
            ref = by_key.get((r["round"], r["body"], name))
            r[column] = r["req_per_s"] / ref["req_per_s"] if ref and ref["req_per_s"] else None


def medians(rows: list[dict]) -> list[dict]:
    out, order = [], []
    for r in rows:
        if (r["body"], r["location"]) not in order:
            order.append((r["body"], r["location"]))
    for body, location in order:
        group = [r for r in rows if r["body"] == body and r["location"] == location]

        def med(column):
            values = [r[column] for r in group if r[column] is not None]
            return statistics.median(values) if values else None

        out.append({
            "body": body, "location": location, "req_per_s": med("req_per_s"),
            "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"),
            "non2xx": sum(r["non2xx"] or 0 for r in group),
            "answered": sum(r["answered"] or 0 for r in group),
            "rss_mib": max(r["rss_mib"] for r in group), "flush_per_2xx": med("flush_per_2xx"),
            "x_floor": med("x_floor"),
            "x_php": med("x_php"),
            "checks": "ok" if all(r["check"] == "ok" for r in group)
            else "; ".join(r["check"] for r in group if r["check"] != "ok"),
        })
    return out


def cell(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with open(path, "w") as f:
        f.write("\t".join(columns) + "\n")
        for r in rows:
            f.write("\t".join(cell(r.get(c), 3) for c in columns) + "\n")


def table(rows: list[dict], rounds: int) -> str:
    head = ["body", "location", "req/s", "p50 ms", "p99 ms", "non-2xx", "RSS MiB", "flushes/2xx",
            "× /floor", "× /php", "check"]
    lines = [[r["body"], r["location"], cell(r["req_per_s"], 0), cell(r["p50_ms"]),
              cell(r["p99_ms"]), cell(r["non2xx"]), cell(r["rss_mib"], 1), cell(r["flush_per_2xx"], 3),
              cell(r["x_floor"]), cell(r["x_php"]), r["checks"]] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    fmt = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    text = [fmt(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    text += [fmt(line) for line in lines]
    text.append(f"(medians of {rounds} round{'s' if rounds != 1 else ''}; non-2xx summed over them; "
                "RSS the largest seen)")
    return "\n".join(text)


def chart(medians_tsv: Path, png: Path, title: str) -> None:
    subprocess.run(["gnuplot", "-e", f"dat='{medians_tsv}'; png='{png}'; heading='{title}'",
                    str(BENCH / "chart.gp")], check=True)


def write_chart_data(path: Path, rows: list[dict], body_order: list[str]) -> None:
    """One block per body for chart.gp: location, req/s, × /php."""
    blocks = []
    for body in body_order:
        lines = [f"# {body}"]
        for r in rows:
            if r["body"] == body:
                lines.append(f"{r['location']}\t{r['req_per_s']:.1f}\t{cell(r['x_php'], 1)}")
        blocks.append("\n".join(lines))
    path.write_text("\n\n\n".join(blocks) + "\n")


def bars(rows: list[dict], burst: dict | None = None) -> str:
    """The issues' bars, each as the ratio this run measured."""
    rate = {(r["body"], r["location"]): r for r in rows}

    def ratio(body, location, column):
        r = rate.get((body, location))
        return cell(r[column]) + "×" if r and r[column] is not None else "-"

    def over(body, ours, theirs):
        a, b = rate.get((body, ours)), rate.get((body, theirs))
        if not a or not b or not a["req_per_s"] or not b["req_per_s"]:
            return "-"
        return f"{a['req_per_s'] / b['req_per_s']:.2f}×"

    def flushes(body, location):
        r = rate.get((body, location))
        return cell(r["flush_per_2xx"], 3) if r and r["flush_per_2xx"] is not None else "-"

    lines = []
    for body, label in (("1.5KB", "1.5 KB"), ("64KiB", "64 KiB")):
        lines.append(f"durable spool {label:<7} {ratio(body, '/hookguard', 'x_php')} /php (bar ≥ 3×), "
                     f"{over(body, '/hookguard', '/floor-spool')} /floor-spool, "
                     f"{over(body, '/hookguard', '/hookguard-forged')} /hookguard-forged (bar ≥ 0.8×), "
                     f"{flushes(body, '/hookguard')} device flushes per delivery (bar ≤ 0.2; "
                     f"/php {flushes(body, '/php')})")
    lines += [
        f"socket 1.5 KB:         {over('1.5KB', '/hookguard-socket', '/floor-socket')} /floor-socket (bar ≥ 0.9×), "
        f"{over('1.5KB', '/hookguard-socket', '/webhook (commands run)')} /webhook's commands (bar ≥ 10×)",
        f"forged 1.5 KB:         {ratio('1.5KB', '/hookguard-forged', 'x_floor')} /floor (bar ≥ 0.90×)",
    ]
    if burst:
        lines.append(f"16 × 5 MiB at once:    peak RSS {burst['peak_mib']:.1f} MiB (bar ≤ 140), "
                     f"10 s after {burst['after_mib']:.1f} MiB (bar ≤ 40)")
    return "\n".join(lines)
