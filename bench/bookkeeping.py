"""The engine's own CPU a row, without the network: ``send_pending`` with a sender that answers at once.

    .venv/bin/python bench/bookkeeping.py                 # 10,000 rows, 5 runs, concurrency 8
    .venv/bin/python bench/bookkeeping.py --rows 2000 --repeat 9

At 0 ms latency the send phase is a race for CPU between the client and the simulator on the same two
cores, so its ratio against the bare loop moves by ±0.1 between rounds here (bench/RESULTS.md). This
isolates the part of the client's CPU that is the engine's own: everything ``send_pending`` does but
HTTP, i.e. reconciling with the ledger and claiming the rows, marking them "sending" ahead, building
and hashing each payload, turning each answer into an outcome and writing it, with a real SQLite
ledger in a temporary folder. The sender's ``call`` answers 201 with a booking id after one turn of
the event loop. Each run is a fresh plan, ledger and event loop in this process; the figure is CPU
time (user + system) per row, median and minimum of the runs, which moves by a few µs, not tens.

Measured for issue 16 (target 6): 130 µs a row before the payload was built once a send and the
ledger key worked out once (main at 999d529), 73 µs after (bench/README.md, "The engine's own CPU").
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import gen_data  # noqa: E402  (bench/gen_data.py)

from flows.engine.plan import prepare  # noqa: E402
from flows.engine.run import ImportRun, RunOptions, send_pending  # noqa: E402
from flows.http.client import Reply  # noqa: E402
from flows.http.sender import Action, CallResult  # noqa: E402

MAPPING = ROOT / "mappings" / "jicoo.yaml"


class InstantSender:
    """Stands in for :class:`flows.http.sender.Sender`: every call is answered 201 with a new booking id
    after one turn of the event loop (so the workers interleave as they do against a server)."""

    stopped: str | None = None

    def __init__(self) -> None:
        self.calls = 0

    async def __aenter__(self) -> InstantSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def call(self, method: str, path: str, **kw: Any) -> CallResult:
        self.calls += 1
        await asyncio.sleep(0)
        body = b'{"uid":"bk_%d","status":"confirmed"}' % self.calls
        return CallResult(Action.SUCCESS, Reply(201, {}, body), 1)


def one_run(sheet: Path, concurrency: int) -> float:
    """CPU seconds a row of one ``send_pending`` of ``sheet`` (a fresh plan and ledger)."""
    plan = prepare(sheet, MAPPING)
    with tempfile.TemporaryDirectory(prefix="bench-bookkeeping-") as tmp:
        env = {"JICOO_BASE_URL": "http://127.0.0.1:9/v1", "JICOO_API_KEY": "not-sent"}
        run = ImportRun(plan, RunOptions(env=env, ledger_url=f"sqlite:///{tmp}/ledger.sqlite", rate=None,
                                         concurrency=concurrency))
        run.sender = InstantSender  # type: ignore[method-assign,assignment]  # this run only: no network
        try:
            cpu = time.process_time()
            asyncio.run(send_pending(run))
            cpu = time.process_time() - cpu
            created = run.counts()["created"]
        finally:
            run.close()
    if created != len(plan.rows):
        raise SystemExit(f"only {created} of {len(plan.rows)} rows were created: {run.counts()}")
    return cpu / len(plan.rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000, help="rows of the generated Jicoo sheet (default 10,000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs; the median and the minimum are shown (default 5)")
    ap.add_argument("--concurrency", type=int, default=8, help="the run's concurrency (default 8, the mapping's)")
    args = ap.parse_args(argv)
    sheet = gen_data.ensure_csv(args.rows)["csv"]
    per_row = [one_run(sheet, args.concurrency) * 1e6 for _ in range(args.repeat)]
    print(f"engine's own CPU a row ({args.rows:,} rows, concurrency {args.concurrency}, {args.repeat} runs): "
          f"median {statistics.median(per_row):.1f} µs, min {min(per_row):.1f} µs "
          f"({', '.join(f'{x:.0f}' for x in per_row)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
