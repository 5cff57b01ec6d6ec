"""BigChange name lookups cost a constant per run, not per row: measured against the simulator.

    .venv/bin/python bench/bigchange_lookups.py                      # 100 and 2,000 rows, 0 and 20 ms latency
    .venv/bin/python bench/bigchange_lookups.py --rows 100 2000 10000 --latency-ms 0 --repeat 5

For each sheet size it times, in this process, against a simulator in another process
(``python -m flows sandbox bigchange --port 0``, so client and server do not share a GIL):

* login: the OAuth2 token call;
* fetch: the five lookup lists (job types, contacts in two pages of 1,000, people, resources,
  custom field definitions), i.e. what :meth:`flows.engine.run.ImportRun.resolve_lookups` fetches;
* remap: mapping and validating every row again with the fetched tables (the per-row part);
* run: the whole import (login, lookups, create + schedule of every row), and its time per row.

The sheet is the sample's valid rows repeated with fresh references (CSV). Medians of --repeat runs.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.engine.lookups import fetch_lookup  # noqa: E402
from flows.engine.plan import map_rows, prepare  # noqa: E402
from flows.engine.run import ImportRun, RunOptions, send_pending  # noqa: E402
from flows.sandbox.demo import sandbox_env  # noqa: E402

MAPPING = ROOT / "mappings" / "bigchange.yaml"
SKIP = {"BC-27005", "BC-27011", "BC-27017", "BC-27023", "BC-27029", "BC-27034", "BC-27040", "BC-27044"}


def _sample_rows() -> tuple[list[str], list[dict]]:
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "sample_data" / "bigchange" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.COLUMNS, [r for r in module.build_rows() if r["Job Ref"] not in SKIP]


def write_sheet(path: Path, rows: int) -> None:
    columns, sample = _sample_rows()
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for i in range(rows):
            row = dict(sample[i % len(sample)], **{"Job Ref": f"BN-{i + 1:06d}"})
            w.writerow([v.strftime("%d/%m/%Y") if isinstance(v, date) else v for v in (row[c] for c in columns)])


class Simulator:
    def __init__(self, latency_ms: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flows", "sandbox", "bigchange", "--port", "0",
                                      "--latency-ms", str(latency_ms)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # "bigchange simulator listening on http://127.0.0.1:NNNN ..."
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = m.group(1)

    def reset(self) -> None:
        httpx.post(self.url + "/_sandbox/reset")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def lookups_once(run: ImportRun) -> tuple[float, float, float, int]:
    """(login s, fetch s, remap s, rows) with a fresh sender, as a run does it."""
    plan = run.plan
    t0 = time.perf_counter()
    sender = run.sender()
    await sender.__aenter__()  # logs in
    t1 = time.perf_counter()
    try:
        tables = {name: await fetch_lookup(sender, name, spec) for name, spec in plan.mapping.lookups.items()}
    finally:
        await sender.__aexit__(None, None, None)
    t2 = time.perf_counter()
    remapped = map_rows(plan.mapping, plan.mapping_path, plan.sheet, tables)
    t3 = time.perf_counter()
    assert all(r.payload is not None for r in remapped.rows), "every benchmark row should resolve"
    return t1 - t0, t2 - t1, t3 - t2, len(remapped.rows)


def measure(sim: Simulator, sheet: Path, repeat: int, tmp: Path) -> dict[str, float]:
    env = sandbox_env("bigchange", sim.url)
    tmp = Path(tempfile.mkdtemp(dir=tmp))  # fresh ledgers: a reused one would (rightly) skip rows already created
    login, fetch, remap, total = [], [], [], []
    for i in range(repeat):
        sim.reset()
        run = ImportRun(prepare(sheet, MAPPING),
                        RunOptions(env=env, ledger_url=f"sqlite:///{tmp / f'{i}-a.sqlite'}", rate=None))
        try:
            a, b, c, rows = asyncio.run(lookups_once(run))
        finally:
            run.close()
        login.append(a), fetch.append(b), remap.append(c)
        sim.reset()
        run = ImportRun(prepare(sheet, MAPPING),
                        RunOptions(env=env, ledger_url=f"sqlite:///{tmp / f'{i}-b.sqlite'}", rate=None))
        t = time.perf_counter()
        try:
            asyncio.run(send_pending(run))
        finally:
            run.close()
        total.append(time.perf_counter() - t)
        created = sum(o is not None and o.status.value == "created" for o in run.outcomes)
        assert created == rows, f"{created} of {rows} rows created"
    med = statistics.median
    return {"rows": rows, "login_ms": med(login) * 1e3, "fetch_ms": med(fetch) * 1e3, "remap_ms": med(remap) * 1e3,
            "run_s": med(total)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0, 20])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print("| latency | rows | login ms | fetch lists ms | remap rows ms | remap µs/row | whole run s | run ms/row "
          "| lookups share |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for latency in args.latency_ms:
            sim = Simulator(latency)
            try:
                for n in args.rows:
                    sheet = tmp / f"jobs-{n}.csv"
                    write_sheet(sheet, n)
                    m = measure(sim, sheet, args.repeat, tmp)
                    share = (m["fetch_ms"] + m["remap_ms"]) / (m["run_s"] * 1e3)
                    print(f"| {latency:g} ms | {n} | {m['login_ms']:.1f} | {m['fetch_ms']:.1f} | {m['remap_ms']:.1f} "
                          f"| {m['remap_ms'] * 1e3 / n:.1f} | {m['run_s']:.2f} | {m['run_s'] * 1e3 / n:.2f} "
                          f"| {share:.1%} |", flush=True)
            finally:
                sim.close()


if __name__ == "__main__":
    main()
