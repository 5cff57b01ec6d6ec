"""``booking-import demo``: the bundled sample sheets imported into in-process simulators.

No credentials and no network: each provider's simulator listens on 127.0.0.1 and the run is
pointed at it through ``<PROVIDER>_BASE_URL`` and a sandbox key. The demo imports each sheet,
then imports it again to show that a rerun books nothing twice.
"""
from __future__ import annotations

import asyncio
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import UsageError

__all__ = ["DEMOS", "run_demo", "sandbox_env", "project_root"]


@dataclass(frozen=True)
class Demo:
    provider: str
    sheet: str
    mapping: str
    #: run a callback receiver in-process and wait up to this long for accepted rows to be confirmed
    wait_callbacks: float = 0.0


DEMOS = (Demo("jicoo", "sample_data/jicoo/bookings.xlsx", "mappings/jicoo.yaml"),
         Demo("bigchange", "sample_data/bigchange/jobs.xlsx", "mappings/bigchange.yaml"),
         Demo("systemsx_bridge", "sample_data/systemsx_bridge/bookings.csv", "mappings/systemsx_bridge.yaml",
              wait_callbacks=10.0),
         Demo("servicemobility", "sample_data/servicemobility/workorders.xlsx", "mappings/servicemobility_workorders.yaml"),
         Demo("servicemobility", "sample_data/servicemobility/followups.xlsx", "mappings/servicemobility_followups.yaml"))


def project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "mappings").is_dir() and (here / "sample_data").is_dir():
        return here
    cwd = Path.cwd()
    if (cwd / "mappings").is_dir() and (cwd / "sample_data").is_dir():
        return cwd
    raise UsageError("the demo needs the project's mappings/ and sample_data/ folders: run it from a checkout of booking-importer")


def sandbox_env(provider: str, url: str) -> dict[str, str]:
    """The environment that points a run at a simulator serving at ``url``."""
    if provider == "jicoo":
        from .sandbox import DEFAULT_API_KEY

        return {"JICOO_BASE_URL": f"{url}/v1", "JICOO_API_KEY": DEFAULT_API_KEY}
    if provider == "bigchange":
        from .sandbox import bigchange as bc

        return {"BIGCHANGE_BASE_URL": f"{url}/v1", "BIGCHANGE_TOKEN_URL": f"{url}{bc.TOKEN_PATH}",
                "BIGCHANGE_CLIENT_ID": bc.DEFAULT_CLIENT_ID, "BIGCHANGE_CLIENT_SECRET": bc.DEFAULT_CLIENT_SECRET,
                "BIGCHANGE_CUSTOMER_ID": bc.DEFAULT_CUSTOMER_ID}
    if provider == "systemsx_bridge":  # the issue names the key SYSTEMSX_API_KEY; URLs follow the provider id
        from .sandbox import DEFAULT_BRIDGE_API_KEY

        return {"SYSTEMSX_BRIDGE_BASE_URL": url, "SYSTEMSX_API_KEY": DEFAULT_BRIDGE_API_KEY}
    if provider == "servicemobility":  # the tenant's root URL: /createjwt and /seiapi/... hang off it
        from .sandbox import servicemobility as sm

        return {"SERVICEMOBILITY_BASE_URL": url, "SERVICEMOBILITY_USERNAME": sm.DEFAULT_USERNAME,
                "SERVICEMOBILITY_PASSWORD": sm.DEFAULT_PASSWORD}
    raise UsageError(f"no sandbox settings for {provider!r}")


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
    from .import_sheet import Hooks, hooks, run_import_sheet
    from .prefect_quiet import quiet_prefect
    from .report import Progress, print_summary
    from .sandbox import SIMULATORS, SimulatorServer

    root = project_root()
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = out_dir / "demo-ledger.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    worst = 0
    for demo in demos:
        sim = SIMULATORS[demo.provider]()
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
