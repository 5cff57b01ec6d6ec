"""The per-row results workbook: :func:`write_results` and :func:`read_results`.

Sheet ``Results`` holds the input columns exactly as read, then one column per
:data:`RESULT_COLUMNS` entry. Rows that did not end ``created`` are filled by status, the header is
bold and frozen, and an autofilter covers the table. Sheet ``Summary`` is a two-column key/value
table (headed ``key``/``value``): the count of every status (all seven, zeros included, keyed by
the status word, then ``total``), then the caller's run details in the order given (dates as ISO
text, numbers as numbers).

Safety: XlsxWriter never turns text into formulas, URLs or numbers here, and text starting with
``= + - @``, tab, CR or NUL gets a quote-prefix style, so it stays text even after a user edits the
cell in Excel. Sensitive columns are masked. The file is written to a temporary name beside the
target and renamed into place, so a crash never leaves a half-written workbook.
"""
from __future__ import annotations

import datetime
import math
import os
import uuid
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import xlsxwriter
from xlsxwriter.exceptions import XlsxFileError
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from flows.errors import ImporterError, InputError
from flows.outcomes import Outcome, Status
from flows.workbooks.sheets import Cell, column_letter

__all__ = [
    "MASK",
    "MESSAGE_LIMIT",
    "NOT_REACHED_MESSAGE",
    "RESULTS_SHEET",
    "RESULT_COLUMNS",
    "STATUS_FILLS",
    "SUMMARY_SHEET",
    "check_writable",
    "read_results",
    "write_results",
]

RESULT_COLUMNS = ["_row", "_status", "_provider_id", "_http_status", "_message", "_attempts"]
RESULTS_SHEET = "Results"
SUMMARY_SHEET = "Summary"
#: what a non-empty value of a masked (sensitive) column is replaced with
MASK = "••••••"
#: ``_message`` is cut to this many characters (Excel shows about 1,000 in a cell anyway)
MESSAGE_LIMIT = 1000
#: row fill per status; ``created`` rows are left plain
STATUS_FILLS: dict[Status, str] = {
    Status.ACCEPTED: "#FFF2CC",
    Status.SKIPPED: "#EDEDED",
    Status.INVALID: "#FFC7CE",
    Status.REJECTED: "#FFC7CE",
    Status.FAILED: "#FFC7CE",
    Status.UNKNOWN: "#FFEB9C",
}
#: the message for a row whose outcome is ``None`` (the run never reached it)
NOT_REACHED_MESSAGE = "not sent: the run stopped before this row"

_FORMULA_TRIGGERS = frozenset("=+-@\t\r\0")
_WIDTH_CAP = 60
_WIDTH_SAMPLE = 1000  # rows looked at to size the columns
_RESULT_WIDTHS = {"_row": 7, "_status": 10, "_provider_id": 16, "_http_status": 13, "_message": 50, "_attempts": 10}
_KINDS = ("text", "quoted", "date", "datetime", "time", "number")
_NUM_FORMATS = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm", "time": "hh:mm"}
_WORKBOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}


def check_writable(path: str | os.PathLike[str], option: str = "--out",
                   source: str | os.PathLike[str] | None = None) -> Path:
    """Refuse (UsageError, exit 2) a results path that could not be written, before anything is sent.

    The check is the write itself: a throwaway file is created (and removed) in the folder the workbook
    would go to, or in the nearest existing folder above it (write_results creates the missing ones),
    so permissions, read-only file systems and ACLs are judged as the operating system judges them."""
    from flows.errors import UsageError

    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {target} is a folder; give a file name, e.g. {target / 'results.xlsx'}")
    if source is not None and target.exists() and target.resolve() == Path(source).resolve():
        raise UsageError(f"{option} {target} is the input sheet itself, which the results would replace; give "
                         f"another file name, e.g. {target.with_name(target.stem + '.results.xlsx')}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {target} cannot be written: {folder} is a file, not a folder; choose another "
                         f"output path")
    try:
        import tempfile

        fd, probe = tempfile.mkstemp(prefix=".booking-import-check-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {target} cannot be written: no file can be created in {folder} "
                         f"({exc.strerror or exc}); choose another output path") from None
    return target


