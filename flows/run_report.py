"""What a run reports to Prefect, whichever way it is recorded: the problems that end it Failed and its
summary artifact's markdown, and its name. Used by the flow ``import_sheet`` (flows/import_sheet.py) and by
the REST recorder (flows/prefect_record.py); no Prefect import here."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .engine.run import ImportRun
from .outcomes import Status
from .terminal import attention_lines, stop_reason
from .workbooks.results import next_command

__all__ = ["final_problems", "run_name", "summary_markdown"]


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
