"""How a run ended: status counts, the results workbook's Summary sheet, the RunResult."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..outcomes import Outcome, Status
from ..redact import redact_text
from ..workbooks.results import input_number_formats, write_results
from .plan import Plan, by_column

if TYPE_CHECKING:  # types only: the run module imports this one
    from .run import ImportRun

__all__ = [
    "RunResult",
    "count_statuses",
    "default_results_path",
    "summarize",
    "validated",
]


def count_statuses(outcomes: Iterable[Outcome | None]) -> dict[str, int]:
    counts = Counter(o.status.value if o is not None else Status.SKIPPED.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in Status}


def summarize(plan: Plan, started: dt.datetime, ended: dt.datetime, *, run: ImportRun | None = None,
              mode: str | None = None) -> dict[str, object]:
    """The results workbook's Summary sheet: what was imported, when, and (for a run) how it went."""
    sheet = plan.sheet
    info: dict[str, object] = {"input file": str(sheet.path), "worksheet": sheet.sheet_name or "",
                               "mapping": str(plan.mapping_path), "provider": plan.mapping.provider}
    if run is not None:
        info.update({"base URL": run.base_url, "run id": run.run_id})
    if mode is not None:
        info["mode"] = mode
    info.update({"started": started.isoformat(timespec="seconds"), "ended": ended.isoformat(timespec="seconds"),
                 "duration (s)": round((ended - started).total_seconds(), 3)})
    if run is None:
        info["rows"] = len(plan.rows)
        return info
    sending = run._sending_seconds()
    info.update({
        "sending (s)": round(sending, 3),
        "rows sent per second": round(run.rows_sent / sending) if sending else 0,
        "rows": run.total,
        "concurrency": run.concurrency,
        # no published rate: what adapting did (issue 16), not "none"
        "rate limit (req/s)": run.rate or (run._sender.limiter.describe() if run._sender else "none"),
        "requests sent": run._sender.requests_sent if run._sender else 0,
        "ledger": str(run.ledger.path),
        "ledger id": run.ledger.ledger_id,
        "interrupted": "yes" if run.interrupted else "no",
    })
    if run.held_elsewhere:  # two runs at once: the rows' messages name the run holding each
        info["rows another run was sending (not sent)"] = run.held_elsewhere
    if run.taken_over:
        info["rows taken over from a run that was gone"] = run.taken_over
    if sheet.encoding:
        info["csv encoding"] = sheet.encoding
        info["csv delimiter"] = {"\t": "tab"}.get(sheet.delimiter or "", sheet.delimiter or "")
    if "callback_url" in run.run_values:  # the token is a credential: never shown
        url = run.run_values["callback_url"]
        info["callback URL"] = redact_text(url, [run._callback_token or ""]) if url else "none (no callbacks this run)"
        info["confirmed by callback"] = run.callbacks_confirmed
    if run.options.describe is not None:
        info.update(run.options.describe(run))
    return info


@dataclass(repr=False)
class RunResult:
    """How an import ended: counts by status, the results workbook, and the run (None when validating).

    Its repr is short on purpose: ``asyncio.run`` on Python 3.11 formats the repr of its task, result
    included, when it puts the SIGINT handler back (the ``signal`` module's enum lookup of the old handler
    fails and builds its message with ``%r``). The dataclass repr of a million outcomes was a 250 MB string
    built and thrown away after the workbook was written, the peak of a million-row ``validate``."""

    counts: dict[str, int]
    results: Path
    summary: dict[str, object]
    outcomes: list[Outcome | None]
    run: ImportRun | None = None

    def __repr__(self) -> str:
        return (f"RunResult(counts={self.counts!r}, results={str(self.results)!r}, rows={len(self.outcomes)}, "
                f"run_id={self.run_id!r})")

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run is not None else None

    @property
    def ok(self) -> bool:
        """Every row created, accepted or skipped."""
        return all(o is None or o.ok for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (the Prefect flow's and the inbox's result)."""
        return {"counts": self.counts, "results": str(self.results), "run_id": self.run_id, "summary": self.summary}


def default_results_path(sheet_path: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("out") / f"{Path(sheet_path).stem}.results-{stamp}.xlsx"


def validated(plan: Plan, out: Path | None = None) -> RunResult:
    """Everything a run checks, without network, credentials or ledger: a workbook with invalid rows marked."""
    started = dt.datetime.now().astimezone()
    valid = Outcome(Status.SKIPPED, "valid; not sent (validate only)")  # one for every valid row: nothing changes it
    outcomes: list[Outcome | None] = [
        # column_messages: marks the cells
        valid if r.is_valid
        else Outcome(Status.INVALID, "; ".join(map(str, r.problems)), column_messages=by_column(r.problems))
        for r in plan.rows]
    path = Path(out or default_results_path(plan.sheet.path))
    summary = summarize(plan, started, dt.datetime.now().astimezone(), mode="validate (nothing sent)")
    sheet = plan.sheet
    written = write_results(path, columns=sheet.columns, rows=sheet.rows, line_numbers=sheet.line_numbers,
                            outcomes=outcomes, summary=summary, masked_columns=plan.mapping.sensitive_columns(),
                            number_formats=input_number_formats(sheet.path, sheet.sheet_name, sheet.header_line))
    return RunResult(count_statuses(outcomes), written, summary, outcomes)