def write_results(
    path: str | os.PathLike[str],
    *,
    columns: list[str],
    rows: list[list[Cell]],
    line_numbers: list[int],
    outcomes: list[Outcome | None],
    summary: Mapping[str, object],
    masked_columns: Collection[str] = (),
) -> Path:
    """Write the results workbook atomically to ``path`` (parent folders created); return the path.

    ``rows``, ``line_numbers`` and ``outcomes`` run in parallel; a ``None`` outcome is written as
    ``skipped`` with :data:`NOT_REACHED_MESSAGE`. Input columns named like a result column (the
    input was itself a results workbook) are left out, since fresh values follow them.
    Raises :class:`ImporterError` when the file cannot be written (e.g. it is open in Excel).
    """
    if not (len(rows) == len(line_numbers) == len(outcomes)):
        raise ValueError(
            f"rows ({len(rows)}), line_numbers ({len(line_numbers)}) and outcomes ({len(outcomes)}) differ in length"
        )
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImporterError(
            f"cannot create the folder {target.parent} ({exc.strerror or exc}); choose another output path"
        ) from None
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp.xlsx")
    try:
        workbook = xlsxwriter.Workbook(str(tmp), _WORKBOOK_OPTIONS)
        formats = _Formats(workbook)
        counts = _write_results_sheet(
            workbook.add_worksheet(RESULTS_SHEET), formats, columns, rows, line_numbers, outcomes, masked_columns
        )
        _write_summary_sheet(workbook.add_worksheet(SUMMARY_SHEET), formats, counts, summary)
        workbook.close()
        os.replace(tmp, target)
    except (OSError, XlsxFileError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise ImporterError(
            f"cannot write the results workbook {target} ({reason}); "
            f"close it if it is open in Excel, or choose another output path"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def read_results(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """The ``Results`` sheet as a DataFrame (native cell types, blanks as NaN) and the ``Summary`` as text."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: results workbook not found; check the path")
    try:
        sheets = pd.read_excel(
            p,
            sheet_name=[RESULTS_SHEET, SUMMARY_SHEET],
            engine="calamine",
            dtype=object,
            keep_default_na=False,
            na_values=[""],
        )
    except ValueError as exc:  # a missing sheet, or a file that is not a workbook
        raise InputError(
            f"{p} is not a results workbook written by this tool ({' '.join(str(exc).split())[:200]}); "
            f"give the file the import wrote"
        ) from None
    except Exception as exc:  # calamine's errors are not ValueError/OSError subclasses
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{p} cannot be read as a workbook ({reason}); it may be corrupt: write it again") from None
    results, summary_df = sheets[RESULTS_SHEET], sheets[SUMMARY_SHEET]
    summary: dict[str, str] = {}
    if summary_df.shape[1] >= 2:
        for key, value in zip(summary_df.iloc[:, 0], summary_df.iloc[:, 1]):
            if not pd.isna(key):
                summary[_summary_text(key)] = _summary_text(value)
    return results, summary


# --------------------------------------------------------------------------- formats


class _Formats:
    """Every format the workbook uses, made once: (fill or None) x cell kind, plus a few extras."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        fills: list[str | None] = [None, *sorted(set(STATUS_FILLS.values()))]
        self.cell: dict[tuple[str | None, str], Format | None] = {}
        for fill in fills:
            for kind in _KINDS:
                props: dict[str, object] = {}
                if fill:
                    props.update(bg_color=fill, pattern=1)
                if kind == "quoted":
                    props["quote_prefix"] = True
                if kind in _NUM_FORMATS:
                    props["num_format"] = _NUM_FORMATS[kind]
                self.cell[(fill, kind)] = workbook.add_format(props) if props else None
        header = {"bold": True, "bottom": 1, "bg_color": "#D9E1F2", "pattern": 1}
        self.header = workbook.add_format(header)
        self.header_quoted = workbook.add_format({**header, "quote_prefix": True})
        self.bold = workbook.add_format({"bold": True})

    def row(self, status: Status) -> _RowStyle:
        """The formats of a row with this status (all ``None`` for an unfilled ``created`` row)."""
        fill = STATUS_FILLS.get(status)
        return _RowStyle(*(self.cell[(fill, kind)] for kind in _KINDS))


class _RowStyle(NamedTuple):
    """One row's formats, one per cell kind (field order = :data:`_KINDS`)."""

    text: Format | None
    quoted: Format | None
    date: Format | None
    datetime: Format | None
    time: Format | None
    number: Format | None

    @property
    def filled(self) -> bool:
        return self.text is not None


# --------------------------------------------------------------------------- Results sheet


def _write_results_sheet(
    ws: Worksheet,
    formats: _Formats,
    columns: list[str],
    rows: list[list[Cell]],
    line_numbers: list[int],
    outcomes: list[Outcome | None],
    masked_columns: Collection[str],
) -> Counter[Status]:
    keep = [j for j, name in enumerate(columns) if name not in RESULT_COLUMNS]
    masked = {i for i, j in enumerate(keep) if columns[j] in set(masked_columns)}
    n_in = len(keep)
    header = [columns[j] for j in keep] + RESULT_COLUMNS
    last_col = len(header) - 1

    _size_columns(ws, header, rows, keep, masked)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, max(len(rows), 1), last_col)
    status_col = n_in + RESULT_COLUMNS.index("_status")
    if rows:
        ws.data_validation(
            1, status_col, len(rows), status_col,
            {"validate": "list", "source": [s.value for s in Status], "error_type": "warning"},
        )
    ws.ignore_errors({"number_stored_as_text": f"A1:{column_letter(last_col)}{len(rows) + 1}"})
    for c, name in enumerate(header):
        ws.write_string(0, c, name, formats.header_quoted if name[:1] in _FORMULA_TRIGGERS else formats.header)

    # bound once: this loop runs for every cell
    write_string, write_number, write_blank = ws.write_string, ws.write_number, ws.write_blank
    triggers = _FORMULA_TRIGGERS
    all_columns = keep == list(range(len(columns)))
    row_formats = {status: formats.row(status) for status in Status}
    counts: Counter[Status] = Counter()
    skipped = Outcome(Status.SKIPPED, NOT_REACHED_MESSAGE)

    for r, (values, line, outcome) in enumerate(zip(rows, line_numbers, outcomes), start=1):
        if outcome is None:
            outcome = skipped
        status = Status(outcome.status)
        counts[status] += 1
        style = row_formats[status]
        f_text, f_quoted, f_number = style.text, style.quoted, style.number
        filled = style.filled  # a filled row gets blank cells too, so the highlight has no gaps
        cells = values if all_columns else [values[j] for j in keep]
        for c, value in enumerate(cells):
            t = type(value)
            if t is str:
                if not value:
                    if filled:
                        write_blank(r, c, None, f_text)
                elif c in masked:
                    write_string(r, c, MASK, f_text)
                else:
                    write_string(r, c, value, f_quoted if value[0] in triggers else f_text)
            elif value is None:
                if filled:
                    write_blank(r, c, None, f_text)
            elif c in masked:
                write_string(r, c, MASK, f_text)
            else:
                _write_other(ws, r, c, value, style)

        c = n_in
        write_number(r, c, line, f_number)
        write_string(r, c + 1, status.value, f_text)
        _write_text(ws, r, c + 2, outcome.provider_id, style)
        if outcome.http_status is not None:
            write_number(r, c + 3, outcome.http_status, f_number)
        elif filled:
            write_blank(r, c + 3, None, f_text)
        message = outcome.message[:MESSAGE_LIMIT] if outcome.message else outcome.message
        _write_text(ws, r, c + 4, message, style)
        write_number(r, c + 5, outcome.attempts, f_number)
    return counts


def _write_text(ws: Worksheet, r: int, c: int, value: object, style: _RowStyle) -> None:
    """Untrusted text (provider ids, messages): quote-prefixed when it could start a formula."""
    text = "" if value is None else str(value)
    if text:
        ws.write_string(r, c, text, style.quoted if text[0] in _FORMULA_TRIGGERS else style.text)
    elif style.filled:
        ws.write_blank(r, c, None, style.text)


def _write_other(ws: Worksheet, r: int, c: int, value: object, style: _RowStyle) -> None:
    """Cells that are not plain text: dates and times as real Excel values, numbers as numbers."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:  # Excel has no time zones: keep the offset visible as text
            _write_text(ws, r, c, value.isoformat(sep=" "), style)
        elif pd.isna(value):  # NaT from a DataFrame
            _write_text(ws, r, c, None, style)
        else:
            ws.write_datetime(r, c, value, style.datetime)
    elif isinstance(value, datetime.date):
        ws.write_datetime(r, c, value, style.date)  # type: ignore[arg-type]  # XlsxWriter takes dates too
    elif isinstance(value, datetime.time):
        if value.tzinfo is not None:
            _write_text(ws, r, c, value.isoformat(), style)
        else:
            ws.write_datetime(r, c, value, style.time)  # type: ignore[arg-type]
    elif isinstance(value, bool):
        ws.write_boolean(r, c, value, style.text)
    elif isinstance(value, (int, float)) and math.isfinite(value):
        ws.write_number(r, c, value, style.number)
    elif isinstance(value, float) and math.isnan(value):  # NaN from a DataFrame: an empty cell
        _write_text(ws, r, c, None, style)
    else:
        _write_text(ws, r, c, value, style)


def _size_columns(
    ws: Worksheet, header: list[str], rows: Sequence[list[Cell]], keep: list[int], masked: set[int]
) -> None:
    """Column widths from the header and the first rows: enough to read, never wider than 60."""
    sample = rows[:_WIDTH_SAMPLE]
    for c, name in enumerate(header):
        width = len(name) + 3  # room for the autofilter button
        if c in masked:
            width = max(width, len(MASK))  # sized by the mask, so widths say nothing about secrets
        elif c < len(keep):
            j = keep[c]
            for values in sample:
                width = max(width, _display_len(values[j]))
        else:
            width = max(width, _RESULT_WIDTHS[name])
        ws.set_column(c, c, min(width + 1, _WIDTH_CAP))


def _display_len(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime.datetime):
        return 16
    if isinstance(value, datetime.date):
        return 10
    if isinstance(value, datetime.time):
        return 5
    text = str(value)
    return max(map(len, text.split("\n"))) if "\n" in text else len(text)


# --------------------------------------------------------------------------- Summary sheet


def _write_summary_sheet(
    ws: Worksheet, formats: _Formats, counts: Counter[Status], summary: Mapping[str, object]
) -> None:
    ws.set_column(0, 0, 22)
    ws.set_column(1, 1, 60)
    ws.write_string(0, 0, "key", formats.header)
    ws.write_string(0, 1, "value", formats.header)
    r = 1
    for status in Status:
        ws.write_string(r, 0, status.value, formats.bold)
        ws.write_number(r, 1, counts.get(status, 0))
        r += 1
    ws.write_string(r, 0, "total", formats.bold)
    ws.write_number(r, 1, sum(counts.values()))
    r += 1
    f_text, f_quoted = formats.cell[(None, "text")], formats.cell[(None, "quoted")]
    for key, value in summary.items():
        ws.write_string(r, 0, str(key), formats.bold)
        if isinstance(value, bool) or value is None:
            text = "" if value is None else str(value).lower()
        elif isinstance(value, (int, float)) and value == value:
            ws.write_number(r, 1, value)
            r += 1
            continue
        elif isinstance(value, (datetime.date, datetime.time)):
            text = value.isoformat()
        elif isinstance(value, datetime.timedelta):
            text = f"{value.total_seconds():.3f} s"
        elif isinstance(value, (list, tuple, set, frozenset)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        if text:
            ws.write_string(r, 1, text, f_quoted if text[0] in _FORMULA_TRIGGERS else f_text)
        r += 1


def _summary_text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (pd.Timestamp, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)
