"""The Prefect flow ``import_sheet``: orchestration only, around flows.engine.run.run_import.

One task reads, maps and validates the sheet; engine.run_import runs the import, each chunk of
rows sent as a task (never a task per row: the local server manages about 100 task runs a
second); the results workbook is written by run_import, also if the run is interrupted. A markdown
artifact summarises the run (counts, what to do next, the results workbook's absolute path). Flow
parameters are plain strings and numbers so the flow can be deployed and scheduled as it is.

``booking-import run`` uses this flow only when a Prefect server is configured (or with --prefect);
otherwise it calls engine.run_import itself (flows/cli/entry.py).
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .prefect_env import apply_defaults

apply_defaults()

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from prefect.states import Failed

from .engine.plan import Plan, PreparedRow, prepare
from .engine.rerun import Rerun, load_rerun
from .engine.run import UNSET, ImportRun, RunOptions, run_import
from .errors import ImporterError, RowsNeedAttention, UsageError
from .outcomes import Status
from .terminal import attention_lines, stop_reason
from .workbooks.results import next_command

__all__ = ["Hooks", "final_problems", "flow_run_name", "hooks", "import_sheet", "run_import_sheet", "summary_markdown"]


@dataclass
class Hooks:
    """In-process extras a caller can attach (flow parameters must stay serialisable)."""

    progress: Callable[[ImportRun], None] | None = None
    on_run: Callable[[ImportRun], None] | None = None  # called once the run exists (CLI keeps it for Ctrl-C)
    transport: object | None = None  # tests may send through an aiohttp connector (flows/http/client.py)
    #: a plan the caller already prepared from the same sheet, mapping and worksheet (the CLI checks the
    #: input before Prefect starts); the prepare task then hands it on instead of reading the sheet again
    plan: Plan | None = None
    #: called with the flow run's UI address once the flow runs, when a Prefect server is configured
    on_flow_run: Callable[[str], None] | None = None


#: no default (a shared mutable Hooks would be every context's): ``hooks.get(None)`` is None when nobody set it
hooks: contextvars.ContextVar[Hooks] = contextvars.ContextVar("booking_importer_hooks")

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
    """engine.run_import's ``send_chunk``: each chunk is a Prefect task run; its counts go to the UI's Logs."""
    logger = get_run_logger()
    if number == 0:
        logger.info("sending %d rows to %s in %d chunk(s), %d request(s) at once", sum(map(len, chunks)),
                    run.base_url, len(chunks), run.concurrency)
    counts = await send_chunk(run, Opaque(chunks), number)
    logger.info("chunk %d of %d sent: %s", number + 1, len(chunks),
                ", ".join(f"{c} {s}" for s, c in counts.items() if c) or "no rows")
    return counts


def flow_run_name() -> str:
    """The flow run's name in the Prefect UI: the mapping and the file, e.g. ``jicoo: bookings.xlsx``
    (``rerun: bookings.results-....xlsx`` for a rerun, whose mapping the workbook remembers)."""
    params = flow_run.parameters or {}
    sheet = Path(str(params.get("sheet") or "?")).name
    mapping = params.get("mapping")
    what = Path(str(mapping)).stem if mapping else ("rerun" if params.get("rerun") else "import")
    if params.get("rerun") and mapping:
        what = f"rerun {what}"
    return f"{what}: {sheet}"[:100]


def final_problems(run: ImportRun) -> list[str]:
    """Why the run must end Failed (so automations fire), or nothing: rows failed or unknown, or a stop
    (refused credentials, an unreachable provider). invalid and rejected rows are the sheet's to fix: Completed."""
    counts = run.counts()
    problems = []
    stop = stop_reason(run)
    if stop is not None:
        reason, first, skipped, refused = stop
        problems.append(f"{'credentials refused' if refused else 'stopped'}: {reason} (nothing sent from sheet row "
                        f"{first} on, {skipped} rows not sent)")
    for status in ("failed", "unknown"):
        if counts.get(status):
            problems.append(f"{counts[status]} {status}")
    return problems


