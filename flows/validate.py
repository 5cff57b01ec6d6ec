"""``booking-import validate``: everything a run checks, without network or credentials."""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from .engine import default_results_path, prepare
from .errors import InputError
from .outcomes import Outcome, Status
from .results import check_writable, write_results

__all__ = ["validate_sheet", "require_rows"]


def require_rows(plan: Any, what: str | None = None) -> None:
    """A sheet with a header and no rows is an input error (exit 2), not a successful import of nothing."""
    if not plan.rows:
        where = f" (worksheet {plan.sheet.sheet_name!r})" if plan.sheet.sheet_name else ""
        raise InputError(f"{what or Path(plan.sheet.path).name}{where} has a header but no rows: there is nothing to "
                         f"import; check that you gave the right file and worksheet (--sheet)")


def validate_sheet(sheet: Path, mapping: Path, *, sheet_name: str | None = None, out: Path | None = None) -> int:
    """Write a results workbook with invalid rows marked; exit code 0 when every row is valid, else 1."""
    started = dt.datetime.now().astimezone()
    plan = prepare(sheet, mapping, sheet_name=sheet_name)
    require_rows(plan)
    path = check_writable(out or default_results_path(plan.sheet.path), source=plan.sheet.path)
    outcomes = []
    for r in plan.rows:
        if r.payload is None:
            outcomes.append(Outcome(Status.INVALID, "; ".join(map(str, r.problems))))
        else:
            outcomes.append(Outcome(Status.SKIPPED, "valid; not sent (validate only)"))
    invalid = sum(o.status is Status.INVALID for o in outcomes)
    ended = dt.datetime.now().astimezone()
    summary = {
        "input file": str(plan.sheet.path),
        "worksheet": plan.sheet.sheet_name or "",
        "mapping": str(plan.mapping_path),
        "provider": plan.mapping.provider,
        "mode": "validate (nothing sent)",
        "started": started.isoformat(timespec="seconds"),
        "ended": ended.isoformat(timespec="seconds"),
        "duration (s)": round((ended - started).total_seconds(), 3),
        "rows": len(plan.rows),
    }
    written = write_results(path, columns=plan.sheet.columns, rows=plan.sheet.rows, line_numbers=plan.sheet.line_numbers,
                            outcomes=outcomes, summary=summary, masked_columns=plan.mapping.sensitive_columns())
    print(f"{len(plan.rows)} rows checked: {len(plan.rows) - invalid} valid, {invalid} invalid")
    for r in plan.rows:
        if r.payload is None:
            print(f"  row {r.line}: " + "; ".join(map(str, r.problems)), file=sys.stderr)
    print(f"results: {written}")
    return 0 if invalid == 0 else 1
