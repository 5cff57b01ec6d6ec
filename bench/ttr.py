"""Time to results (issue 16, "Benchmark"): the whole command, from start to its results file, for the
sheets people have, against the scripts and tools they would use instead.

    .venv/bin/python bench/ttr.py                      # 60, 800 and 10,000 rows at 0 and 50 ms
    .venv/bin/python bench/ttr.py --sizes 60 --latency 0 --rounds 5 --write
    .venv/bin/python bench/run.py --only ttr [--write]

Contenders, each a whole process timed start to exit, every one against a fresh Jicoo simulator process
on 127.0.0.1 (so every row is answered 201), in interleaved rounds:

* ``booking-import run SHEET -m mappings/jicoo.yaml`` with ``PREFECT_API_URL`` unset (whatever the
  command does then: a temporary Prefect server, or none);
* the same with ``PREFECT_API_URL`` pointing at a real ``prefect server start`` this script starts on a
  free port (the run then appears in its UI);
* the naive script: pandas reads the sheet, requests POSTs each row in turn, a results CSV
  (bench/peers/pandas_requests.py);
* dlt's destination sink, ``@dlt.destination`` posting each row (bench/peers/dlt_sink.py), in its own
  virtualenv, bench/data/peers/dlt-venv, made on first use (dlt is no dependency of booking-importer);
* Newman with a Postman collection and a CSV data file (bench/peers/jicoo.postman_collection.json),
  installed with npm into bench/data/peers on first use; skipped with a line saying so without npm.
  Its data file has the API's fields as columns (what a Postman user prepares), written untimed;
* a bare aiohttp loop posting the engine's own payloads 8 at a time (bench/peers/bare_aiohttp.py).

The 0 ms and 50 ms latencies are the simulator's (``--latency-ms``). The three sequential peers need
rows x 50 ms at least; at 10,000 rows and 50 ms that is over 8 minutes each, so they are skipped there
unless ``--slow-peers``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_data  # noqa: E402  (bench/gen_data.py)
from run import API_KEY, Simulator, run_measured  # noqa: E402  (bench/run.py)
from sections import RESULTS_MD, loadavg, splice  # noqa: E402  (bench/sections.py)

from flows.prefect_server import LocalPrefectServer  # noqa: E402

DATA = HERE / "data"
PEERS = HERE / "peers"
PEERS_HOME = DATA / "peers"  # node_modules and the dlt virtualenv (git-ignored with bench/data)
MAPPING = ROOT / "mappings" / "jicoo.yaml"
PREFECT_HOME = DATA / "prefect-home"  # the no-server run's home (bench/run.py warms it up)
PREFECT_SERVER_HOME = DATA / "prefect-server-home"
BEGIN, END = "<!-- ttr: begin (bench/ttr.py) -->", "<!-- ttr: end -->"
NEWMAN_VERSION = "6.2.2"
DLT_SPEC = "dlt>=1.31,<2"
#: issue 16 target 1, 60 rows: without a Prefect server within this ratio of the pandas + requests script
TARGET_NO_SERVER = 1.5
#: ... and with one, at most this many seconds more
TARGET_SERVER_EXTRA = 1.0
FIELDS = ["eventTypeId", "startedAt", "timeZone", "name", "email", "phoneNumber", "company", "locationId",
          "message", "locale"]

RUN_NO_SERVER = "booking-import run (no Prefect server)"
RUN_SERVER = "booking-import run (Prefect server)"
PANDAS = "pandas + requests loop"
DLT = "dlt sink"
NEWMAN = "Newman + CSV"
BARE = "bare aiohttp"
CONTENDERS = [RUN_NO_SERVER, RUN_SERVER, PANDAS, DLT, NEWMAN, BARE]
SEQUENTIAL = {PANDAS, DLT, NEWMAN}


# --- the peers' tools, installed on first use -----------------------------------------------------


def ensure_newman(log: Callable[[str], None]) -> Path | None:
    """bench/data/peers/node_modules/.bin/newman, installed with npm when missing; None without npm."""
    exe = PEERS_HOME / "node_modules" / ".bin" / "newman"
    if exe.is_file():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        log("Newman skipped: npm is not installed (install Node.js and npm to include it)")
        return None
    PEERS_HOME.mkdir(parents=True, exist_ok=True)
    log(f"installing newman@{NEWMAN_VERSION} with npm into {PEERS_HOME.relative_to(ROOT)} (first use) ...")
    r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(PEERS_HOME),
                        f"newman@{NEWMAN_VERSION}"], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not exe.is_file():
        log(f"Newman skipped: npm install failed: {r.stderr.strip()[-300:]}")
        return None
    return exe


def ensure_dlt(log: Callable[[str], None]) -> Path | None:
    """The Python of bench/data/peers/dlt-venv (dlt and requests), made when missing; None if it cannot be."""
    venv = PEERS_HOME / "dlt-venv"
    python = venv / "bin" / "python"
    if python.is_file() and subprocess.run([str(python), "-c", "import dlt, requests"],
                                           capture_output=True).returncode == 0:
        return python
    log(f"making {venv.relative_to(ROOT)} with {DLT_SPEC} (first use, a few minutes) ...")
    r = subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True)
    if r.returncode == 0:
        r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", DLT_SPEC,
                            "requests"], capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        log(f"dlt skipped: it did not install: {r.stderr.strip()[-300:]}")
        return None
    return python


def newman_data(payloads: Path, sheet: Path, out: Path) -> None:
    """Newman's CSV data file: the sheet's key, then the API's fields (what a Postman user prepares)."""
    with sheet.open(encoding="utf-8-sig", newline="") as src:
        refs = [row["Booking Ref"] for row in csv.DictReader(src)]
    with payloads.open(encoding="utf-8") as fh, out.open("w", newline="", encoding="utf-8") as dst:
        w = csv.writer(dst)
        w.writerow(["ref", *FIELDS])
        for ref, line in zip(refs, fh, strict=True):
            body = json.loads(line)
            w.writerow([ref, *(body.get(k, "") for k in FIELDS)])


