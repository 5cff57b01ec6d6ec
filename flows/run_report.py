"""What a run reports to Prefect, whichever way it is recorded: the problems that end it Failed and its
summary artifact's markdown, and its name. Used by the flow ``import_sheet`` (flows/import_sheet.py) and by
the REST recorder (flows/prefect_record.py); no Prefect import here."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .engine.plan import Plan
from .engine.run import ImportRun
from .outcomes import Status
from .terminal import attention_lines, stop_reason
from .workbooks.results import next_command

__all__ = ["FLOW_DEFAULTS", "SummaryArtifact", "counts_line", "failed_message", "final_problems", "flow_parameters",
           "read_line", "run_name", "summary_artifact", "summary_markdown"]


#: the flow ``import_sheet``'s parameters and their defaults, in its signature's order (tests/test_prefect_record.py
#: checks them against the flow): Prefect's engine stores every parameter, given or defaulted, and so does the
#: REST recorder
FLOW_DEFAULTS: dict[str, object] = {
    "sheet": None, "mapping": None, "out": None, "concurrency": None, "rate": None, "sheet_name": None, "ledger": None,
    "chunk_size": None, "resend_unknown": False, "wait_callbacks": 0.0, "callback_port": 0, "rerun": False,
}


def flow_parameters(**given: object) -> dict[str, object]:
    """The flow run's parameters as Prefect's engine records them: every parameter, the defaults filled in."""
    unknown = set(given) - set(FLOW_DEFAULTS)
    if unknown:
        raise TypeError(f"import_sheet has no parameter(s) {sorted(unknown)}")
    return {**FLOW_DEFAULTS, **given}


def run_name(parameters: Mapping[str, object]) -> str:
    """The flow run's name in the Prefect UI, from the flow's parameters: the mapping and the file, e.g.
    ``jicoo: bookings.xlsx`` (``rerun: bookings.results-....xlsx`` for a rerun, whose mapping the workbook
    remembers)."""
    params = parameters
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


# --- the run's own log lines, the same whichever way it is recorded ------------------------------------------


def read_line(plan: Plan, sheet: str) -> str:
    """The first line: rows read, valid and invalid."""
    invalid = sum(1 for r in plan.rows if not r.is_valid)
    return (f"read {len(plan.rows)} rows from {Path(sheet).name} with {plan.mapping_path.name}: "
            f"{len(plan.rows) - invalid} valid, {invalid} invalid")


def counts_line(run: ImportRun, results: Path | str) -> str:
    """The last line: counts by status and the results workbook."""
    counts = run.counts()
    return (f"rows: {', '.join(f'{n} {s}' for s, n in counts.items() if n)}; results workbook: "
            f"{Path(results).resolve()}")


def failed_message(sheet: str, problems: list[str], results: Path | str) -> str:
    """The Failed state's message (:func:`final_problems` said why)."""
    return f"{Path(sheet).name}: needs attention: {'; '.join(problems)}; results: {Path(results).resolve()}"


class SummaryArtifact(NamedTuple):
    key: str
    markdown: str
    description: str


def summary_artifact(run: ImportRun, sheet: str, rerun: bool) -> SummaryArtifact:
    """The run's markdown artifact: its key (one per provider and kind of run, so the UI keeps its history), the
    markdown (:func:`summary_markdown`) and a one-line description."""
    plan = run.plan
    return SummaryArtifact(
        key=f"{plan.mapping.provider.replace('_', '-')}-{'rerun' if rerun else 'import'}-summary",
        markdown=summary_markdown(run, sheet, rerun),
        description=f"{Path(sheet).name} with {plan.mapping_path.name}: {run.total} rows",
    )
