"""booking-importer benchmark: send throughput against the Jicoo simulator, and read+map+validate.

    .venv/bin/python bench/run.py                  # full: 10,000 rows to send, 100,000-row xlsx
    .venv/bin/python bench/run.py --quick          # 2,000 rows / 20,000-row xlsx, no diagnostics
    .venv/bin/python bench/run.py --write          # ... and rewrite bench/RESULTS.md
    make bench BENCH_ARGS="--quick"

The machine is shared and noisy, so every figure is also given as a ratio against a bare
baseline measured in the same run, against the same kind of server, at the same concurrency:
a bare aiohttp loop for sending, a bare ``pandas.read_excel(engine="calamine")`` for reading.
Every contender runs in its own process (its peak RSS is its own), against a fresh simulator
in another process (``python -m flows sandbox jicoo --port 0``) on 127.0.0.1. See bench/README.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_data  # noqa: E402  (bench/gen_data.py)
from sections import RESULTS_MD, loadavg, splice  # noqa: E402  (bench/sections.py)

DATA = HERE / "data"
MAPPING = ROOT / "mappings" / "jicoo.yaml"  # replaced by the snapshot's copy in main()
WORKERS = HERE / "workers.py"
PREFECT_HOME = DATA / "prefect-home"
API_KEY = "sk_test_sandbox"  # the simulator's default key (flows.sandbox.DEFAULT_API_KEY)

TARGET_SEND_RATIO = 0.8  # engine / command send phase vs bare aiohttp at 0 ms (issue 16, target 6)
TARGET_LATENCY_RATIO = 0.95  # ... and at 50 ms, fixed or jittered (issue 16, target 6)
TARGET_CEILING = 0.9  # fraction of concurrency / latency at 50 ms (issue 2's target; informative since issue 16)
TARGET_PREPARE = 2.0  # prepare() time / bare pandas.read_excel time

#: the parts of RESULTS.md this script writes, each between its markers (bench/sections.py); rates.py and
#: ttr.py write their own, and --write leaves every part it did not measure as it was
SECTIONS = ("header", "send", "sheet", "bigchange")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin (bench/run.py) -->", f"<!-- {name}: end -->"


# --- processes ----------------------------------------------------------------------------------


@dataclass
class Measured:
    """A finished child process: exit code, wall time, its own peak RSS and CPU (from wait4)."""

    rc: int
    wall: float
    maxrss_mb: float  # the process's peak RSS, or a reaped descendant's if larger (Linux wait4)
    cpu: float
    tree_peak_mb: float | None  # sampled sum over the process and its live descendants
    stdout: str
    stderr: str


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree_rss_mb(pid: int) -> float:
    kids = _children_map()
    todo, total, page = [pid], 0, os.sysconf("SC_PAGE_SIZE")
    for _ in range(10_000):  # bounded walk
        if not todo:
            break
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * page
        except OSError:
            pass
    return total / 2**20


def run_measured(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
                 sample_tree: bool = False) -> Measured:
    """Run ``cmd`` to the end (killed after ``timeout`` s) and measure it with wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        tree_peak = 0.0
        next_sample = 0.0
        status, ru = None, None
        deadline = t0 + timeout
        killed = False
        while True:  # bounded by the deadline
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(proc.pid, 0)
                killed = True
                break
            if sample_tree and now >= next_sample:
                tree_peak = max(tree_peak, _tree_rss_mb(proc.pid))
                next_sample = now + 0.2
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        if killed:
            rc = -9
        out.seek(0)
        err.seek(0)
        return Measured(rc, wall, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime, tree_peak if sample_tree else None,
                        out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


class Simulator:
    """``python -m flows sandbox jicoo --port 0 --latency-ms L`` in its own process, on 127.0.0.1."""

    def __init__(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.url = ""
        self._dir = Path(tempfile.mkdtemp(prefix="bench-sim-"))
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Simulator:
        log = (self._dir / "out").open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "flows", "sandbox", "jicoo", "--port", "0", "--latency-ms", str(self.latency_ms),
             "--latency-jitter-ms", str(self.jitter_ms)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self._dir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the URL line
            m = re.search(r"http://127\.0\.0\.1:(\d+)", (self._dir / "out").read_text(errors="replace"))
            if m:
                self.url = m.group(0)
                break
            if self._proc.poll() is not None:
                raise RuntimeError(f"the simulator exited: {(self._dir / 'out').read_text()[-2000:]}")
            time.sleep(0.05)
        else:
            self._stop()
            raise RuntimeError("the simulator did not start within 60 s")
        port = int(self.url.rsplit(":", 1)[1])
        while time.monotonic() < deadline:  # and until the port answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self._stop()
        raise RuntimeError(f"the simulator's port {port} did not answer")

    def __exit__(self, *exc: Any) -> None:
        self._stop()

    def cpu_now(self) -> float:
        """The simulator's CPU seconds so far (user + system, from /proc)."""
        assert self._proc is not None
        with open(f"/proc/{self._proc.pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rfind(b")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _stop(self) -> None:
        p = self._proc
        if p is None:
            return
        self._proc = None
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded: SIGTERM, then SIGKILL after 10 s
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
        else:
            os.killpg(p.pid, signal.SIGKILL)
            _, status, _ = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        shutil.rmtree(self._dir, ignore_errors=True)


def worker(cfg: dict, timeout: float) -> tuple[dict, Measured]:
    m = run_measured([sys.executable, str(WORKERS), json.dumps(cfg)], timeout=timeout, cwd=ROOT)
    line = next((ln for ln in reversed(m.stdout.splitlines()) if ln.startswith("RESULT ")), None)
    if m.rc != 0 or line is None:
        raise RuntimeError(f"worker {cfg['kind']} failed (exit {m.rc}):\n{m.stderr[-3000:]}{m.stdout[-1000:]}")
    res = json.loads(line[len("RESULT "):])
    snapshot = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    if res.get("flows") and snapshot and not res["flows"].startswith(snapshot):
        raise RuntimeError(f"worker {cfg['kind']} imported flows from {res['flows']}, not the snapshot {snapshot}")
    return res, m


# --- send scenarios -------------------------------------------------------------------------------


@dataclass
class SendRow:
    contender: str
    rows: int
    seconds: float
    cpu: float | None  # client CPU seconds in the timed part (None: whole process)
    peak_mb: float
    ok: bool
    note: str = ""
    tree_mb: float | None = None
    sim_cpu: float | None = None
    informative: bool = False
    target: bool = False  # this row is held to a target
    baseline: float | None = None  # rows/s of the bare aiohttp runs next to this one
    is_baseline: bool = False
    round: int = 0  # 1, 2, ... when a target contender runs several rounds (at 0 ms)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float | None:
        return self.rate / self.baseline if self.baseline else None


@dataclass
class Scenario:
    latency_ms: float
    concurrency: int
    rows: int
    results: list[SendRow] = field(default_factory=list)
    jitter_ms: float = 0.0  # each request's latency uniform in latency ± jitter (the mean stays latency)

    @property
    def latency_text(self) -> str:
        return f"{self.latency_ms:g} ± {self.jitter_ms:g} ms" if self.jitter_ms else f"{self.latency_ms:g} ms"

    @property
    def ceiling(self) -> float | None:
        return self.concurrency / (self.latency_ms / 1000) if self.latency_ms else None

    @property
    def baselines(self) -> list[float]:
        return [r.rate for r in self.results if r.is_baseline]

    def rounds_of(self, contender: str) -> list[SendRow]:
        return [r for r in self.results if r.contender == contender and not r.is_baseline]

    def typical(self, contender: str) -> SendRow | None:
        """The contender's run with the median ratio (of one, three, ... rounds; the lower middle of an even count)."""
        runs = sorted(self.rounds_of(contender), key=lambda r: r.ratio or 0.0)
        return runs[(len(runs) - 1) // 2] if runs else None


def _send_timeout(rows: int, latency_ms: float, concurrency: int) -> float:
    floor_rate = 100.0 if not latency_ms else 0.3 * concurrency / (latency_ms / 1000)
    return 120 + rows / floor_rate


def run_send_contender(kind: str, label: str, sc: Scenario, inputs: dict[str, Path], log, **extra: Any) -> SendRow:
    with Simulator(sc.latency_ms, sc.jitter_ms) as sim:
        cfg = {"kind": kind, "url": sim.url, "api_key": API_KEY, "concurrency": sc.concurrency,
               "payloads": str(inputs["payloads"]), "sheet": str(inputs["csv"]), **extra}
        cpu0 = sim.cpu_now()
        res, _m = worker(cfg, _send_timeout(sc.rows, sc.latency_ms, sc.concurrency))
        sim_cpu = sim.cpu_now() - cpu0
    statuses = res.get("statuses", {})
    ok = statuses.get("201", 0) == res["rows"]
    row = SendRow(label, res["rows"], res["wall"], res["cpu"], res["peak_rss_mb"], ok,
                  "" if ok else f"statuses {statuses}", sim_cpu=sim_cpu)
    log(f"  {label:<34} {row.rate:>8.0f} rows/s  {row.seconds:6.2f} s  {row.peak_mb:5.0f} MB"
        + ("" if ok else f"  NOT ALL 201: {statuses}"))
    return row


def run_command(sc: Scenario, inputs: dict[str, Path], log, profile: Path | None = None) -> list[SendRow]:
    """`booking-import run ... --rate 0 -c N --ledger <tmp> -q`, timed end to end; send phase from the Summary.

    With ``profile``, the same command runs as ``python bench/sampler.py PROFILE -m flows run ...``."""
    exe = Path(sys.executable).with_name("booking-import")
    base = [str(exe)] if exe.is_file() else [sys.executable, "-m", "flows"]
    if profile is not None:
        base = [sys.executable, str(HERE / "sampler.py"), str(profile), "-m", "flows"]
    with Simulator(sc.latency_ms, sc.jitter_ms) as sim, tempfile.TemporaryDirectory(prefix="bench-cmd-") as tmp:
        out = Path(tmp) / "results.xlsx"
        cmd = [*base, "run", str(inputs["csv"]), "-m", str(MAPPING), "--rate", "0", "-c", str(sc.concurrency),
                      "--ledger", str(Path(tmp) / "ledger.sqlite"), "-q", "-o", str(out)]
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
        env.update({"JICOO_BASE_URL": sim.url + "/v1", "JICOO_API_KEY": API_KEY, "PREFECT_HOME": str(PREFECT_HOME)})
        cpu0 = sim.cpu_now()
        m = run_measured(cmd, timeout=60 + 2 * _send_timeout(sc.rows, sc.latency_ms, sc.concurrency), env=env,
                         cwd=Path(tmp), sample_tree=True)
        sim_cpu = sim.cpu_now() - cpu0
        if m.rc not in (0, 1) or not out.is_file():
            raise RuntimeError(f"booking-import run failed (exit {m.rc}):\n{m.stderr[-3000:]}\n{m.stdout[-2000:]}")
        res, _ = worker({"kind": "read-results", "path": str(out)}, timeout=300)
    created = res["statuses"].get("created", 0)
    rows = res["rows"]
    ok = m.rc == 0 and created == rows
    send_s = res["duration"]
    note = "" if ok else f"exit {m.rc}, {created}/{rows} created"
    send = SendRow("booking-import run: send phase", rows, send_s, None, m.maxrss_mb, ok, note,
                   tree_mb=m.tree_peak_mb, sim_cpu=sim_cpu, target=True)
    e2e = SendRow("booking-import run: end to end", rows, m.wall, m.cpu, m.maxrss_mb, ok, note,
                  tree_mb=m.tree_peak_mb, sim_cpu=sim_cpu)
    log(f"  {send.contender:<34} {send.rate:>8.0f} rows/s  {send.seconds:6.2f} s")
    log(f"  {e2e.contender:<34} {e2e.rate:>8.0f} rows/s  {e2e.seconds:6.2f} s  {e2e.peak_mb:5.0f} MB"
        f" (tree {e2e.tree_mb:.0f} MB)" + ("" if ok else f"  {note}"))
    return [send, e2e]


def warm_prefect(inputs: dict[str, Path], log) -> None:
    """The first command against a new PREFECT_HOME creates and migrates its database: do that untimed."""
    if (PREFECT_HOME / "prefect.db").is_file():
        return
    log("warming up: first run against a new PREFECT_HOME (creates Prefect's database; not timed)")
    t = time.perf_counter()
    sc = Scenario(0, 8, 0)
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        small = Path(tmp) / "small.csv"
        lines = inputs["csv"].read_text(encoding="utf-8-sig").splitlines(keepends=True)
        small.write_text("".join(lines[:21]), encoding="utf-8-sig")
        run_command(sc, {**inputs, "csv": small}, lambda *_: None)
    log(f"  done in {time.perf_counter() - t:.1f} s")


def send_scenario(latency_ms: float, concurrency: int, inputs: dict[str, Path], rows: int, *, diagnostics: bool,
                  command: bool, log, jitter_ms: float = 0.0, informative_httpx: bool = True,
                  rounds: int = 1) -> Scenario:
    """One table. At 0 ms the bare aiohttp loop runs before and after every contender, and each
    contender is compared with the mean of its two neighbours (the machine's load drifts); the
    contenders held to a target run ``rounds`` times, alternating, and their verdict is the median
    ratio. At 50 ms the ceiling is the yardstick and everything runs once."""
    sc = Scenario(latency_ms, concurrency, rows, jitter_ms=jitter_ms)
    ceiling = f", ceiling {sc.ceiling:.0f} rows/s" if sc.ceiling else ""
    log(f"\nsend: {rows} rows, {sc.latency_text} latency, concurrency {concurrency}{ceiling}")
    plan: list[tuple[str, str, dict, str, int]] = []  # (kind, label, extra, role, round: 0 when it runs once)
    # at 50 ms / 8 it would only measure the latency again
    if informative_httpx and (latency_ms == 0 or concurrency > 8):
        plan.append(("httpx-aiohttp", "bare httpx + AiohttpTransport", {}, "informative", 0))
    if diagnostics and latency_ms == 0:
        plan.append(("sender", "engine's Sender only (diagnostic)", {}, "informative", 0))
        plan.append(("engine", "engine, :memory: ledger (diagnostic)", {"ledger": "memory"}, "informative", 0))
    several = rounds if latency_ms == 0 and rounds > 1 else 0
    for n in range(1, several + 1) if several else [0]:
        plan.append(("engine", "engine: send_pending()", {}, "target", n))
        if command:
            plan.append(("command", "", {}, "target", n))

    def baseline() -> SendRow:
        r = run_send_contender("aiohttp", "bare aiohttp", sc, inputs, log)
        r.is_baseline = True
        sc.results.append(r)
        return r

    before = baseline()
    for kind, label, extra, role, n in plan:
        if kind == "command":
            got = run_command(sc, inputs, log)
        else:
            got = [run_send_contender(kind, label, sc, inputs, log, **extra)]
            got[0].informative = role == "informative"
            got[0].target = role == "target"
        for r in got:
            r.round = n
        sc.results.extend(got)
        # at 50 ms too where a run is short (a wide concurrency): the target is a ratio to the bare loop there
        after = baseline() if latency_ms == 0 or (sc.ceiling or 0) >= 500 else before
        for r in got:
            r.baseline = (before.rate + after.rate) / 2
        before = after
    mid = sorted(sc.baselines)[len(sc.baselines) // 2]
    for r in sc.results:
        if r.is_baseline:
            r.baseline = mid  # a bare run against the median bare run: the drift
    return sc


# --- sheet scenario -------------------------------------------------------------------------------


@dataclass
class SheetRow:
    contender: str
    times: list[float]
    peak_mb: float
    informative: bool = False

    @property
    def best(self) -> float:
        return min(self.times)


def sheet_scenario(inputs: dict[str, Path], xlsx_rows: int, repeat: int, log) -> list[SheetRow]:
    log(f"\nread + map + validate: {xlsx_rows} rows x 12 columns xlsx ({inputs['xlsx'].stat().st_size / 1e6:.1f} MB), "
        f"best of {repeat}")
    out = []
    plan = [("read-pandas", 'bare pandas.read_excel(engine="calamine")', {}, False),
            ("read-pandas", "pandas.read_excel, dtype=object text-first", {"variant": "text"}, True),
            ("read-sheet", "flows.workbooks.sheets.read_sheet (read step)", {}, True),
            ("map-validate", "map + validate only (sheet in memory)", {}, True),
            ("prepare", "flows.engine.run.prepare (read+map+validate)", {}, False)]
    for kind, label, extra, informative in plan:
        cfg = {"kind": kind, "xlsx": str(inputs["xlsx"]), "repeat": repeat, **extra}
        res, _m = worker(cfg, timeout=120 + repeat * xlsx_rows / 2000)
        row = SheetRow(label, res["times"], res["peak_rss_mb"], informative)
        if kind == "prepare" and res.get("invalid"):
            row.contender += f" ({res['invalid']} rows invalid!)"
        out.append(row)
        log(f"  {label:<44} best {row.best:6.2f} s  (all: {', '.join(f'{t:.2f}' for t in res['times'])})"
            f"  {row.peak_mb:5.0f} MB")
    return out


# --- profiles -------------------------------------------------------------------------------------


def profile_runs(scenarios: list[Scenario], sheet: list[SheetRow] | None, inputs: dict[str, Path], mode: str,
                 log) -> list[dict]:
    """Sampled runs (bench/sampler.py) of what missed a target (mode auto), or of everything held to one."""
    todo: list[tuple[str, Scenario | None]] = []
    zero = [sc for sc in scenarios if sc.latency_ms == 0]
    for kind, label in (("engine", "engine: send_pending()"), ("command", "booking-import run: send phase")):
        missed = [sc for sc in zero if (r := sc.typical(label)) is not None and r.ratio is not None
                  and r.ratio < TARGET_SEND_RATIO]
        if mode == "always" and zero:
            missed = missed or zero[:1]
        if missed:
            todo.append((kind, missed[0]))
    if sheet is not None:
        bare = next(r for r in sheet if r.contender.startswith("bare"))
        prep = next(r for r in sheet if r.contender.startswith("flows.engine.run.prepare"))
        if mode == "always" or prep.best > TARGET_PREPARE * bare.best:
            todo.append(("prepare", None))
    out = []
    for kind, sc in todo:
        path = DATA / (f"profile-{kind}-{sc.latency_ms:g}ms-c{sc.concurrency}.json" if sc else f"profile-{kind}.json")
        if kind == "engine":
            title = f"engine send_pending, {sc.rows:,} rows, 0 ms, concurrency {sc.concurrency}"
        elif kind == "command":
            title = f"booking-import run (as python -m flows run), {sc.rows:,} rows, 0 ms, concurrency {sc.concurrency}"
        else:
            title = "flows.engine.run.prepare of the xlsx"
        log(f"\nprofiling (sampled wall clock): {title} -> {path.relative_to(ROOT)}")
        if kind == "engine":
            with Simulator(0) as sim:
                cfg = {"kind": "engine", "url": sim.url, "api_key": API_KEY, "concurrency": sc.concurrency,
                       "sheet": str(inputs["csv"]), "profile": str(path)}
                worker(cfg, 2 * _send_timeout(sc.rows, 0, sc.concurrency))
        elif kind == "command":
            command_rows = run_command(sc, inputs, lambda *_: None, profile=path)
        else:
            worker({"kind": "prepare", "xlsx": str(inputs["xlsx"]), "repeat": 1, "profile": str(path)}, 900)
        if not path.is_file():  # the profiled run failed: the timed tables stand without its profile
            log(f"  no profile: {path.relative_to(ROOT)} was not written")
            continue
        prof = json.loads(path.read_text())
        prof.update(title=title, path=str(path.relative_to(ROOT)), kind=kind)
        if kind == "command" and command_rows[1].cpu is not None:
            # the Prefect server is reaped at interpreter exit, after the sampler stopped: take the
            # command's whole CPU (wait4: the process and its reaped children) minus the sampled process's
            prof["cpu_children"] = max(prof.get("cpu_children", 0.0), command_rows[1].cpu - prof.get("cpu_self", 0.0))
        out.append(prof)
        log("  " + ", ".join(f"{a} {100 * share:.0f} %" for a, share in prof["areas"][:4]))
    return out


#: functions whose inclusive share (time on the stack) the profile tables list, when present
_INCLUSIVE = [
    ("flows/import_sheet.py:import_sheet", "the flow (import_sheet)"),
    ("prefect/task_engine.py:run_task_async", "Prefect task runs (incl. the work inside)"),
    ("prefect/utilities/collections.py:visit_collection", "Prefect visit_collection (parameter introspection)"),
    ("flows/engine/run.py:send_pending", "engine.send_pending"),
    ("flows/engine/run.py:send", "ImportRun.send (a chunk)"),
    ("flows/engine/run.py:_process", "ImportRun._process (one row)"),
    ("flows/http/sender.py:call", "Sender.call"),
    ("httpx/_client.py:request", "httpx AsyncClient.request"),
    ("httpx/_client.py:build_request", "httpx build_request"),
    ("httpx/_models.py:extract_cookies", "httpx Cookies.extract_cookies"),
    ("httpx_aiohttp/transport.py:handle_async_request", "AiohttpTransport.handle_async_request"),
    ("flows/ledger/ledger.py:mark_sending", "Ledger.mark_sending"),
    ("flows/ledger/ledger.py:record", "Ledger.record"),
    ("flows/ledger/ledger.py:write_many", "Ledger.write_many"),
    ("flows/ledger/ledger.py:payload_hash", "payload_hash"),
    ("flows/engine/answers.py:outcome_from", "ImportRun.outcome_from"),
    ("flows/engine/run.py:write_results", "ImportRun.write_results"),
    ("flows/engine/plan.py:prepare", "prepare"),
    ("flows/workbooks/sheets.py:read_sheet", "read_sheet"),
    ("flows/workbooks/sheets.py:_build", "read_sheet: _build (cells to text-first rows)"),
    ("flows/engine/plan.py:map_rows", "map_rows (map + key + validate)"),
    ("flows/mapping/rows.py:map_row", "RowMapper.map_row"),
    ("flows/mapping/rows.py:convert", "date + time + zone to UTC (mapping convert)"),
    ("_strptime.py:_strptime", "datetime.strptime"),
    ("pydantic/main.py:model_validate", "pydantic model_validate"),
    ("flows/engine/plan.py:_mark_duplicate_keys", "duplicate keys"),
]


# --- reporting ------------------------------------------------------------------------------------


def _fmt_ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def send_markdown(sc: Scenario) -> str:
    lines = []
    head = f"### Send: {sc.rows:,} rows, {sc.latency_text} simulated latency, concurrency {sc.concurrency}"
    if sc.ceiling:
        head += f" (ceiling {sc.concurrency}/{sc.latency_ms / 1000:g} s = {sc.ceiling:,.0f} rows/s)"
    lines += [head, ""]
    cols = ["contender", "seconds", "rows/s", "vs bare aiohttp"]
    if sc.ceiling:
        cols.append("of ceiling")
    cols += ["client CPU ms/row", "server CPU ms/row", "peak RSS MB", "target"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" if i in (0, len(cols) - 1) else "---:" for i in range(len(cols))) + "|")
    for r in sc.results:
        name = r.contender + (" *(informative)*" if r.informative else "") + (f", round {r.round}" if r.round else "")
        ratio = _fmt_ratio(r.ratio)
        if r.is_baseline:
            ratio = f"({r.ratio:.2f}x of median)" if r.ratio is not None and len(sc.baselines) > 1 else "1.00x"
        cells = [name, f"{r.seconds:.2f}", f"{r.rate:,.0f}", ratio]
        frac = r.rate / sc.ceiling if sc.ceiling else None
        if sc.ceiling:
            cells.append(f"{frac:.2f}")
        cells.append(f"{1000 * r.cpu / r.rows:.2f}" if r.cpu is not None and r.rows else
                     ("whole process" if r.contender.endswith("end to end") else "–"))
        cells.append(f"{1000 * r.sim_cpu / r.rows:.2f}" if r.sim_cpu is not None and r.rows and
                     not r.contender.endswith("end to end") else "")
        mem = f"{r.peak_mb:.0f}"
        if r.tree_mb is not None:
            mem += f" (tree {r.tree_mb:.0f})"
        cells.append(mem)
        verdict = ""
        if r.target and r.round:
            verdict = f"round {r.round} of {len(sc.rounds_of(r.contender))}: median below"
        elif r.target:
            if sc.ceiling:
                verdict = (("met" if r.ratio and r.ratio >= TARGET_LATENCY_RATIO else "**missed**")
                           + f" (≥ {TARGET_LATENCY_RATIO}x)")
            else:
                verdict = ("met" if r.ratio and r.ratio >= TARGET_SEND_RATIO else "**missed**") + \
                          f" (≥ {TARGET_SEND_RATIO}x)"
        if not r.ok:
            verdict += f" ⚠ {r.note}"
        cells.append(verdict)
        lines.append("| " + " | ".join(cells) + " |")
    several = [name for name in dict.fromkeys(r.contender for r in sc.results if r.target and r.round)]
    if several:
        lines.append("")
        for name in several:
            runs = sc.rounds_of(name)
            mid = sc.typical(name)
            met = mid.ratio is not None and mid.ratio >= TARGET_SEND_RATIO
            lines.append(f"- {name}, median of {len(runs)} rounds: **{mid.ratio:.3f}x** "
                         f"({', '.join(_fmt_ratio(r.ratio) for r in runs)}): "
                         + ("met" if met else "**missed**") + f" (≥ {TARGET_SEND_RATIO}x)")
    return "\n".join(lines)


def sheet_markdown(rows: list[SheetRow], xlsx_rows: int, repeat: int, size_mb: float) -> str:
    bare = next(r for r in rows if r.contender.startswith("bare"))
    lines = [f"### Read + map + validate: {xlsx_rows:,} rows x 12 columns xlsx ({size_mb:.1f} MB), "
             f"best of {repeat}", "",
             "| step | best s | all runs s | vs bare read | rows/s | peak RSS MB | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = r.best / bare.best
        verdict = ""
        if r.contender.startswith("flows.engine.run.prepare"):
            verdict = ("met" if ratio <= TARGET_PREPARE else "**missed**") + f" (≤ {TARGET_PREPARE:g}x)"
        lines.append(f"| {r.contender}{' *(informative)*' if r.informative else ''} | {r.best:.2f} | "
                     f"{' / '.join(f'{t:.2f}' for t in r.times)} | {ratio:.2f}x | {xlsx_rows / r.best:,.0f} | "
                     f"{r.peak_mb:.0f} | {verdict} |")
    return "\n".join(lines)


def profile_markdown(p: dict) -> str:
    wall = p["wall"]
    lines = [f"#### Profile: {p['title']}", "",
             f"{p['samples']:,} samples of the main thread's stack every {1000 * p['interval']:g} ms over "
             f"{wall:.1f} s (wall clock; `{p['path']}`). CPU meanwhile: {p.get('cpu_self', 0):.1f} s in this "
             f"process" + (f", {p['cpu_children']:.1f} s in its child processes (the Prefect server)"
                           if p.get("cpu_children", 0) >= 0.05 else "") + ".", "",
             "| where the wall time goes (area) | share | ≈ seconds |", "|---|---:|---:|"]
    for area, share in p["areas"]:
        if share >= 0.005:
            lines.append(f"| {area} | {100 * share:.0f} % | {share * wall:.2f} |")
    inc = p.get("inclusive", {})
    have = [(label, inc[k]) for k, label in _INCLUSIVE if k in inc]
    if have:
        lines += ["", "| function (time on the stack, callees included) | share | ≈ seconds |", "|---|---:|---:|"]
        lines += [f"| {label} | {100 * share:.0f} % | {share * wall:.2f} |" for label, share in have]
    lines += ["", "| innermost Python function (self time) | share |", "|---|---:|"]
    lines += [f"| `{name}` | {100 * share:.1f} % |" for name, share in p["leaves"][:10]]
    return "\n".join(lines)


def machine_info() -> list[str]:
    import sqlite3
    from importlib import metadata

    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    mem = ""
    try:
        kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    versions = []
    for dist in ("aiohttp", "httpx", "httpx-aiohttp", "pandas", "python-calamine", "xlsxwriter", "prefect", "pydantic"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return [
        f"- machine: {os.cpu_count()} CPUs ({cpu or platform.processor()}){mem}, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; {', '.join(versions)}",
    ]


def code_fingerprint(root: Path = ROOT) -> str:
    """A hash of the code and mappings measured (flows/**/*.py, mappings/*)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted([*(root / "flows").rglob("*.py"), *(root / "mappings").glob("*")]):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def git_state() -> str:
    """``<commit>`` plus whether flows/ or mappings/ differ from it (read-only git commands)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "flows", "mappings"],
                               cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" with uncommitted changes in flows/ or mappings/" if dirty else "")


def snapshot_code(dest: Path) -> None:
    """Copy flows/ and mappings/ to ``dest``; every child process imports flows from there (PYTHONPATH
    comes before the editable install's finder), so edits made by others while the benchmark runs
    do not mix two versions of the code into one set of tables."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "flows", dest / "flows", ignore=ignore)
    shutil.copytree(ROOT / "mappings", dest / "mappings", ignore=ignore)


def findings(scenarios: list[Scenario], sheet: list[SheetRow] | None) -> list[str]:
    """Numbers read off the tables: client CPU per row layer by layer, what is not sending, the 50 ms cycle."""
    out = []
    for sc in scenarios:
        if sc.latency_ms:
            continue
        # a contender run in several rounds: its median round (the command's end to end from that same round)
        by = {name: sc.typical(name) for name in dict.fromkeys(r.contender for r in sc.results if not r.is_baseline)}
        send_mid = by.get("booking-import run: send phase")
        if send_mid is not None and send_mid.round:
            by["booking-import run: end to end"] = next(r for r in sc.rounds_of("booking-import run: end to end")
                                                        if r.round == send_mid.round)
        bare = sorted(1000 * r.cpu / r.rows for r in sc.results if r.is_baseline and r.cpu is not None)
        ms = {name: 1000 * r.cpu / r.rows for name, r in by.items() if r.cpu is not None and r.rows}
        if bare and "engine: send_pending()" in ms:
            prev = bare[len(bare) // 2]
            parts = [f"bare aiohttp {prev:.2f} ms (median of its runs)"]
            if "bare httpx + AiohttpTransport" in ms:
                parts.append(f"bare httpx over AiohttpTransport {ms['bare httpx + AiohttpTransport']:.2f} ms "
                             f"({ms['bare httpx + AiohttpTransport'] - prev:+.2f} against bare aiohttp)")
            for label, name in (("the engine's Sender alone", "engine's Sender only (diagnostic)"),
                                ("+ outcomes, bookkeeping, ledger in memory", "engine, :memory: ledger (diagnostic)"),
                                ("+ ledger on disk: the engine", "engine: send_pending()")):
                if name in ms:
                    parts.append(f"{label} {ms[name]:.2f} ms ({ms[name] - prev:+.2f})")
                    prev = ms[name]
            out.append(f"- Client CPU per row at 0 ms, concurrency {sc.concurrency}: " + "; ".join(parts) + ".")
        e2e, send, eng = (by.get("booking-import run: end to end"), by.get("booking-import run: send phase"),
                          by.get("engine: send_pending()"))
        if e2e and send:
            extra = ""
            if eng:
                x = send.seconds / eng.seconds
                extra = (f" Its send phase took {x:.1f}x as long as the engine's send_pending() on the same rows "
                         f"({send.seconds:.1f} s against {eng.seconds:.1f} s)"
                         + (": the difference is what the command adds around the engine." if x > 1.15 else
                            ", so the command adds little around the engine while sending (the runs are "
                            "minutes apart; differences under about 15 % are noise here)."))
            out.append(f"- `booking-import run` at 0 ms, concurrency {sc.concurrency}: {e2e.seconds:.1f} s end to end, "
                       f"{send.seconds:.1f} s of it sending; the other {e2e.seconds - send.seconds:.1f} s are process "
                       f"start and imports, reading and checking the sheet, and writing the results workbook (no "
                       f"Prefect server is configured, so the run calls run_import directly).{extra}")
    for sc in scenarios:
        if not sc.latency_ms or not sc.ceiling:
            continue
        parts = []
        for r in sc.results:
            if (r.target or r.is_baseline) and not r.contender.endswith("end to end") and r.rate:
                cycle = 1000 * sc.concurrency / r.rate  # ms per request per worker
                parts.append(f"{r.contender} {r.rate / sc.ceiling:.2f} of the ceiling "
                             f"({cycle - sc.latency_ms:.1f} ms a request beyond the {sc.latency_ms:g} ms)")
        if parts:
            out.append(f"- {sc.latency_text}, concurrency {sc.concurrency}: " + "; ".join(parts) + ".")
    if sheet:
        bare = next(r for r in sheet if r.contender.startswith("bare"))
        rs = next((r for r in sheet if r.contender.startswith("flows.workbooks.sheets")), None)
        mv = next((r for r in sheet if r.contender.startswith("map + validate")), None)
        prep = next(r for r in sheet if r.contender.startswith("flows.engine.run.prepare"))
        if rs and mv:
            out.append(f"- prepare() best {prep.best:.2f} s ≈ read_sheet {rs.best:.2f} s + map/validate "
                       f"{mv.best:.2f} s "
                       f"(best runs, separate processes); the bare pandas read takes {bare.best:.2f} s, so prepare "
                       f"is {prep.best / bare.best:.2f}x it and read_sheet alone {rs.best / bare.best:.2f}x.")
    return out


def meta_lines(args: argparse.Namespace, meta: dict, inputs: dict[str, Path], *, sheet: bool) -> list[str]:
    """When, where and what a part of RESULTS.md measured (each part says it: they are written at different times)."""
    what = (f"`{inputs['xlsx'].relative_to(ROOT)}` ({args.xlsx_rows:,} rows x 12 columns)" if sheet else
            f"`{inputs['csv'].relative_to(ROOT)}` ({args.rows:,} valid rows, distinct slots)")
    return [f"- date: {meta['date']}", f"- command: `{meta['command']}`", *machine_info(),
            f"- load average (1/5/15 min) at start: {meta['load_start']}; at end: {meta['load_end']}; "
            f"whole run {meta['elapsed']:.0f} s",
            f"- code: commit {meta['git']}; measured a snapshot of flows/ and mappings/ taken at the start "
            f"(fingerprint {meta['code']})"
            + ("" if meta["code"] == meta["code_end"] else
               "; the working tree changed while the benchmark ran (the snapshot kept the tables consistent)"),
            f"- input: {what}"]


def header_section() -> str:
    return "\n".join([
        "# Benchmark results", "",
        "Written by the scripts in bench/ (bench/README.md explains how to read it); do not edit by hand. Each part "
        "is written by the script named in its markers, with its own date, load average and commit: `bench/run.py "
        "--write` replaces the parts it measured (send, sheet, BigChange lookups) and leaves the others "
        "as they were.", "",
        "## Targets", "",
        f"- at 0 ms (issue 16, target 6): `engine.send_pending` and `booking-import run`'s send phase ≥ "
        f"{TARGET_SEND_RATIO}x the bare aiohttp loop (same concurrency, 8 and 64, same server, same run: the median "
        "of the rounds);",
        f"- at 50 ms, fixed and 50 ± 5 ms (issue 16, target 6): ≥ {TARGET_LATENCY_RATIO}x the bare aiohttp loop of "
        "the same table;",
        f"- informative: the share of the ceiling (concurrency / latency) at 50 ms (issue 2 asked ≥ {TARGET_CEILING}; "
        "at 50 ms and concurrency 64 with a constant latency even the bare loop misses it: the test server answers "
        "every wave at once, bench/README.md);",
        f"- `prepare()` of the 100,000-row xlsx ≤ {TARGET_PREPARE:g}x a bare `pandas.read_excel(engine=\"calamine\")`;",
        "- issue 16's other targets (time to results, rates, workers, a million rows): their own parts below.",
    ])


def send_section(args: argparse.Namespace, scenarios: list[Scenario], profiles: list[dict], inputs: dict[str, Path],
                 meta: dict) -> str:
    lines = ["## Send throughput", "", *meta_lines(args, meta, inputs, sheet=False), "",
             "Each line is one process against a fresh simulator process on 127.0.0.1. The bare aiohttp "
             "loop runs before and after every contender (at 50 ms: where a run is short, concurrency 64) and the "
             "ratio is against the mean of those two runs "
             "(the bare lines themselves show how far each is from their median: the drift)"
             + (f"; at 0 ms the engine and the command run {args.rounds} rounds, alternating, and their verdict is "
                f"the median of their {args.rounds} ratios (one pair of runs moves by ±15 % with the load of other "
                f"sessions on this machine)" if args.rounds > 1 else "")
             + ". *client CPU ms/row* is the contender's CPU time in the "
             "timed part (for "
             "the command's end-to-end line: all CPU of the command and its children over its whole life); "
             "*server CPU ms/row* the simulator's CPU while that contender ran (about 1 core / rows per second "
             "means the simulator was the bottleneck). "
             "The send phase of `booking-import run` is the Summary sheet's `sending (s)` (from the first row "
             "handed to the sender to the last one settled and committed in the ledger); its end-to-end time is the "
             "whole command. *tree* is the sampled peak RSS summed over the command and its child "
             "processes.", ""]
    for sc in scenarios:
        lines += [send_markdown(sc), ""]
    found = findings(scenarios, None)
    if found:
        lines += ["### Read off the send tables", "", *found, ""]
    for p in profiles:
        lines += [profile_markdown(p), ""]
    lines += ["### Noise", "",
              "The machine is shared (other sessions run tests and benchmarks on the same 2 CPUs): absolute "
              "numbers move from run to run, sometimes by 2x when the load changes, the paired ratios much less. "
              "The bare aiohttp lines of each table show the drift within it. At 0 ms client and simulator "
              "share the CPUs, so a client that burns more CPU per request also slows the server down; the 50 ms "
              "tables are bound by latency, not CPU. The load average above says how busy the machine was."]
    return "\n".join(lines)


def sheet_section(args: argparse.Namespace, sheet: list[SheetRow], profiles: list[dict], inputs: dict[str, Path],
                  meta: dict) -> str:
    lines = ["## Read + map + validate", "", *meta_lines(args, meta, inputs, sheet=True), "",
             "`flows.workbooks.sheets.read_sheet` reads with python-calamine directly; *map + validate only* runs "
             "`prepare()` on the sheet already in memory.", "",
             sheet_markdown(sheet, args.xlsx_rows, args.repeat, inputs["xlsx"].stat().st_size / 1e6)]
    found = findings([], sheet)
    if found:
        lines += ["", *found]
    for p in profiles:
        lines += ["", profile_markdown(p)]
    return "\n".join(lines)


def render(args: argparse.Namespace, scenarios: list[Scenario], sheet: list[SheetRow] | None, profiles: list[dict],
           inputs: dict[str, Path], meta: dict) -> dict[str, str]:
    """The parts of RESULTS.md this run measured, by section name (see SECTIONS)."""
    out = {"header": header_section()}
    if scenarios:
        out["send"] = send_section(args, scenarios, [p for p in profiles if p.get("kind") != "prepare"], inputs,
                                   meta)
    if sheet:
        out["sheet"] = sheet_section(args, sheet, [p for p in profiles if p.get("kind") == "prepare"], inputs, meta)
    return out


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="rows to send (default 10,000; --quick 2,000)")
    ap.add_argument("--xlsx-rows", type=int, default=None,
                    help="rows of the xlsx to read (default 100,000; --quick 20,000)")
    ap.add_argument("--quick", action="store_true", help="smaller inputs, no diagnostic contenders, no profiles")
    ap.add_argument("--concurrency", default="8,64",
                    help="comma-separated concurrencies (default 8,64: the mapping's and a wide one)")
    ap.add_argument("--latency", default="0,50", help="comma-separated simulated latencies in ms (default 0,50)")
    ap.add_argument("--jitter", type=float, default=None,
                    help="also send at the largest latency and concurrency with each request's latency varied by up "
                         "to this many ms either way (default 5; --quick 0, which skips it)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the sheet scenario (default 3)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="at 0 ms, run the engine and the command this many times each, alternating, every run between "
                         "two bare ones; the target verdict is their median ratio (default 3; --quick 1)")
    ap.add_argument("--only", choices=["send", "sheet", "rates", "ttr"],
                    help="run one part only (ttr: time to results against the peers, bench/ttr.py)")
    ap.add_argument("--no-command", action="store_true", help="skip `booking-import run` (saves Prefect start-ups)")
    ap.add_argument("--no-diagnostics", action="store_true", help="skip the diagnostic contenders at 0 ms")
    ap.add_argument("--profile", choices=["auto", "always", "never"], default=None,
                    help="sample-profile the contenders that missed a target (auto, the default; never with --quick)")
    ap.add_argument("--write", action="store_true", help=f"rewrite {RESULTS_MD.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    args.rows = args.rows or (2_000 if args.quick else 10_000)
    args.xlsx_rows = args.xlsx_rows or (20_000 if args.quick else 100_000)
    args.profile = args.profile or ("never" if args.quick else "auto")
    args.diagnostics = not (args.quick or args.no_diagnostics)
    args.jitter = args.jitter if args.jitter is not None else (0.0 if args.quick else 5.0)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    args.concurrency = [int(x) for x in str(args.concurrency).split(",") if x]
    args.latency = [float(x) for x in str(args.latency).split(",") if x]
    if (args.rows < 1 or args.xlsx_rows < 1 or args.repeat < 1 or args.rounds < 1 or not args.concurrency
            or min(args.concurrency) < 1):
        ap.error("rows, xlsx rows, repeat, rounds and concurrency must be positive")
    return args


def bigchange_lookups(log) -> str:
    """BigChange's name lookups (issue 3): a constant cost per run, not per row. bench/bigchange_lookups.py
    measures login, list fetches and the re-mapping against sheet size; its table goes in RESULTS.md."""
    log("\n== BigChange lookups: constant per run?")
    done = subprocess.run([sys.executable, str(HERE / "bigchange_lookups.py"), "--rows", "100", "2000",
                           "--latency-ms", "0", "20", "--repeat", "3"], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    table = "\n".join(line for line in done.stdout.splitlines() if line.startswith("|"))
    if done.returncode != 0 or not table:
        return ("## BigChange lookups\n\nnot measured: bench/bigchange_lookups.py failed "
                f"({done.stderr.strip()[-300:]})\n")
    return ("## BigChange lookups: a constant cost per run\n\n"
            "`bench/bigchange_lookups.py` against the BigChange simulator in another process (medians of 3). "
            "*fetch lists* is the five provider lists fetched once per run (contacts in two pages of 1,000); "
            "it does not grow with the sheet. The only per-row part is mapping the rows again once names "
            "resolve (*remap*), tens of microseconds a row against milliseconds a row for sending.\n\n"
            + table + "\n")


def rates_section(log, quick: bool, write: bool) -> str:
    """Issue 16, targets 3 and 4: the rate adherence, three-worker and claim-cost tables (bench/rates.py, which
    can also run alone and splice its section into RESULTS.md)."""
    log("\n== rates: a published rate, an unpublished 50/s, three workers sharing one rate")
    done = subprocess.run([sys.executable, str(HERE / "rates.py"), *(["--quick"] if quick else []),
                           *(["--write"] if write else [])],
                          capture_output=True, text=True, timeout=1800, cwd=ROOT)
    if done.returncode != 0 or "rates: begin" not in done.stdout:
        return f"## Rates\n\nnot measured: bench/rates.py failed ({done.stderr.strip()[-300:]})\n"
    return done.stdout.strip() + "\n"


def ttr_section(log, quick: bool, write: bool) -> str:
    """Issue 16's time-to-results table against the peers (bench/ttr.py, which can also run alone)."""
    log("\n== time to results: booking-import run against pandas + requests, dlt, Newman, bare aiohttp")
    done = subprocess.run([sys.executable, str(HERE / "ttr.py"), *(["--sizes", "60,800", "--rounds", "1"] if quick
                                                                 else []), *(["--write"] if write else [])],
                          stdout=subprocess.PIPE, text=True, timeout=7200, cwd=ROOT)
    if done.returncode != 0 or "ttr: begin" not in done.stdout:
        return "## Time to results\n\nnot measured: bench/ttr.py failed (its messages are above)\n"
    return done.stdout.strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    meta = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "load_start": loadavg(),
            "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])])}

    def log(msg: str = "") -> None:
        print(msg, flush=True)

    import importlib.util

    if importlib.util.find_spec("flows") is None:
        log("error: the `flows` package is not importable: run with the project's venv, .venv/bin/python bench/run.py")
        return 2
    global MAPPING
    snapshot = Path(tempfile.mkdtemp(prefix="bench-code-"))
    try:
        meta["git"] = git_state()
        snapshot_code(snapshot)
        meta["code"] = code_fingerprint(snapshot)
        MAPPING = snapshot / "mappings" / "jicoo.yaml"
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(snapshot), os.environ.get("PYTHONPATH")) if p)
        os.environ["BENCH_MAPPING"] = str(MAPPING)
        return _main(args, meta, log, t_start)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)


def _main(args: argparse.Namespace, meta: dict, log, t_start: float) -> int:
    if args.only == "rates":  # its own section only, spliced into RESULTS.md with --write
        return subprocess.run([sys.executable, str(HERE / "rates.py"), *(["--quick"] if args.quick else []),
                               *(["--write"] if args.write else [])], cwd=ROOT).returncode
    if args.only == "ttr":  # likewise
        return subprocess.run([sys.executable, str(HERE / "ttr.py"),
                               *(["--sizes", "60,800", "--rounds", "1"] if args.quick else []),
                               *(["--write"] if args.write else [])], cwd=ROOT).returncode
    inputs = gen_data.paths(args.rows, args.xlsx_rows)
    if not all(p.is_file() for p in inputs.values()):
        # in a child process: this one stays small (see Measured.maxrss_mb)
        subprocess.run([sys.executable, str(HERE / "gen_data.py"), "--rows", str(args.rows), "--xlsx-rows",
                        str(args.xlsx_rows)], check=True, timeout=900, cwd=ROOT)
    scenarios: list[Scenario] = []
    sheet: list[SheetRow] | None = None
    if args.only in (None, "send"):
        if not args.no_command:
            warm_prefect(inputs, log)
        for latency in args.latency:
            for conc in args.concurrency:
                # the diagnostic contenders at the smallest concurrency only (they cost time, not insight, twice)
                scenarios.append(send_scenario(latency, conc, inputs, args.rows,
                                               diagnostics=args.diagnostics and conc == min(args.concurrency),
                                               command=not args.no_command, log=log, rounds=args.rounds))
        if args.jitter and args.latency and max(args.latency) > 0:
            # the same mean latency, varied per request as on a real network: with a constant latency every
            # request of a wide concurrency comes back at once, and the simulator's own work on each wave
            # adds to every request's latency (bench/README.md)
            scenarios.append(send_scenario(max(args.latency), max(args.concurrency), inputs, args.rows,
                                           diagnostics=False, command=not args.no_command, log=log,
                                           jitter_ms=args.jitter, informative_httpx=False))
    if args.only in (None, "sheet"):
        sheet = sheet_scenario(inputs, args.xlsx_rows, args.repeat, log)
    profiles = profile_runs(scenarios, sheet, inputs, args.profile, log) if args.profile != "never" else []
    meta.update(load_end=loadavg(), elapsed=time.perf_counter() - t_start, code_end=code_fingerprint())
    if meta["code_end"] != meta["code"]:
        log("\nnote: flows/ or mappings/ changed while the benchmark ran; it measured the snapshot taken at the start")
    parts = render(args, scenarios, sheet, profiles, inputs, meta)
    if args.only is None:
        parts["bigchange"] = bigchange_lookups(log).rstrip("\n")
    log("\n" + "=" * 100 + "\n")
    for name in SECTIONS:
        if name in parts:
            log(parts[name] + "\n")
            if args.write:  # only this part, between its markers: the others stay as they were
                begin, end = markers(name)
                splice(f"{begin}\n{parts[name]}\n{end}", begin, end)
    if args.write:
        log(f"\nwrote {', '.join(n for n in SECTIONS if n in parts)} in {RESULTS_MD.relative_to(ROOT)}")
    if args.only is None:  # these two print and splice their own parts (their --write)
        log(rates_section(log, args.quick, args.write))
        log(ttr_section(log, args.quick, args.write))
    return 0


if __name__ == "__main__":
    sys.exit(main())