def summary_markdown(run: ImportRun, sheet: str, rerun: bool) -> str:
    """The run's artifact: counts, why it failed if it did, what to do next, and the results workbook's absolute
    path."""
    counts = run.counts()
    results = Path(run.results_path).resolve() if run.results_path else None
    lines = [f"# {'Rerun of' if rerun else 'Import of'} {Path(sheet).name} with {run.plan.mapping_path.name}", "",
             f"{run.total} rows, provider **{run.plan.mapping.provider}** at {run.base_url}.", "",
             "| status | rows |", "|---|---:|"]
    lines += [f"| {s} | {n} |" for s, n in counts.items() if n]
    lines += ["", f"**Results workbook:** `{results}`" if results else "No results workbook was written.", ""]
    attention = [line for line in attention_lines(run, counts) if not line.startswith("next: ")]
    if attention:
        lines += ["## Needs attention", ""] + [f"- {line.strip()}" for line in attention] + [""]
    if results is not None:
        lines += ["## What to do next", ""]
        steps = next_command(results, run.summary(), {Status(s): n for s, n in counts.items()})
        for sentence, command in steps:
            if sentence:
                lines.append(f"- {sentence}")
            if command:
                lines += ["", "  ```", f"  {command}", "  ```", ""]
    return "\n".join(lines).rstrip() + "\n"


async def run_import_sheet(**parameters: object) -> dict:
    """Call the flow and return its result dict, also when it ended Failed on purpose (rows failed or unknown,
    refused credentials): callers that report to a person (the CLI, the demo, the inbox) read the counts."""
    try:
        return await import_sheet(**parameters)
    except RowsNeedAttention as exc:
        return exc.result


@flow(name="import_sheet", persist_result=False, log_prints=False, flow_run_name=flow_run_name)
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
    h = hooks.get(None) or Hooks()
    logger = get_run_logger()
    if h.on_flow_run is not None:
        url = _flow_run_url()
        if url:
            h.on_flow_run(url)
    again: Rerun | None = read_rerun(sheet, mapping, ledger, out).value if rerun else None
    if again is not None:
        plan, ledger, out = again.plan, again.ledger_url, str(again.out)
    elif mapping is None:
        raise UsageError("import_sheet needs a mapping (only a rerun of a results workbook remembers its own)")
    else:
        given = h.plan if h.plan is not None and Path(h.plan.sheet.path) == Path(sheet) else None
        plan: Plan = prepare_rows(sheet, mapping, sheet_name, Opaque(given)).value
    invalid = sum(1 for r in plan.rows if not r.is_valid)
    logger.info("read %d rows from %s with %s: %d valid, %d invalid", len(plan.rows), Path(sheet).name,
                plan.mapping_path.name, len(plan.rows) - invalid, invalid)
    options = RunOptions(concurrency=concurrency, rate=UNSET if rate is None else (rate or None), ledger_url=ledger,
                         out=Path(out) if out else None, transport=h.transport, resend_unknown=resend_unknown,
                         progress=h.progress,
                         settled=again.settled if again else None, describe=again.describe if again else None)
    try:
        result = await run_import(plan, options, send_chunk=_chunk_as_task, chunk_size=chunk_size,
                                  wait_callbacks=wait_callbacks, callback_port=callback_port, on_run=h.on_run)
    except ImporterError as exc:  # a refusal at login or lookups: nothing was sent (the CLI prints one line)
        logger.error("nothing was sent: %s", exc)
        raise
    run, path = result.run, str(result.results)
    assert run is not None
    counts = run.counts()
    problems = final_problems(run)
    if problems and problems[0].startswith(("credentials refused", "stopped")):
        logger.error("the run stopped sending: %s", problems[0])
    logger.info("rows: %s; results workbook: %s", ", ".join(f"{n} {s}" for s, n in counts.items() if n),
                Path(path).resolve())
    await acreate_markdown_artifact(
        key=f"{plan.mapping.provider.replace('_', '-')}-{'rerun' if rerun else 'import'}-summary",
        markdown=summary_markdown(run, sheet, rerun),
        description=f"{Path(sheet).name} with {plan.mapping_path.name}: {run.total} rows",
    )
    value = {**result.as_dict(), "flow_run_id": flow_run.id}
    if problems:  # Failed, not Completed, so automations fire; a state, not an exception: no traceback in the logs
        message = f"{Path(sheet).name}: needs attention: {'; '.join(problems)}; results: {Path(path).resolve()}"
        return Failed(message=message, data=RowsNeedAttention(message, value))
    return value


def _flow_run_url() -> str | None:
    """The flow run's address in the Prefect UI, when a Prefect server is configured (not the temporary one)."""
    if not PREFECT_API_URL.value():
        return None
    try:  # the UI's route (prefect.utilities.urls); prefect.runtime.flow_run.ui_url gives /flow-runs/..., a 404
        ui = PREFECT_UI_URL.value()
        return f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None
    except Exception:  # the address is a convenience: never fail a run for it
        return None
