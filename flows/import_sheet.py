"""The Prefect flow ``import_sheet``: orchestration only, around flows.engine.run.run_import.

One task reads, maps and validates the sheet; engine.run_import runs the import, each chunk of
rows sent as a task (never a task per row: the local server manages about 100 task runs a
second); the results workbook is written by run_import, also if the run is interrupted. A table artifact summarises
the run. Flow parameters are plain strings and numbers so the flow can be deployed and
scheduled as it is.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .prefect_env import apply_defaults

apply_defaults()

from prefect import flow, task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from .engine.rerun import Rerun, load_rerun
from .engine.run import UNSET, ImportRun, Plan, PreparedRow, RunOptions, prepare, run_import
from .errors import UsageError

__all__ = ["Hooks", "hooks", "import_sheet"]


@dataclass
class Hooks:
    """In-process extras a caller can attach (flow parameters must stay serialisable)."""

    progress: Callable[[ImportRun], None] | None = None
    on_run: Callable[[ImportRun], None] | None = None  # called once the run exists (CLI keeps it for Ctrl-C)
    transport: object | None = None  # tests may inject an httpx transport
    #: a plan the caller already prepared from the same sheet, mapping and worksheet (the CLI checks the
    #: input before Prefect starts); the prepare task then hands it on instead of reading the sheet again
    plan: Plan | None = None


hooks: contextvars.ContextVar[Hooks] = contextvars.ContextVar("booking_importer_hooks", default=Hooks())

class Opaque:
    """Hands a big value (a plan of 100,000 rows, the chunks) to or from a task without Prefect walking
    it: Prefect visits every dataclass, list and dict in task parameters and results, which cost 40 s
    for a 10,000-row run before values travelled in this plain box (bench/RESULTS.md)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


@task(name="prepare-rows", cache_policy=NO_CACHE, persist_result=False)
def prepare_rows(sheet: str, mapping: str, sheet_name: str | None, ready: Opaque | None = None) -> Opaque:
    if ready is not None and ready.value is not None:
        return ready
    return Opaque(prepare(sheet, mapping, sheet_name=sheet_name))


@task(name="read-results-workbook", cache_policy=NO_CACHE, persist_result=False)
def read_rerun(results: str, mapping: str | None, ledger: str | None, out: str | None) -> Opaque:
    return Opaque(load_rerun(results, mapping=mapping, ledger_url=ledger, out=out))


@task(name="send-chunk", cache_policy=NO_CACHE, persist_result=False, task_run_name="send-chunk-{number}")
async def send_chunk(run: ImportRun, chunks: Opaque, number: int) -> dict[str, int]:
    return await run.send(chunks.value[number])


async def _chunk_as_task(run: ImportRun, chunks: list[list[PreparedRow]], number: int) -> dict[str, int]:
    """engine.run_import's ``send_chunk``: each chunk is a Prefect task run."""
    return await send_chunk(run, Opaque(chunks), number)


@flow(name="import_sheet", persist_result=False, log_prints=False)
async def import_sheet(
    sheet: str,
    mapping: str | None = None,
    out: str | None = None,
    concurrency: int | None = None,
    rate: float | None = None,
    sheet_name: str | None = None,
    ledger: str | None = None,
    chunk_size: int | None = None,
    resend_unknown: bool = False,
    wait_callbacks: float = 0.0,
    callback_port: int = 0,
    rerun: bool = False,
) -> dict:
    """Import one sheet: every row ends created, accepted, skipped, invalid, rejected, failed or unknown.

    ``wait_callbacks``: for a mapping with a ``run_value: callback_url`` field, receive the provider's
    callbacks in-process (flows.http.callbacks, on 127.0.0.1:``callback_port``) and wait up to this many
    seconds after sending for accepted rows to be confirmed, before writing the results.

    ``rerun``: ``sheet`` is a results workbook (possibly edited): its mapping and ledger are the ones
    it was written with unless given, and rows are carried over, refused or sent as flows.engine.rerun says."""
    h = hooks.get()
    again: Rerun | None = read_rerun(sheet, mapping, ledger, out).value if rerun else None
    if again is not None:
        plan, ledger, out = again.plan, again.ledger_url, str(again.out)
    elif mapping is None:
        raise UsageError("import_sheet needs a mapping (only a rerun of a results workbook remembers its own)")
    else:
        given = h.plan if h.plan is not None and Path(h.plan.sheet.path) == Path(sheet) else None
        plan: Plan = prepare_rows(sheet, mapping, sheet_name, Opaque(given)).value
    options = RunOptions(concurrency=concurrency, rate=UNSET if rate is None else (rate or None), ledger_url=ledger,
                         out=Path(out) if out else None, transport=h.transport, resend_unknown=resend_unknown,
                         progress=h.progress,
                         settled=again.settled if again else None, describe=again.describe if again else None)
    result = await run_import(plan, options, send_chunk=_chunk_as_task, chunk_size=chunk_size,
                              wait_callbacks=wait_callbacks, callback_port=callback_port, on_run=h.on_run)
    run, path = result.run, str(result.results)
    assert run is not None
    counts = run.counts()
    await acreate_table_artifact(
        key=f"{plan.mapping.provider.replace('_', '-')}-{'rerun' if rerun else 'import'}-summary",
        table=[{"status": s, "rows": n} for s, n in counts.items()],
        description=f"**{Path(sheet).name}** with `{plan.mapping_path.name}`: {run.total} rows. Results: `{path}`",
    )
    return result.as_dict()