# --- a Prefect server of our own ------------------------------------------------------------------


@contextlib.contextmanager
def prefect_server(log: Callable[[str], None]) -> Iterator[str]:
    """``prefect server start`` on a free port of 127.0.0.1 with its own PREFECT_HOME, as the web page starts
    one (flows/prefect_server.py); yields its API URL."""
    t0 = time.perf_counter()
    with LocalPrefectServer(PREFECT_SERVER_HOME, start_timeout=180) as server:
        log(f"prefect server at {server.api_url} (ready in {time.perf_counter() - t0:.1f} s; not timed)")
        yield server.api_url


# --- one measurement --------------------------------------------------------------------------------


@dataclass
class Timed:
    contender: str
    rows: int
    latency_ms: int
    seconds: float
    ok: bool
    note: str = ""


@dataclass
class Tools:
    newman: Path | None
    dlt_python: Path | None
    prefect_url: str | None


def _ok_csv(path: Path, rows: int, status_col: str = "status") -> tuple[bool, str]:
    if not path.is_file():
        return False, "no results file"
    with path.open(encoding="utf-8", newline="") as fh:
        statuses = [r[status_col] for r in csv.DictReader(fh)]
    created = sum(s == "201" for s in statuses)
    return created == rows == len(statuses), "" if created == rows else f"{created}/{rows} created"


def measure(contender: str, rows: int, latency_ms: int, inputs: dict[str, Path], tools: Tools) -> Timed:
    """One whole command against a fresh simulator; its wall time, whether every row was booked."""
    timeout = 120 + rows * (latency_ms / 1000 + 0.02) * 4
    with Simulator(latency_ms) as sim, tempfile.TemporaryDirectory(prefix="bench-ttr-") as tmp_name:
        tmp = Path(tmp_name)
        base = sim.url + "/v1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({"JICOO_BASE_URL": base, "JICOO_API_KEY": API_KEY})
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PEERS), env.get("PYTHONPATH", "")) if p)
        out = tmp / "results.csv"
        if contender in (RUN_NO_SERVER, RUN_SERVER):
            out = tmp / "results.xlsx"
            exe = Path(sys.executable).with_name("booking-import")
            cmd = [str(exe), "run", str(inputs["csv"]), "-m", str(MAPPING), "--ledger", str(tmp / "ledger.sqlite"),
                   "-o", str(out)]
            env["PREFECT_HOME"] = str(PREFECT_HOME)
            if contender == RUN_SERVER:
                assert tools.prefect_url is not None
                env["PREFECT_API_URL"] = tools.prefect_url
        elif contender == PANDAS:
            cmd = [sys.executable, str(PEERS / "pandas_requests.py"), str(inputs["csv"]), base, str(out)]
        elif contender == DLT:
            assert tools.dlt_python is not None
            cmd = [str(tools.dlt_python), str(PEERS / "dlt_sink.py"), str(inputs["csv"]), base, str(out),
                   str(tmp / "dlt")]
        elif contender == NEWMAN:
            assert tools.newman is not None
            out = tmp / "results.json"
            cmd = [str(tools.newman), "run", str(PEERS / "jicoo.postman_collection.json"), "-d", str(inputs["newman"]),
                   "--env-var", f"baseUrl={base}", "--env-var", f"apiKey={API_KEY}", "-r", "json",
                   "--reporter-json-export", str(out), "--silent"]
        else:
            cmd = [sys.executable, str(PEERS / "bare_aiohttp.py"), str(inputs["payloads"]), base, str(out)]
        m = run_measured(cmd, timeout=timeout, env=env, cwd=tmp)
        booked = sim_booked(sim)
        if contender in (RUN_NO_SERVER, RUN_SERVER):
            ok, note = m.rc == 0 and out.is_file() and booked == rows, ""
            if not ok:
                note = f"exit {m.rc}, {booked}/{rows} booked: {m.stderr.strip()[-200:]}"
        elif contender == NEWMAN:
            ok = m.rc == 0 and out.is_file() and booked == rows
            note = "" if ok else f"exit {m.rc}, {booked}/{rows} booked"
        else:
            ok, note = _ok_csv(out, rows)
            if m.rc != 0:
                ok, note = False, f"exit {m.rc}: {m.stderr.strip()[-200:]}"
    return Timed(contender, rows, latency_ms, m.wall, ok, note)


