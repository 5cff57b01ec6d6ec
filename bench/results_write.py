"""How long writing a results workbook takes: ``write_results`` on N rows (default 100,000).

    .venv/bin/python bench/results_write.py [--rows 100000] [--rounds 3]
    git show main:flows/results.py > /tmp/results_before.py
    .venv/bin/python bench/results_write.py --compare /tmp/results_before.py   # before/after, rounds interleaved

Rows look like the Jicoo sample (12 columns: text, a date, a time, e-mails, phones), with outcomes
mixed as a messy real sheet ends: 90 % created, 5 % invalid (one or two faulty cells, so notes are
written), 3 % rejected (a faulty cell), 1 % unknown, 1 % failed. Dates carry the input's
``dd/mm/yyyy`` format when the writer takes ``number_formats``. Prints seconds per round, the median,
the file size and peak memory, so a change to the writer can be judged before/after on one machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import inspect
import random
import resource
import statistics
import tempfile
import time
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
                     f"Guest {i}", f"guest{i}@example.org", f"07700 9{i % 100000:05d}", "Thistle Bakery" if i % 3 else None,
                     "Zoom", "" if i % 5 else "ground floor, ring twice", "en"])
        lines.append(i + 2)
        x = rnd.random()
        if x < 0.90:
            outcomes.append(Outcome(Status.CREATED, provider_id=f"bk_{i:08d}", http_status=201, attempts=1))
        elif x < 0.95:
            cm = {"Email": ["'not-an-email' is not a valid e-mail address"]}
            if i % 2:
                cm["Date"] = ["'31/02/2027' is not a date in the form 31/12/2026"]
            outcomes.append(Outcome(Status.INVALID, "; ".join(f"{c}: {m[0]}" for c, m in cm.items()), column_messages=cm))
        elif x < 0.98:
            outcomes.append(Outcome(Status.REJECTED, "slot no longer available: Start Time", http_status=409, attempts=1,
                                    column_messages={"Start Time": ["slot no longer available"]}))
        elif x < 0.99:
            outcomes.append(Outcome(Status.UNKNOWN, "read timeout after the request was sent; checked with the "
                                                    "provider before any resend", attempts=1))
        else:
            outcomes.append(Outcome(Status.FAILED, "could not connect; retries used up", attempts=5))
    return rows, lines, outcomes


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"results_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its `from flows... import` lines use this checkout's modules
    return module.write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another results.py (e.g. main's) timed in the same rounds")
    args = parser.parse_args()
    rows, lines, outcomes = make(args.rows)
    writers = {"this checkout": write_results}
    if args.compare:
        writers = {str(args.compare): _load(args.compare), **writers}
    summary = {"input file": "bookings.xlsx", "mapping": "mappings/jicoo.yaml", "provider": "jicoo", "rows": args.rows}
    times: dict[str, list[float]] = {name: [] for name in writers}
    cpu: dict[str, list[float]] = {name: [] for name in writers}  # CPU seconds: steadier on a shared machine
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, write in writers.items():  # interleaved, so a busy moment hits both alike
                extra = {}
                if "number_formats" in inspect.signature(write).parameters:
                    extra["number_formats"] = {"Date": "dd/mm/yyyy", "Start Time": "hh:mm"}
                out = Path(tmp) / "results.xlsx"
                t0, c0 = time.perf_counter(), time.process_time()
                write(out, columns=COLUMNS, rows=rows, line_numbers=lines, outcomes=outcomes, summary=summary, **extra)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                sizes[name] = out.stat().st_size
    for name, ts in times.items():
        print(f"{name}: write_results, {args.rows:,} rows x {len(COLUMNS)} columns: "
              + ", ".join(f"{t:.2f}" for t in ts) + f" s; median {statistics.median(ts):.2f} s; "
              f"min {min(ts):.2f} s; CPU " + ", ".join(f"{t:.2f}" for t in cpu[name])
              + f" s (median {statistics.median(cpu[name]):.2f} s); {sizes[name] / 1e6:.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB (incl. the rows)")


if __name__ == "__main__":
    main()
