"""The contenders, one per process: ``python bench/workers.py '<json config>'``.

Each prints one line ``RESULT {json}`` on stdout and exits. bench/run.py starts them, one at a
time, so that every figure (time, CPU, peak RSS) belongs to that contender alone. Only the part
named in each docstring is timed; set-up (imports, reading payloads, ``prepare()``) is not.

Send contenders take ``url`` (a simulator on 127.0.0.1), ``concurrency`` and ``payloads`` or
``sheet``; sheet contenders take ``xlsx`` and ``repeat`` (best of). ``profile`` (a path) runs
the timed part once under the wall-clock sampler (bench/sampler.py) and writes its JSON there.
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sampler import Sampler  # noqa: E402  (bench/sampler.py)

ROOT = HERE.parent
#: bench/run.py points this at its snapshot of the code (see run.py, snapshot_code)
MAPPING = Path(os.environ.get("BENCH_MAPPING") or ROOT / "mappings" / "jicoo.yaml")
API_KEY_HEADER = "X-Jicoo-Api-Key"
CPU = resource.RUSAGE_SELF


def _cpu() -> float:
    ru = resource.getrusage(CPU)
    return ru.ru_utime + ru.ru_stime


def _loopback(url: str) -> str:
    if not url.startswith("http://127.0.0.1:"):
        raise SystemExit(f"refusing to send anywhere but 127.0.0.1: {url}")
    return url.rstrip("/")


def _load_payloads(path: str) -> list[bytes]:
    with open(path, "rb") as fh:
        return [line.rstrip(b"\n") for line in fh if line.strip()]


def _timed_async(make: Callable[[], Awaitable[Any]], profile: str | None) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of ``asyncio.run(make())``; sampled when ``profile`` is a path."""
    sampler = Sampler().start() if profile else None
    cpu0, t0 = _cpu(), time.perf_counter()
    result = asyncio.run(make())
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    if sampler is not None:
        sampler.stop().dump(profile)
    return wall, cpu, result


async def _drain(queue: list, concurrency: int, one: Callable[[Any], Awaitable[int]]) -> Counter:
    """N workers pop from a shared list (a bounded loop: each item once) and count statuses."""
    statuses: Counter = Counter()
    queue.reverse()

    async def worker() -> None:
        while queue:
            statuses[await one(queue.pop())] += 1

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(queue)))))
    return statuses


# --- send contenders --------------------------------------------------------------------------


def send_aiohttp(cfg: dict) -> dict:
    """Bare aiohttp: one ClientSession, N workers posting the pre-encoded JSON bodies."""
    import aiohttp

    url = _loopback(cfg["url"]) + "/v1/bookings"
    bodies = _load_payloads(cfg["payloads"])
    n = cfg["concurrency"]
    headers = {API_KEY_HEADER: cfg["api_key"], "Content-Type": "application/json", "Accept": "application/json"}

    async def main() -> Counter:
        connector = aiohttp.TCPConnector(limit=n, limit_per_host=n)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            async def one(body: bytes) -> int:
                async with session.post(url, data=body) as resp:
                    await resp.read()
                    return resp.status

            return await _drain(list(bodies), n, one)

    wall, cpu, statuses = _timed_async(main, cfg.get("profile"))
    return {"rows": len(bodies), "wall": wall, "cpu": cpu, "statuses": dict(statuses)}


