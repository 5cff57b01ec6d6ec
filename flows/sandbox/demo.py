"""``booking-import demo``: the bundled sample sheets imported into in-process simulators.

No credentials and no network: each provider's simulator listens on 127.0.0.1 and the run is
pointed at it through ``<PROVIDER>_BASE_URL`` and a sandbox key. The demo imports each sheet,
then imports it again to show that a rerun books nothing twice.
"""
from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError
from ..mapping.catalog import ROOT, Demo, demos
from . import SIMULATORS, SimulatorServer, simulator_for

__all__ = ["DEMOS", "Demo", "project_root", "run_demo", "sandbox_env"]


#: one demo per mapping with a sample sheet (flows.mapping.catalog.demos: derived from mappings/ and sample_data/)
DEMOS = demos()


def project_root() -> Path:
    here = ROOT
    if (here / "mappings").is_dir() and (here / "sample_data").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "mappings").is_dir() and (cwd / "sample_data").is_dir():
        return cwd
    raise UsageError("the demo needs the project's mappings/ and sample_data/ folders: run it from a checkout of booking-importer")


def sandbox_env(provider: str, url: str) -> dict[str, str]:
    """The environment that points a run at the provider's simulator serving at ``url``."""
    sim = simulator_for(provider)
    if sim is None:
        raise UsageError(f"no simulator for {provider!r} in flows/sandbox/ (known: {', '.join(SIMULATORS)})")
    return sim.sandbox_env(url)


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


def run_demo(out_dir: Path, demos: tuple[Demo, ...] = DEMOS, stream=sys.stdout) -> int:
    from ..import_sheet import Hooks, hooks, run_import_sheet
    from ..prefect_env import quiet_prefect
    from ..terminal import Progress, print_summary

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
                holder: dict = {}
                progress = Progress(enabled=sys.stderr.isatty())  # a bar on a terminal; no per-10% lines in logs
                token = hooks.set(Hooks(progress=progress.update, on_run=lambda r: holder.setdefault("run", r)))
                try:
                    with quiet_prefect(), progress:
                        asyncio.run(run_import_sheet(sheet=str(root / demo.sheet), mapping=str(root / demo.mapping),
                                                 out=str(out_dir / f"{Path(demo.mapping).stem}-results-run{attempt}.xlsx"),
                                                 ledger=str(ledger), wait_callbacks=demo.wait_callbacks))
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
