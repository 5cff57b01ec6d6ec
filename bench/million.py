"""Issue 16, target 5: ``booking-import validate`` and ``booking-import run`` of a million-row CSV.

    .venv/bin/python bench/million.py                          # 100,000 and 1,000,000 rows, validate and run
    .venv/bin/python bench/million.py --sizes 100000 --modes validate
    .venv/bin/python bench/million.py --write                  # ... and splice the table into bench/RESULTS.md
    .venv/bin/python bench/million.py --sizes 1000000 --modes run --save data/million.jsonl   # in parts, then
    .venv/bin/python bench/million.py --table data/million.jsonl --write                      # one table of them

Each command runs whole, in its own process (its peak RSS from wait4 is its own): ``validate`` of
bench/data/jicoo-N.csv, and ``run`` of it against ``booking-import sandbox jicoo`` at 0 ms latency in
another process, with a fresh SQLite ledger and the mapping's own settings (concurrency 8, no published
rate). Figures per size: wall and CPU seconds, peak RSS, rows per second, and CPU seconds per 100,000
rows, which stays flat when time is linear in rows. A million-row ``run`` takes minutes: run it once.
The results workbook's own write time is measured by bench/results_write.py (quoted in the section).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_data  # noqa: E402  (bench/gen_data.py)
from run import API_KEY, Simulator, run_measured  # noqa: E402  (bench/run.py)
from sections import loadavg, splice  # noqa: E402  (bench/sections.py)

MAPPING = ROOT / "mappings" / "jicoo.yaml"
BEGIN = "<!-- million: begin (bench/million.py --write) -->"
END = "<!-- million: end -->"
#: issue 16's target: peak RSS under 1 GiB
LIMIT_MB = 1024.0
#: bench/results_write.py's figures for the results workbook alone (bench/README.md, "The results workbook")
RESULTS_WRITE_NOTE = (
    "The results workbook alone (bench/results_write.py, measured 2026-12-01 with `--compare` against "
    "036e9c5's writer, load 10-20 on 2 shared cores): 100,000 rows in 24.1 s CPU before, 6.6 s after "
    "(0.27x); 1,000,000 rows in 64 s CPU after, 6.4 s per 100,000 rows, so linear.")


#: why `run`'s CPU a row steps up past 200,000 rows (flows/engine/plan.py KEEP_PAYLOADS_UP_TO)
REGIME_NOTE = (
    "Two regimes, by design: a plan of at most 200,000 rows keeps each valid row's payload packed from "
    "`prepare` (~200 bytes a row), a bigger one maps each row again when it is sent, which keeps a million "
    "rows under 1 GiB and costs about 10 s of CPU per 100,000 rows more (50.7 against 60.0 on 2026-12-02: "
    "mapping a row again is ~20 µs in a 10,000-row plan and ~50 µs in a million-row one, whose cells lie far "
    "apart in memory: the engine's own CPU a row, bench/bookkeeping.py, was 81 µs at 100,000 rows and 135 µs "
    "at 1,000,000). So `run`'s linearity is read within a regime: 300,000 against 1,000,000 rows "
    "(60.0 and 61.7 s per 100,000 on 2026-12-02); 100,000 rows is the other regime.")


@dataclass
class Row:
    command: str
    rows: int
    wall: float
    cpu: float
    peak_mb: float
    ok: bool
    note: str
    load: str

    @property
    def rate(self) -> float:
        return self.rows / self.wall if self.wall else 0.0

    @property
    def cpu_per_100k(self) -> float:
        return self.cpu / self.rows * 100_000


def _command(mode: str, csv: Path, out: Path, ledger: Path) -> list[str]:
    exe = Path(sys.executable).with_name("booking-import")
    base = [str(exe)] if exe.is_file() else [sys.executable, "-m", "flows"]
    cmd = [*base, mode, str(csv), "-m", str(MAPPING), "-o", str(out)]
    return [*cmd, "--ledger", str(ledger), "-q"] if mode == "run" else cmd


def measure(mode: str, rows: int, log=print, label: str = "") -> Row:
    csv = gen_data.ensure_csv(rows, log=log)["csv"]
    timeout = 120 + rows / 200  # generous: a stuck run ends, a slow machine does not
    with tempfile.TemporaryDirectory(prefix="bench-million-") as tmp:
        out, ledger = Path(tmp) / "results.xlsx", Path(tmp) / "ledger.sqlite"
        cmd = _command(mode, csv, out, ledger)
        env = None
        if mode == "run":
            sim = Simulator(0.0)
            sim.__enter__()
            env = {"JICOO_BASE_URL": sim.url + "/v1", "JICOO_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"}
        load = loadavg()
        try:
            m = run_measured(cmd, timeout=timeout, env=env, cwd=Path(tmp))
        finally:
            if mode == "run":
                sim.__exit__(None, None, None)
        text = m.stdout + m.stderr
        if mode == "validate":
            found = re.search(r"(\d+) rows checked: (\d+) valid", text)
            ok = m.rc == 0 and found is not None and int(found.group(2)) == rows
        else:
            ok = m.rc == 0 and out.is_file()
        note = "" if ok else f"exit {m.rc}: {text.strip()[-300:]}"
    row = Row(f"`{mode}`{label}", rows, m.wall, m.cpu, m.maxrss_mb, ok, note, load)
    log(f"  {mode:<8} {rows:>9,} rows  {row.wall:7.1f} s  {row.cpu:7.1f} s CPU  {row.peak_mb:6.0f} MB"
        f"  {row.rate:7.0f} rows/s  {row.cpu_per_100k:5.1f} s CPU/100k" + ("" if ok else f"  FAILED {note}"))
    return row


def markdown(results: list[Row], load_start: str, load_end: str, wall: float) -> str:
    lines = [
        BEGIN,
        "## A million rows (issue 16, target 5)",
        "",
        f"bench/million.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{load_start} at the start, {load_end} at the end (1, 5, 15 min; 2 shared cores), {wall:.0f} s in all. "
        f"Whole commands, each in its own process: `validate`, and `run` against the Jicoo simulator at 0 ms "
        f"with a fresh SQLite ledger and the mapping's settings. Target: peak RSS under 1 GiB "
        f"({LIMIT_MB:.0f} MB), time linear in rows (CPU per 100,000 rows flat).",
        "",
        "| command | rows | wall (s) | CPU (s) | peak RSS (MB) | rows/s | CPU s per 100k rows | under 1 GiB "
        "| load at start |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        under = "yes" if r.peak_mb < LIMIT_MB else "**no**"
        lines.append(f"| {r.command} | {r.rows:,} | {r.wall:.1f} | {r.cpu:.1f} | {r.peak_mb:.0f} | {r.rate:,.0f} | "
                     f"{r.cpu_per_100k:.2f} | {under} | {r.load} |" + ("" if r.ok else f" FAILED: {r.note} |"))
    lines += ["", REGIME_NOTE, "", RESULTS_WRITE_NOTE, "", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    ap.add_argument("--modes", default="validate,run", help="validate, run or both")
    ap.add_argument("--write", action="store_true", help="splice the table into bench/RESULTS.md")
    ap.add_argument("--label", default="", help="text after the command's name in the table (e.g. the code state)")
    ap.add_argument("--save", type=Path, help="also append each measurement to this JSON-lines file")
    ap.add_argument("--table", type=Path, help="measure nothing: the table of the measurements saved in this file")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"validate", "run"}:
        ap.error(f"--modes takes validate and run, not {args.modes!r}")
    t0, load_start = time.perf_counter(), loadavg()
    if args.table is not None:  # measured in parts (a million-row run takes long): one table of them all
        saved = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        results = [Row(**{k: v for k, v in r.items() if k != "seconds"}) for r in saved]
        results.sort(key=lambda r: (r.rows, "validate" not in r.command))
        load_start, load_end = results[0].load if results else "?", loadavg()
        section = markdown(results, load_start, load_end, sum(r.get("seconds", 0.0) for r in saved))
    else:
        results = []
        for n in sizes:
            for mode in modes:
                t = time.perf_counter()
                results.append(measure(mode, n, label=args.label))
                if args.save is not None:
                    with args.save.open("a") as fh:
                        fh.write(json.dumps({**dataclasses.asdict(results[-1]),
                                             "seconds": time.perf_counter() - t}) + "\n")
        section = markdown(results, load_start, loadavg(), time.perf_counter() - t0)
    print(section)
    if args.write:
        splice(section, BEGIN, END)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