def send_httpx_aiohttp(cfg: dict) -> dict:
    """Bare httpx over httpx_aiohttp.AiohttpTransport, same loop shape and bodies."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    base = _loopback(cfg["url"]) + "/v1"
    bodies = _load_payloads(cfg["payloads"])
    n = cfg["concurrency"]
    headers = {API_KEY_HEADER: cfg["api_key"], "Content-Type": "application/json", "Accept": "application/json"}

    async def main() -> Counter:
        transport = AiohttpTransport(limits=httpx.Limits(max_connections=n, max_keepalive_connections=n))
        async with httpx.AsyncClient(base_url=base, transport=transport, headers=headers, timeout=30) as client:
            async def one(body: bytes) -> int:
                resp = await client.post("/bookings", content=body)
                return resp.status_code

            return await _drain(list(bodies), n, one)

    wall, cpu, statuses = _timed_async(main, cfg.get("profile"))
    return {"rows": len(bodies), "wall": wall, "cpu": cpu, "statuses": dict(statuses)}


def _env(cfg: dict) -> dict[str, str]:
    return {"JICOO_BASE_URL": _loopback(cfg["url"]) + "/v1", "JICOO_API_KEY": cfg["api_key"]}


def send_sender(cfg: dict) -> dict:
    """The engine's HTTP layer alone: flows.http.sender.Sender.call() per prepared row (no ledger, no outcomes).

    Diagnostic: the step between the bare httpx loop and the full engine.
    """
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions

    plan = prepare(cfg["sheet"], MAPPING)
    payloads = [r.payload for r in plan.valid]
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        run = ImportRun(plan, RunOptions(env=_env(cfg), ledger_url=f"sqlite:///{tmp}/ledger.sqlite", rate=None,
                                         concurrency=cfg["concurrency"]))
        path = plan.mapping.request.path

        async def main() -> Counter:
            async with run.sender() as sender:
                async def one(payload: dict) -> int:
                    result = await sender.call("POST", path, json_body=payload)
                    return result.status_code or 0

                return await _drain(list(payloads), cfg["concurrency"], one)

        wall, cpu, statuses = _timed_async(main, cfg.get("profile"))
        run.close()
    return {"rows": len(payloads), "wall": wall, "cpu": cpu, "statuses": dict(statuses)}


def send_engine(cfg: dict) -> dict:
    """prepare() (not timed), then engine.send_pending(ImportRun(...)) timed: HTTP + ledger + outcomes.

    ``ledger`` is ``file`` (a fresh SQLite file in a temporary folder, as the CLI uses) or
    ``memory`` (SQLite ``:memory:``, a diagnostic that removes the disk from the ledger's cost).
    """
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions, send_pending

    plan = prepare(cfg["sheet"], MAPPING)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        ledger = ":memory:" if cfg.get("ledger") == "memory" else f"sqlite:///{tmp}/ledger.sqlite"
        run = ImportRun(plan, RunOptions(env=_env(cfg), ledger_url=ledger, rate=None, concurrency=cfg["concurrency"]))
        wall, cpu, _ = _timed_async(lambda: send_pending(run), cfg.get("profile"))
        counts = {k: v for k, v in run.counts().items() if v}
        statuses = Counter(o.http_status for o in run.outcomes if o is not None)
        run.close()
    return {"rows": len(plan.rows), "wall": wall, "cpu": cpu, "statuses": {str(k): v for k, v in statuses.items()},
            "counts": counts}


# --- sheet contenders -------------------------------------------------------------------------


def _best_of(fn: Callable[[], Any], repeat: int, profile: str | None,
             inspect: Callable[[Any], dict] | None = None) -> dict:
    """Best of ``repeat`` timed calls; ``inspect`` reads facts off the last result (untimed)."""
    import gc

    if profile:
        gc.collect()
        sampler = Sampler().start()
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
        sampler.stop().dump(profile)
        return {"times": [wall], "cpu_times": []}
    times, cpus, facts = [], [], {}
    for i in range(repeat):
        gc.collect()
        cpu0, t0 = _cpu(), time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - cpu0)
        if inspect is not None and i == repeat - 1:
            facts = inspect(result)
        del result
    return {"times": times, "cpu_times": cpus, **facts}


def read_pandas(cfg: dict) -> dict:
    """Bare ``pandas.read_excel(path, engine="calamine")`` (``text`` variant: dtype=object, keep_default_na=False)."""
    import pandas as pd

    kwargs: dict[str, Any] = {"engine": "calamine"}
    if cfg.get("variant") == "text":
        kwargs.update(dtype=object, keep_default_na=False, na_values=[""])
    return _best_of(lambda: pd.read_excel(cfg["xlsx"], **kwargs), cfg["repeat"], cfg.get("profile"),
                    lambda df: {"rows": len(df)})


def read_sheet(cfg: dict) -> dict:
    """flows.workbooks.sheets.read_sheet alone (the read step inside prepare)."""
    from flows.workbooks.sheets import read_sheet as rs

    return _best_of(lambda: rs(cfg["xlsx"], sheet="Bookings"), cfg["repeat"], cfg.get("profile"),
                    lambda sheet: {"rows": len(sheet.rows)})


def map_validate(cfg: dict) -> dict:
    """prepare() with the sheet already read: mapping + contract validation + duplicate keys only.

    The sheet is read once, untimed, and handed to prepare() in place of reading it again.
    """
    import flows.engine.plan as engine
    from flows.workbooks.sheets import read_sheet as rs

    sheet = rs(cfg["xlsx"], sheet="Bookings")
    engine.read_sheet = lambda *a, **k: sheet  # this process only; the engine's code is unchanged
    return _best_of(lambda: engine.prepare(cfg["xlsx"], MAPPING), cfg["repeat"], cfg.get("profile"))


def prepare_full(cfg: dict) -> dict:
    """flows.engine.plan.prepare(xlsx, mappings/jicoo.yaml): read + map + validate."""
    from flows.engine.plan import prepare

    return _best_of(lambda: prepare(cfg["xlsx"], MAPPING), cfg["repeat"], cfg.get("profile"),
                    lambda plan: {"rows": len(plan.rows), "invalid": sum(r.payload is None for r in plan.rows)})


KINDS: dict[str, Callable[[dict], dict]] = {
    "aiohttp": send_aiohttp,
    "httpx-aiohttp": send_httpx_aiohttp,
    "sender": send_sender,
    "engine": send_engine,
    "read-pandas": read_pandas,
    "read-sheet": read_sheet,
    "map-validate": map_validate,
    "prepare": prepare_full,
}


def read_results_summary(cfg: dict) -> dict:
    """Not a contender: the command's results workbook, read back (Summary duration, status counts)."""
    from flows.workbooks.results import read_results

    results, summary = read_results(cfg["path"])
    return {"rows": len(results), "statuses": {str(k): int(v) for k, v in results["_status"].value_counts().items()},
            "duration": float(summary.get("sending (s)") or summary["duration (s)"]), "summary": summary}


KINDS["read-results"] = read_results_summary


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: the high-water mark of its address space since exec).

    ``getrusage().ru_maxrss`` would do on a fresh process, but on Linux it keeps the parent's
    RSS at fork time, which can be larger than a small contender's own peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[1])
    result = KINDS[cfg["kind"]](cfg)
    result["peak_rss_mb"] = peak_rss_mb()
    if "flows" in sys.modules:  # which copy of the code ran (bench/run.py checks it is its snapshot)
        result["flows"] = sys.modules["flows"].__file__
    result["pid"] = os.getpid()
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
