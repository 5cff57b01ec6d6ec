"""An upload's rows as the page shows and changes them: the grid's row and counts, the sheet renamed by the
user's column match, passwords dropped after a run, and the combined results workbook after a resend."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ..workbooks.results import write_results
from . import engine_calls
from .store import Upload

__all__ = ["combined_workbook", "counts_view", "forget_secrets", "rebuild", "renamed", "required_columns", "row_view",
           "secret_values"]


def secret_values(mapping: Any) -> list[str]:
    names = [getattr(mapping.connection.auth, "secret", None)]
    return [os.environ[n] for n in names if n and os.environ.get(n)]


def row_view(up: Upload, r: Any) -> dict[str, Any]:
    plan = up.plan
    needed = plan.mapping.columns()
    sensitive = plan.mapping.sensitive_columns()
    idx = {c: plan.sheet.columns.index(c) for c in needed}
    cell_problems: dict[str, list[str]] = {}
    row_problems: list[str] = []
    for p in r.problems:
        cols = [c for c in (p.column or "").split(" + ") if c in idx]
        if cols:
            for c in cols:
                cell_problems.setdefault(c, []).append(p.message)
        else:
            row_problems.append(str(p))
    cells = []
    for c in needed:
        v = plan.sheet.rows[r.index][idx[c]]
        cells.append(dict(column=c, value="" if v is None else str(v), sensitive=c in sensitive,
                          problems=cell_problems.get(c, []), j=needed.index(c)))
    outcome = up.outcomes.get(r.index)
    return dict(index=r.index, line=r.line, key=r.key_text, valid=r.is_valid, cells=cells,
                problems=row_problems, excluded=r.index in up.excluded, outcome=outcome,
                editable=outcome is None or outcome.status.value in ("invalid", "rejected", "failed"))


def counts_view(up: Upload) -> dict[str, int]:
    rows = up.plan.rows
    return dict(total=len(rows), ready=sum(r.is_valid and r.index not in up.excluded for r in rows),
                fix=sum(not r.is_valid and r.index not in up.excluded for r in rows), excluded=len(up.excluded))


def required_columns(mapping: Any) -> set[str]:
    """Columns without which rows can never be valid: the key and the columns of required fields."""
    out = set(mapping.key)
    for f in mapping.fields.values():
        if f.required:
            out.update(f.columns())
    return out


def renamed(sheet: Any, match: dict[str, str | None]) -> Any:
    """The sheet with each matched column named as the mapping names it; a needed column left unmatched
    becomes an empty column, so the mapping's own rules (required or not) judge it."""
    back = {sheet_col: needed for needed, sheet_col in match.items() if sheet_col}
    taken = set(match)
    columns = []
    for c in sheet.columns:
        if c in back:
            columns.append(back[c])
        elif c in taken:  # a sheet column named like a needed column the user matched elsewhere
            columns.append(f"{c} (not used)")
        else:
            columns.append(c)
    missing = [n for n, c in match.items() if not c]
    rows = [list(r) + [None] * len(missing) for r in sheet.rows]
    return dataclasses.replace(sheet, columns=columns + missing, rows=rows)


def forget_secrets(up: Upload) -> None:
    """After a run, sensitive cells (passwords) are dropped on the server: a row sent again needs them typed again."""
    sensitive = up.plan.mapping.sensitive_columns()
    if not sensitive:
        return
    for c in sensitive:
        if c in up.sheet.columns:
            j = up.sheet.columns.index(c)
            for row in up.sheet.rows:
                row[j] = None
    plan = up.plan
    up.plan = engine_calls.validate(plan.mapping, plan.mapping_path, up.sheet)


def combined_workbook(up: Upload, out: Path, run: Any) -> Path:
    """After sending fixed rows again: one workbook with every row's latest status (the CLI's writer)."""
    indexes = [i for i in range(len(up.sheet.rows)) if i not in up.excluded]
    summary = dict(run.summary()) if run is not None else {}
    summary["rows"] = len(indexes)
    summary["web import"] = f"{up.file_name}, runs {', '.join(up.run_ids)}"
    return write_results(out, columns=up.sheet.columns, rows=[up.sheet.rows[i] for i in indexes],
                         line_numbers=[up.sheet.line_numbers[i] for i in indexes],
                         outcomes=[up.outcomes.get(i) for i in indexes], summary=summary,
                         masked_columns=up.plan.mapping.sensitive_columns())


def rebuild(up: Upload, mapping: Any, mapping_path: Path) -> None:
    """An upload read back after a restart: its sheet from the stored file, renamed by the user's match, with
    the cells the user fixed, checked again; after a run its passwords are dropped, as they were."""
    sheet = engine_calls.read(up.path, mapping)
    if up.state == "matching" or not up.match:
        up.sheet = sheet
        return
    up.sheet = renamed(sheet, up.match)
    for index, cells in up.cells.items():
        for column, value in cells.items():
            up.sheet.rows[index][up.sheet.columns.index(column)] = value
    up.plan = engine_calls.validate(mapping, mapping_path, up.sheet)
    if up.outcomes:
        forget_secrets(up)
