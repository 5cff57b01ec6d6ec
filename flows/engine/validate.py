"""``booking-import validate``: everything a run checks, without network or credentials."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..outcomes import Status
from ..workbooks.results import check_writable
from .plan import prepare
from .run import RunOptions, run_import
from .summary import default_results_path

__all__ = ["require_rows", "validate_sheet"]


def require_rows(plan: Any, what: str | None = None) -> None:
    """A sheet with a header and no rows is an input error (exit 2), not a successful import of nothing."""
    if not plan.rows:
        where = f" (worksheet {plan.sheet.sheet_name!r})" if plan.sheet.sheet_name else ""
        raise InputError(f"{what or Path(plan.sheet.path).name}{where} has a header but no rows: there is nothing to "
                         f"import; check that you gave the right file and worksheet (--sheet)")


def validate_sheet(sheet: Path, mapping: Path, *, sheet_name: str | None = None, out: Path | None = None) -> int:
    """Write a results workbook with invalid rows marked; exit code 0 when every row is valid, else 1."""
    plan = prepare(sheet, mapping, sheet_name=sheet_name)
    require_rows(plan)
    path = check_writable(out or default_results_path(plan.sheet.path), source=plan.sheet.path)
    result = asyncio.run(run_import(plan, RunOptions(out=path), validate=True))
    invalid = result.counts[Status.INVALID.value]
    print(f"{len(plan.rows)} rows checked: {len(plan.rows) - invalid} valid, {invalid} invalid")
    for r in plan.rows:
        if not r.is_valid:
            print(f"  row {r.line}: " + "; ".join(map(str, r.problems)), file=sys.stderr)
    print(f"results: {result.results}")
    return 0 if invalid == 0 else 1
