"""Read a CSV or Excel sheet into text-first rows: :func:`read_sheet` and :func:`list_sheets`.

Every cell comes back as one of the :data:`Cell` types, never as a float:

=========================  ===========================================================
in the file                in :attr:`Sheet.rows`
=========================  ===========================================================
text (CSV: every field)    the same ``str``, exactly as typed (``"0612…"``, ``"NA"``)
Excel number               text without a spurious ``.0``: ``5`` -> ``"5"``, ``5.5`` -> ``"5.5"``
                           (at most 15 significant digits: Excel's own precision)
Excel boolean              ``"TRUE"`` / ``"FALSE"``
Excel date / date-time     ``datetime.date`` (time part 00:00) / ``datetime.datetime``
Excel time                 ``datetime.time`` (a duration over 24 h: text such as ``"25:30:00"``)
empty cell, CSV ``""``     ``None`` (Excel error cells such as ``#N/A`` also read as empty)
=========================  ===========================================================

The header is the first row with a non-blank cell; names are trimmed. When the caller names the
columns it expects (``expect``: the mapping's columns) and a later row among the first
:data:`HEADER_SCAN_ROWS` holds more of them, that row is the header and the rows above it are
titles (a note in :attr:`Sheet.notes` says so); ``header_row`` names it outright. Fully blank
rows are skipped, but :attr:`Sheet.line_numbers` keeps the row number a person sees in Excel
(for a CSV: the record's row as Excel shows the file, so a quoted cell holding a line break does
not shift the rows after it, and a ``sep=;`` first line is not counted), so messages can point
at the right place.

In .xlsx/.xlsm workbooks a number cell whose number format pads it with zeros or literal
characters (``000000``, Excel's Zip Code ``00000``, ``000-00-0000``) reads as the text the sheet
shows (``"000123"``), and a date-time cell whose format shows a time reads as a
``datetime.datetime`` even at exactly midnight (calamine alone gives a ``date`` then).

Text built from file content (column names, sheet names) is escaped and capped in messages
(:func:`shown`): a garbage file never prints control bytes, NULs or megabyte-long lines.

Excel files are read with python-calamine directly (the engine pandas uses for
``read_excel(engine="calamine")``): it is faster than going through a DataFrame, and the cell
conversion happens in one pass. CSV files are decoded here (UTF-8 with or without BOM, else
cp1252) and parsed by pandas' C engine with an explicit delimiter.
"""
from __future__ import annotations

import os
from pathlib import Path

from flows.errors import InputError
from flows.workbooks.cells import Cell
from flows.workbooks.csv_reader import _read_csv
from flows.workbooks.excel_reader import (
    _CFB_MAGIC,
    _ZIP_MAGIC,
    _ZIP_SUFFIXES,
    _describe_content,
    _head,
    _open_workbook,
    _read_excel,
    _worksheet_names,
)
from flows.workbooks.sheet_rows import HEADER_SCAN_ROWS, Sheet, column_letter, shown, shown_list

__all__ = [
    "CSV_SUFFIXES",
    "EXCEL_SUFFIXES",
    "HEADER_SCAN_ROWS",
    "SUPPORTED_SUFFIXES",
    "Cell",
    "Sheet",
    "column_letter",
    "list_sheets",
    "read_sheet",
    "shown",
    "shown_list",
]


#: delimited text files (the delimiter is detected unless given)
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
#: workbooks read by calamine
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + EXCEL_SUFFIXES

# --------------------------------------------------------------------------- public entry points


def read_sheet(
    path: str | os.PathLike[str],
    *,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    expect: list[str] | None = None,
) -> Sheet:
    """Read a CSV/TSV or Excel/ODS file into a :class:`Sheet`.

    ``sheet`` picks a worksheet by name (default: the first visible one); it is ignored for CSV
    files, which hold a single table. ``encoding`` and ``delimiter`` force those CSV settings
    instead of detecting them. ``header_row`` is the row number (as Excel shows it) of the header;
    without it, ``expect`` (the column names the caller needs) lets the reader skip title rows
    above the header and tell a wrong mapping from a missing sheet.
    Every problem raises :class:`InputError` with a one-line message.
    """
    p = _check_path(path)
    if header_row is not None and (isinstance(header_row, bool) or not isinstance(header_row, int) or header_row < 1):
        raise InputError(f"header_row must be a row number of 1 or more, not {header_row!r}")
    if p.suffix.lower() in CSV_SUFFIXES:
        return _read_csv(p, encoding=encoding, delimiter=delimiter, header_row=header_row, expect=expect)
    return _read_excel(p, sheet, header_row=header_row, expect=expect)


def list_sheets(path: str | os.PathLike[str]) -> list[str]:
    """The worksheet names of a workbook, in tab order (chart sheets left out); ``[]`` for CSV."""
    p = _check_path(path)
    if p.suffix.lower() in CSV_SUFFIXES:
        return []
    with _open_workbook(p) as wb:
        return _worksheet_names(wb)


# --------------------------------------------------------------------------- path checks


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        hint = f" (the folder {p.parent} does not exist either)" if not p.parent.exists() else ""
        raise InputError(f"{p}: file not found{hint}; check the path and the spelling")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a file: give the path of a .csv or .xlsx file inside it")
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = suffix or "(no extension)"
        raise InputError(
            f"{p}: unsupported file type {shown}; use one of {', '.join(SUPPORTED_SUFFIXES)} "
            f"(save the sheet from Excel as .xlsx or CSV)"
        )
    try:
        size = p.stat().st_size
        head = _head(p)
    except OSError as exc:
        raise InputError(f"{p} cannot be opened ({exc.strerror or exc}); check its permissions") from None
    if size == 0:
        raise InputError(f"{p} is empty (0 bytes); export the sheet again")
    if suffix in _ZIP_SUFFIXES and head.startswith(_CFB_MAGIC):
        raise InputError(f"{p} is password-protected or encrypted: save an unprotected copy and use that")
    if suffix in _ZIP_SUFFIXES and not head.startswith(_ZIP_MAGIC):
        raise InputError(
            f"{p} is not a valid {suffix} workbook ({_describe_content(head)}); "
            f"open it in Excel and save it again as {suffix}"
        )
    if suffix == ".xls" and not head.startswith((_CFB_MAGIC, _ZIP_MAGIC)):  # a renamed .xlsx is read as one
        raise InputError(
            f"{p} is not a real .xls workbook ({_describe_content(head)}); open it in Excel and save it as .xlsx"
        )
    return p
