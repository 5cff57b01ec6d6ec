"""How long writing a results workbook takes, and its peak memory: ``write_results`` on N rows.

    .venv/bin/python bench/results_write.py [--rows 100000 1000000] [--rounds 3]
    git show 036e9c5:flows/workbooks/results.py > /tmp/results_before.py   # XlsxWriter cell by cell
    .venv/bin/python bench/results_write.py --compare /tmp/results_before.py   # before/after, rounds interleaved

Rows look like the Jicoo sample (12 columns: text, a date, a time, e-mails, phones), with outcomes
mixed as a messy real sheet ends: 90 % created, 5 % invalid (one or two faulty cells, so notes are
written), 3 % rejected (a faulty cell), 1 % unknown, 1 % failed. Dates carry the input's
``dd/mm/yyyy`` format when the writer takes ``number_formats``. Each (size, writer, round) runs in
a fresh process, so its peak RSS is its own: printed are wall and CPU seconds, the median, seconds
per 100,000 rows (linear in rows when it stays flat), the file size, the RSS held before writing
(the rows and outcomes themselves), the writer's peak above that, and the ratio of medians against
``--compare`` with the machine's load average.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flows.outcomes import Outcome, Status
from flows.workbooks.results import write_results

COLUMNS = ["Booking Ref", "Event Type", "Date", "Start Time", "Time Zone", "Guest Name", "Email", "Phone",
           "Company", "Meeting", "Notes", "Language"]


def make(n: int, seed: int = 7) -> tuple[list[list[object]], list[int], list[Outcome]]:
    rnd = random.Random(seed)
    rows, lines, outcomes = [], [], []
    day = dt.date(2027, 1, 1)
    for i in range(n):
        rows.append([f"JB-{100000 + i}", rnd.choice(["Initial consultation", "Follow-up call", "Workshop"]),
                     day + dt.timedelta(days=i % 365), dt.time(9 + i % 8, 30 * (i % 2)), "Europe/London",
                     f"Guest {i}", f"guest{i}@example.org", f"07700 9{i % 100000:05d}",
                     "Thistle Bakery" if i % 3 else None,
                     "Zoom", "" if i % 5 else "ground floor, ring twice", "en"])
        lines.append(i + 2)
        x = rnd.random()
        if x < 0.90:
            outcomes.append(Outcome(Status.CREATED, provider_id=f"bk_{i:08d}", http_status=201, attempts=1))
        elif x < 0.95:
            cm = {"Email": ["'not-an-email' is not a valid e-mail address"]}
            if i % 2:
                cm["Date"] = ["'31/02/2027' is not a date in the form 31/12/2026"]
            message = "; ".join(f"{c}: {m[0]}" for c, m in cm.items())
            outcomes.append(Outcome(Status.INVALID, message, column_messages=cm))
        elif x < 0.98:
            outcomes.append(Outcome(Status.REJECTED, "slot no longer available: Start Time", http_status=409,
                                    attempts=1, column_messages={"Start Time": ["slot no longer available"]}))
        elif x < 0.99:
            outcomes.append(Outcome(Status.UNKNOWN, "read timeout after the request was sent; checked with the "
                                                    "provider before any resend", attempts=1))
        else:
            outcomes.append(Outcome(Status.FAILED, "could not connect; retries used up", attempts=5))
    return rows, lines, outcomes


def _load(path: Path) -> Callable[..., Path]:  # the other version's write_results
    spec = importlib.util.spec_from_file_location(f"results_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its `from flows... import` lines use this checkout's modules
    return module.write_results


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _one(rows_n: int, writer: str) -> dict[str, float]:
    """Write once in this process (a child): the figures as a dict."""
    write = write_results if writer == "this checkout" else _load(Path(writer))
    rows, lines, outcomes = make(rows_n)
    summary = {"input file": "bookings.xlsx", "mapping": "mappings/jicoo.yaml", "provider": "jicoo", "rows": rows_n}
    extra = {}
    if "number_formats" in inspect.signature(write).parameters:
        extra["number_formats"] = {"Date": "dd/mm/yyyy", "Start Time": "hh:mm"}
    held = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    before = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.xlsx"
        t0, c0 = time.perf_counter(), time.process_time()
        write(out, columns=COLUMNS, rows=rows, line_numbers=lines, outcomes=outcomes, summary=summary, **extra)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = out.stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "cpu": cpu, "size": size, "held": before, "peak": peak, "extra": peak - max(held, before)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another results.py (e.g. main's) timed in the same rounds")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # ROWS WRITER: one measurement
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_one(int(args.child[0]), args.child[1])))
        return
    writers = ([str(args.compare)] if args.compare else []) + ["this checkout"]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    for n in args.rows:
        runs: dict[str, list[dict[str, float]]] = {w: [] for w in writers}
        for _ in range(args.rounds):
            for w in writers:  # interleaved, so a busy moment hits both alike
                child = subprocess.run([sys.executable, __file__, "--child", str(n), w], check=True,
                                       capture_output=True, text=True)
                runs[w].append(json.loads(child.stdout.strip().splitlines()[-1]))
        for w, rs in runs.items():
            wall = [r["wall"] for r in rs]
            cpu = [r["cpu"] for r in rs]
            print(f"{w}: write_results, {n:,} rows x {len(COLUMNS)} columns: wall "
                  + ", ".join(f"{x:.2f}" for x in wall) + f" s (median {statistics.median(wall):.2f}); CPU "
                  + ", ".join(f"{x:.2f}" for x in cpu) + f" s (median {statistics.median(cpu):.2f}, "
                  f"{statistics.median(cpu) / n * 1e5:.2f} s per 100,000 rows); {rs[-1]['size'] / 1e6:.1f} MB; "
                  f"RSS held before writing {statistics.median(r['held'] for r in rs):.0f} MB, writer's peak above "
                  f"it {statistics.median(r['extra'] for r in rs):.0f} MB, process peak "
                  f"{max(r['peak'] for r in rs):.0f} MB")
        if args.compare:
            old, new = runs[str(args.compare)], runs["this checkout"]
            print(f"{n:,} rows: this checkout / compared, medians: wall "
                  f"{statistics.median(r['wall'] for r in new) / statistics.median(r['wall'] for r in old):.2f}, CPU "
                  f"{statistics.median(r['cpu'] for r in new) / statistics.median(r['cpu'] for r in old):.2f}")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
