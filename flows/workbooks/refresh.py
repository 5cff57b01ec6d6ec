"""``booking-import status``: a results workbook brought up to date from the ledger.

A run writes its workbook when it ends, but some rows settle later: Systems X Bridge answers
200 ``{hash}`` (the row is ``accepted``) and confirms by a callback to ``return_url`` whenever
its import finishes (flows/http/callbacks.py records it in the ledger). :func:`refresh_results`
reads the workbook back (:func:`flows.workbooks.results_reader.load_results`), finds each ``accepted`` or
``unknown`` row in the ledger by its key, and writes the workbook again
(:func:`flows.workbooks.results.write_results`) with the new status, provider id and message of the rows
whose state changed. Everything else is kept as it was, including the Summary's run details;
the Summary gains ``refreshed`` (when) and ``refreshed rows`` (how many changed).
"""
from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..ledger.database import is_postgres_url
from ..ledger.ledger import Ledger, open_ledger, settled_since
from ..mapping.model import load_mapping
from ..mapping.transforms import to_text
from ..outcomes import Outcome, Status
from .results import RESULT_COLUMNS, RESULTS_SHEET, input_number_formats, write_results
from .results_reader import load_results
from .sheets import Cell

__all__ = ["REFRESHED_STATUSES", "Refresh", "refresh_results"]

#: rows whose final state may still arrive: the only ones a refresh changes
REFRESHED_STATUSES = frozenset({Status.ACCEPTED, Status.UNKNOWN})
_STATUS_WORDS = {s.value for s in Status} | {"total"}


@dataclass
class Refresh:
    path: Path
    rows: int
    changed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (old status, new status) -> rows
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def refresh_results(results: Path | str, *, out: Path | str | None = None, ledger_url: str | None = None,
                    mapping: Path | str | None = None) -> Refresh:
    """Rewrite ``results`` (or write ``out``) with the ledger's current state of each pending row."""
    results = Path(results)
    book = load_results(results)
    sheet, summary = book.sheet, book.summary
    mapping_path = Path(mapping or summary.get("mapping") or "")
    if not mapping_path.is_file():
        named = mapping_path if mapping or summary.get("mapping") else "not named in the Summary"
        raise InputError(f"{results}: the mapping {'given' if mapping else 'the run used'} ({named}) "
                         f"was not found; give it with --mapping")
    m = load_mapping(mapping_path)
    ledger_path = ledger_url or summary.get("ledger") or ""
    if not is_postgres_url(ledger_path) and not Path(ledger_path.removeprefix("sqlite:///")).is_file():
        # never create an empty ledger file by mistake
        which = "given" if ledger_url else "the run used"
        raise InputError(f"{results}: the ledger {which} ({ledger_path or 'not named in the Summary'}) was not "
                         f"found; give the run's ledger with --ledger")
    missing = [c for c in [*m.key, *RESULT_COLUMNS] if c not in sheet.columns]
    if missing:
        raise InputError(f"{results} lacks the column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(repr, missing))}; "
                         f"give the workbook `booking-import run` wrote for {mapping_path.name}")

    columns = [c for c in sheet.columns if c not in RESULT_COLUMNS]
    at = [sheet.columns.index(c) for c in columns]
    result_at = [sheet.columns.index(c) for c in RESULT_COLUMNS[1:]]
    row_at = sheet.columns.index("_row")
    rows = [[cells[j] for j in at] for cells in sheet.rows]
    outcomes = [_outcome(*(cells[j] for j in result_at)) for cells in sheet.rows]
    lines = [int(_number(cells[row_at] or "0")) for cells in sheet.rows]
    key_at = [columns.index(c) for c in m.key]
    keys = [Ledger.key_text((to_text(row[i]) or "").strip() for i in key_at) for row in rows]

    report = Refresh(Path(out or results), len(rows))
    ledger = open_ledger(ledger_path)
    try:
        waiting = {i: (keys[i], o) for i, o in enumerate(outcomes) if o.status in REFRESHED_STATUSES}
        changed = settled_since(ledger, m.scope, waiting)
    finally:
        ledger.close()
    for i, outcome in changed.items():
        report.changed[(outcomes[i].status.value, outcome.status.value)] += 1
        outcomes[i] = outcome

    info: dict[str, object] = {k: _summary_value(v) for k, v in summary.items() if k not in _STATUS_WORDS}
    info["refreshed"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    info["refreshed rows"] = sum(report.changed.values())
    write_results(report.path, columns=columns, rows=rows, line_numbers=lines, outcomes=outcomes, summary=info,
                  masked_columns=m.sensitive_columns(), number_formats=input_number_formats(results, RESULTS_SHEET))
    report.outcomes = outcomes
    return report


def _outcome(status: Cell, pid: Cell, http: Cell, message: Cell, attempts: Cell) -> Outcome:
    try:
        st = Status(str(status))
    except ValueError:
        st = Status.SKIPPED
    return Outcome(st, "" if message is None else str(message), provider_id=None if pid is None else to_text(pid),
                   http_status=None if http is None else int(_number(http)), attempts=int(_number(attempts or "0")))


def _number(cell: Cell) -> float:
    """A number the results sheet holds, read back as its text (``"3"``); a date or time is no number."""
    if isinstance(cell, str):
        return float(cell)
    raise TypeError(f"float() argument must be a string or a real number, not {type(cell).__name__!r}")


def _summary_value(text: str) -> int | float | str:
    """Numbers the Summary held as numbers come back as numbers; everything else stays text."""
    if re.fullmatch(r"-?(0|[1-9]\d{0,14})", text):
        return int(text)
    if re.fullmatch(r"-?(0|[1-9]\d*)\.\d+", text):
        return float(text)
    return text
