"""``booking-import demo``: the bundled sample sheets imported into in-process simulators.

No credentials and no network: each provider's simulator listens on 127.0.0.1 and the run is
pointed at it through ``<PROVIDER>_BASE_URL`` and a sandbox key. The demo imports each sheet,
then imports it again to show that a rerun books nothing twice.
"""
from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from .import_sheet import Hooks, hooks, run_import_sheet
from .prefect_env import quiet_prefect
from .sandbox import SIMULATORS, SimulatorServer
from .sandbox.demo import DEMOS, Demo, project_root, sandbox_env
from .terminal import Progress, print_summary

__all__ = ["run_demo"]


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _keep(holder: dict[str, Any], run: Any) -> None:
    """The first run the flow reports (the hook's on_run)."""
    holder.setdefault("run", run)


def run_demo(out_dir: Path, demos: tuple[Demo, ...] = DEMOS, stream: TextIO = sys.stdout) -> int:
    """Import each demo's sheet twice into its simulator; the summaries go to ``stream``."""
    root = project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = out_dir / "demo-ledger.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    worst = 0
    for demo in demos:
        sim_cls = SIMULATORS.get(demo.provider)
        if sim_cls is None:  # a provider described by its mapping alone: no simulator to show it against
            print(f"== {demo.provider}: no simulator in flows/sandbox/; skipped", file=stream)
            continue
        sim = sim_cls()
        with SimulatorServer(sim) as url, _environ(sandbox_env(demo.provider, url)):
            print(f"== {demo.provider}: importing {demo.sheet} into the simulator at {url}", file=stream)
            for attempt, label in ((1, "first run"), (2, "same sheet again: nothing is booked twice")):
                print(f"-- {label}", file=stream, flush=True)
                holder: dict[str, Any] = {}
                progress = Progress(enabled=sys.stderr.isatty())  # a bar on a terminal; no per-10% lines in logs
                token = hooks.set(Hooks(progress=progress.update, on_run=functools.partial(_keep, holder)))
                out = out_dir / f"{Path(demo.mapping).stem}-results-run{attempt}.xlsx"
                try:
                    with quiet_prefect(), progress:
                        asyncio.run(run_import_sheet(sheet=str(root / demo.sheet), mapping=str(root / demo.mapping),
                                                     out=str(out), ledger=str(ledger),
                                                     wait_callbacks=demo.wait_callbacks))
                finally:
                    hooks.reset(token)
                run = holder["run"]
                print_summary(run, stream)
                if attempt == 1:
                    worst = max(worst, 0 if all(o.ok for o in run.outcomes) else 1)
            print(f"   the simulator now holds {len(sim.bookings)} bookings", file=stream)
    print(f"\nResults workbooks are in {out_dir}/. The rows that need attention in each first run are the "
          "sample's deliberate mistakes (bad e-mails, unknown names, impossible dates, a double-booked slot, "
          "windows with no free slot...): each sample_data/<provider>/make_sample.py lists them.", file=stream)
    return 0
