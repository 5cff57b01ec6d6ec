"""Reading a results workbook back: the one reader ``rerun`` and ``status`` use, and a DataFrame view.

:func:`load_results` reads the ``Results`` sheet the way every sheet is read
(:func:`~flows.workbooks.sheets.read_sheet`: calamine, text-first cells, the row numbers a person
sees), so a cell an analyst edited by hand reads as it would in any input sheet, and the
Summary's run details (:func:`read_summary`). It is as fast as going through
``pandas.read_excel(engine="calamine")`` and then turning the frame's cells back into sheet cells,
which ``status`` did (measured on 50,000 rows: 2.4-2.7 s against 2.3-2.8 s of CPU), and it needs
no second conversion. :func:`read_results` gives the same workbook as a DataFrame with native cell
types, for analysis in pandas and for the tests.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import python_calamine

from flows.errors import InputError
from flows.workbooks.results_layout import RESULT_COLUMNS, RESULTS_SHEET, SUMMARY_SHEET
from flows.workbooks.sheets import Sheet, list_sheets, read_sheet
from flows.workbooks.summary_sheet import summary_pairs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ResultsWorkbook", "load_results", "read_results", "read_summary"]


@dataclass
class ResultsWorkbook:
    """A results workbook as read back: its ``Results`` sheet (every column, result columns included,
    in the order they are on the sheet) and its Summary's run details as text."""

    sheet: Sheet
    summary: dict[str, str]


def _checked(path: str | os.PathLike[str]) -> Path:
    """The path of a workbook with both sheets; InputError (one line, what to do) otherwise."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: results workbook not found; check the path")
    sheets = list_sheets(p)
    if RESULTS_SHEET not in sheets or SUMMARY_SHEET not in sheets:
        raise InputError(f"{p} is not a results workbook written by booking-import (it has no "
                         f"{RESULTS_SHEET!r} and {SUMMARY_SHEET!r} sheets; found: {', '.join(sheets) or 'none'}); "
                         f"give the workbook a run wrote, or import a sheet with `booking-import run`")
    return p


def read_summary(path: str | os.PathLike[str]) -> dict[str, str]:
    """The Summary sheet's key/value pairs as text (see :func:`summary_pairs`); InputError when the file
    is not a results workbook."""
    p = _checked(path)
    try:
        with python_calamine.CalamineWorkbook.from_path(str(p)) as wb:
            raw = wb.get_sheet_by_name(SUMMARY_SHEET).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{p} cannot be read as a workbook ({reason}); it may be corrupt: write it again") from None
    return summary_pairs(raw)


def load_results(path: str | os.PathLike[str]) -> ResultsWorkbook:
    """The ``Results`` sheet and the Summary's run details of a results workbook."""
    summary = read_summary(path)
    return ResultsWorkbook(read_sheet(path, sheet=RESULTS_SHEET), summary)


def read_results(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The ``Results`` sheet as a DataFrame (native cell types, blanks as NaN; input columns first, then
    :data:`RESULT_COLUMNS`) and the Summary's run details (see :func:`summary_pairs`) as text."""
    import pandas as pd  # for start-up speed: a run writes results workbooks, only analysis reads frames

    summary = read_summary(path)
    p = Path(path)
    try:
        results = pd.read_excel(p, sheet_name=RESULTS_SHEET, engine="calamine", dtype=object,
                                keep_default_na=False, na_values=[""])
    except Exception as exc:  # calamine's errors are not ValueError/OSError subclasses
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{p} cannot be read as a workbook ({reason}); it may be corrupt: write it again") from None
    order = [c for c in results.columns if c not in RESULT_COLUMNS]
    order += [c for c in RESULT_COLUMNS if c in results.columns]
    return results[order], summary
