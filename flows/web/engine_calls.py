"""The web page's only door into the engine: reading, mapping/validating and booking go through here.

It calls what the CLI calls: ``read_sheet`` with the mapping's source settings and ``map_rows`` (the
same as ``flows.engine.plan.prepare``), ``require_rows``, and for booking the Prefect flow ``import_sheet``
(a flow run on the server PREFECT_API_URL names: the web's own local server, flows/prefect_server.py,
or one of the operator's), else, with ``--no-prefect``, ``engine.run_import`` directly: the one import
sequence either way. The ledger claims and records every row, so nothing is booked twice.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.plan import Plan, map_rows
from ..engine.run import ImportRun, RunOptions, run_import
from ..engine.validate import require_rows
from ..errors import ImporterError, RowsNeedAttention
from ..ledger.database import parameter_url
from ..mapping.model import MappingFile, load_mapping
from ..workbooks.sheets import Sheet, read_sheet

__all__ = ["Booking", "flow_run_url", "load", "prefect_configured", "read", "start_booking", "validate"]


def load(mapping_path: Path) -> MappingFile:
    return load_mapping(mapping_path)


def read(path: Path, mapping: MappingFile) -> Sheet:
    """The sheet as the CLI reads it (same settings, same one-line InputError for an unreadable file)."""
    src = mapping.source
    return read_sheet(path, sheet=src.sheet, encoding=src.encoding, delimiter=src.delimiter,
                      header_row=src.header_row, expect=mapping.columns())


def validate(mapping: MappingFile, mapping_path: Path, sheet: Sheet) -> Plan:
    """Every row mapped and checked exactly as ``booking-import validate`` does."""
    plan = map_rows(mapping, mapping_path, sheet)
    require_rows(plan, "the uploaded sheet")
    return plan


def prefect_configured() -> bool:
    """Whether a Prefect server is configured (PREFECT_API_URL in the environment or the Prefect profile)."""
    from prefect.settings import PREFECT_API_URL  # here for start-up speed (importing Prefect takes 1-2 s)

    return bool(PREFECT_API_URL.value())


def flow_run_url(flow_run_id: str) -> str | None:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL  # here for start-up speed (see prefect_configured)

    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


@dataclasses.dataclass
class Booking:
    """A booking going on in a background thread (it goes on when the browser leaves)."""

    thread: threading.Thread
    run: ImportRun | None = None
    result: dict | None = None
    error: str | None = None
    flow_run_id: str | None = None
    #: the flow run's address in the Prefect UI, known as soon as the flow runs (None when booked directly)
    flow_run_url: str | None = None

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def start_booking(plan: Plan, *, ledger_url: str, out: Path, on_run: Callable[[ImportRun], None] | None = None,
                  on_done: Callable[[Booking], None] | None = None, transport: Any = None,
                  wait_callbacks: float = 10.0, use_prefect: bool | None = None, name: str | None = None) -> Booking:
    """Book ``plan``'s valid rows in a thread; ``on_done`` is called when it ends (results written or failed).

    ``use_prefect``: as a flow run of ``import_sheet`` (named ``name`` in the Prefect UI) or directly;
    None: as a flow run when a Prefect server is configured."""
    booking = Booking(thread=threading.Thread(target=lambda: None))
    if use_prefect is None:
        use_prefect = prefect_configured()

    def started(run: ImportRun) -> None:
        booking.run = run
        with contextlib.suppress(Exception):
            from prefect.runtime import flow_run  # here for start-up speed (see prefect_configured)

            booking.flow_run_id = flow_run.id
        if on_run is not None:
            on_run(run)

    def work() -> None:
        try:
            if use_prefect:
                booking.result = _by_flow(plan, ledger_url, out, started, transport, wait_callbacks, booking, name)
            else:
                booking.result = asyncio.run(_direct(plan, ledger_url, out, started, transport, wait_callbacks))
        except ImporterError as exc:
            booking.error = str(exc)
        except Exception as exc:
            booking.error = f"the import stopped: {type(exc).__name__}: {exc}"
        finally:
            if on_done is not None:
                on_done(booking)

    context = contextvars.copy_context()  # the caller's settings (a Prefect profile or test harness) go along
    booking.thread = threading.Thread(target=context.run, args=(work,), name="web-booking", daemon=False)
    booking.thread.start()
    return booking


def _by_flow(plan: Plan, ledger_url: str, out: Path, started: Callable, transport: Any, wait: float,
             booking: Booking, name: str | None) -> dict:
    """A flow run of ``import_sheet`` (the CLI's flow), named for the upload rather than its private file name."""
    # imported here for start-up speed: Prefect takes 1-2 s to import, and `web --no-prefect` never needs it
    from ..import_sheet import Hooks, hooks, import_sheet

    def linked(url: str) -> None:
        booking.flow_run_url = url

    flow = import_sheet.with_options(flow_run_name=name) if name else import_sheet
    token = hooks.set(Hooks(on_run=started, transport=transport, plan=plan, on_flow_run=linked))
    try:
        return asyncio.run(flow(sheet=str(plan.sheet.path), mapping=str(plan.mapping_path), out=str(out),
                                ledger=parameter_url(ledger_url), wait_callbacks=wait))
    except RowsNeedAttention as exc:  # ended Failed on purpose (rows failed or unknown): the counts are the result
        return exc.result
    finally:
        hooks.reset(token)


async def _direct(plan: Plan, ledger_url: str, out: Path, started: Callable, transport: Any, wait: float) -> dict:
    """The engine without Prefect (no server configured): engine.run_import, the sequence the flow drives."""
    options = RunOptions(ledger_url=ledger_url, out=out, transport=transport)
    return (await run_import(plan, options, wait_callbacks=wait, on_run=started)).as_dict()