def sim_booked(sim: Simulator) -> int:
    """How many bookings the simulator holds (its ``GET /_sandbox/state``)."""
    with urllib.request.urlopen(f"{sim.url}/_sandbox/state", timeout=60) as r:
        return int(json.loads(r.read())["counts"]["bookings"])


# --- the table --------------------------------------------------------------------------------------


@dataclass
class Cell:
    rows: int
    latency_ms: int
    runs: dict[str, list[Timed]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    load: str = ""

    def median(self, contender: str) -> float | None:
        ok = [t.seconds for t in self.runs.get(contender, []) if t.ok]
        return statistics.median(ok) if ok else None

    def ratio(self, contender: str) -> float | None:
        """The median of the rounds' ratios against the pandas + requests script of the same round."""
        mine, base = self.runs.get(contender, []), self.runs.get(PANDAS, [])
        ratios = [a.seconds / b.seconds for a, b in zip(mine, base, strict=False) if a.ok and b.ok]
        return statistics.median(ratios) if ratios else None

    def extra(self, contender: str) -> float | None:
        """The median of the rounds' differences against the pandas + requests script (seconds)."""
        mine, base = self.runs.get(contender, []), self.runs.get(PANDAS, [])
        diffs = [a.seconds - b.seconds for a, b in zip(mine, base, strict=False) if a.ok and b.ok]
        return statistics.median(diffs) if diffs else None


def run_cells(sizes: list[int], latencies: list[int], rounds_for: Callable[[int, int], int], contenders: list[str],
              tools: Tools, slow_peers: bool, log: Callable[[str], None]) -> list[Cell]:
    cells = []
    for latency in latencies:
        for rows in sizes:
            files = gen_data.ensure_csv(rows, log=log)
            inputs = {**files, "newman": DATA / f"jicoo-{rows}-v{gen_data.GEN_VERSION}.newman.csv"}
            if tools.newman is not None and not inputs["newman"].is_file():
                newman_data(files["payloads"], files["csv"], inputs["newman"])
            cell = Cell(rows, latency)
            for c in contenders:
                if c in SEQUENTIAL and latency and rows * latency / 1000 > 300 and not slow_peers:
                    cell.skipped[c] = f"skipped: ≥ {rows * latency / 1000:.0f} s one row at a time (--slow-peers)"
                elif (c == NEWMAN and tools.newman is None) or (c == DLT and tools.dlt_python is None):
                    cell.skipped[c] = "not installed"
                elif c == RUN_SERVER and tools.prefect_url is None:
                    cell.skipped[c] = "no Prefect server (--no-server)"
            todo = [c for c in contenders if c not in cell.skipped]
            for r in range(rounds_for(rows, latency)):
                for c in todo:
                    t = measure(c, rows, latency, inputs, tools)
                    cell.runs.setdefault(c, []).append(t)
                    log(f"  {rows:>6} rows {latency:>2} ms  round {r + 1}  {c:<38} {t.seconds:7.2f} s"
                        + ("" if t.ok else f"  FAILED {t.note}"))
            cell.load = loadavg()
            cells.append(cell)
    return cells


def _s(x: float | None) -> str:
    return "–" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def markdown(cells: list[Cell], contenders: list[str], load_start: str, load_end: str, elapsed: float,
             rounds_note: str, code: str) -> str:
    head = "| sheet | " + " | ".join(contenders) + " | load avg |"
    lines = [head, "|---|" + "---:|" * len(contenders) + "---|"]
    for cell in cells:
        out = []
        for c in contenders:
            if c in cell.skipped:
                out.append(cell.skipped[c])
                continue
            med, ratio = cell.median(c), cell.ratio(c)
            failed = [t for t in cell.runs.get(c, []) if not t.ok]
            text = _s(med) + ("" if ratio is None or c == PANDAS else f" ({ratio:.2f}x)")
            if failed:
                text += f" ({len(failed)} failed: {failed[0].note[:60]})"
            out.append(text)
        lines.append(f"| {cell.rows:,} rows, {cell.latency_ms} ms | " + " | ".join(out) + f" | {cell.load} |")
    verdicts = []
    for cell in cells:
        if cell.rows != 60 or cell.latency_ms != 0:
            continue
        r = cell.ratio(RUN_NO_SERVER)
        if r is not None:
            ok = r <= TARGET_NO_SERVER
            verdicts.append(f"- 60 rows, no Prefect server: **{r:.2f}x** the pandas + requests script (median of "
                            f"rounds; target ≤ {TARGET_NO_SERVER}x): {'met' if ok else '**missed**'}")
        e = cell.extra(RUN_SERVER)
        if e is not None:
            ok = e <= TARGET_SERVER_EXTRA
            verdicts.append(f"- 60 rows, with a Prefect server: **{e:+.2f} s** against the pandas + requests "
                            f"script (median of rounds; target ≤ +{TARGET_SERVER_EXTRA:g} s): "
                            f"{'met' if ok else '**missed**'}")
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        BEGIN,
        "## Time to results (issue 16, target 1)", "",
        f"`bench/ttr.py` ({when}, {elapsed:.0f} s; {code}; load average at start {load_start}, at end "
        f"{load_end}). Whole command, start to its results file, each in its own process against a fresh Jicoo "
        "simulator process on 127.0.0.1 (so every row is answered 201; each line checks that every row was "
        f"booked). {rounds_note} A cell is the median time; *(N x)* the median of the rounds' ratios against "
        "the pandas + requests script of the same round. *load avg* is the machine's when the line finished "
        "(2 CPUs shared by other sessions). `booking-import run` uses the mapping's own settings (Jicoo: no "
        "published rate, concurrency 8) and a fresh SQLite ledger; *no Prefect server* is `PREFECT_API_URL` "
        "unset, *Prefect server* a `prefect server start` the bench started (not timed). The peers: "
        "bench/peers/ (bench/README.md).", "",
        *lines, "",
        *(verdicts or ["- (60 rows at 0 ms not measured: no verdict on target 1)"]), "",
        END,
    ])


