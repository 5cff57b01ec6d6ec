"""A `run` of a sheet in its own process, for the two-runs-at-once tests (tests/test_two_runs.py).

``python -m tests.two_runs_support SHEET MAPPING LEDGER OUT READY [WAIT ...]``: reads and maps the
sheet, opens the run (its lease recorded in the ledger), writes the file READY, waits until every
WAIT file exists (a barrier, so two processes start sending together), then sends every row, writes
the results workbook to OUT and prints one JSON line: run id, status counts, rows held by another
run, and whether the run's exit code would be 0. The provider's address and key come from the
environment, as for `booking-import run`.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    sheet, mapping, ledger, out, ready, *wait = argv
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions, send_pending

    plan = prepare(sheet, mapping)
    run = ImportRun(plan, RunOptions(ledger_url=ledger, out=Path(out), rate=None, concurrency=8))
    try:
        Path(ready).write_text(run.run_id)
        deadline = time.monotonic() + 120
        while not all(Path(w).exists() for w in wait):
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up waiting for {wait}")
            time.sleep(0.005)
        asyncio.run(send_pending(run))
        run.write_results()
    finally:
        run.close()
    print(json.dumps({"run_id": run.run_id, "counts": run.counts(), "held": run.held_elsewhere,
                      "taken_over": run.taken_over, "ok": all(o is not None and o.ok for o in run.outcomes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