def code_state() -> str:
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "flows", "mappings"],
                           capture_output=True, text=True).stdout.strip()
    return f"code: commit {head}" + (" with uncommitted changes in flows/ or mappings/" if dirty else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60,800,10000", help="comma-separated row counts (default 60,800,10000)")
    ap.add_argument("--latency", default="0,50", help="comma-separated simulated latencies in ms (default 0,50)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds for sheets up to 800 rows at 0 ms (default 3; others: 1)")
    ap.add_argument("--contenders", default=",".join(CONTENDERS),
                    help="comma-separated, from: " + "; ".join(CONTENDERS))
    ap.add_argument("--no-server", action="store_true", help="skip the run against a `prefect server start`")
    ap.add_argument("--slow-peers", action="store_true",
                    help="also run the one-row-at-a-time peers where they take over 5 minutes")
    ap.add_argument("--write", action="store_true", help="put the section in bench/RESULTS.md")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown:
        print(f"unknown contender {unknown[0]!r}: use some of {', '.join(CONTENDERS)}", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.sizes.split(",")]
    latencies = [int(x) for x in args.latency.split(",")]
    t0, load_start = time.perf_counter(), loadavg()
    newman = ensure_newman(log) if NEWMAN in contenders else None
    dlt_python = ensure_dlt(log) if DLT in contenders else None

    def rounds_for(rows: int, latency: int) -> int:
        return args.rounds if rows <= 800 and latency == 0 else 1

    with contextlib.ExitStack() as stack:
        url = None
        if RUN_SERVER in contenders and not args.no_server:
            url = stack.enter_context(prefect_server(log))
        tools = Tools(newman, dlt_python, url)
        warm = {**gen_data.ensure_csv(60, log=log)}
        for c in (RUN_NO_SERVER, RUN_SERVER):  # the first run creates Prefect's database / registers the flow
            if c in contenders and (c == RUN_NO_SERVER or url is not None):
                t = measure(c, 60, 0, warm, tools)
                log(f"  warm-up (not timed): {c}: {t.seconds:.1f} s" + ("" if t.ok else f" FAILED {t.note}"))
        cells = run_cells(sizes, latencies, rounds_for, contenders, tools, args.slow_peers, log)
    plural = "s" if args.rounds != 1 else ""
    note = (f"Sheets up to 800 rows at 0 ms: {args.rounds} interleaved round{plural} (every contender once a round, "
            "in the order of the columns); the others: one.")
    section = markdown(cells, contenders, load_start, loadavg(), time.perf_counter() - t0, note, code_state())
    print(section)
    if args.write:
        splice(section, BEGIN, END)
        log(f"wrote {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
