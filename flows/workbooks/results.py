"""The per-row results workbook: :func:`write_results` and :func:`read_results`.

A report a person acts on. Sheet ``Results`` opens on what matters: ``_status`` and ``_message``
are the first two columns and stay in view (frozen with the header) while the input columns scroll;
messages wrap, so they are read whole. Then the input columns exactly as read (date and time cells
keep the number format they had in the input workbook, e.g. ``dd/mm/yyyy``; see
:func:`input_number_formats`), then ``_row``, ``_provider_id``, ``_http_status`` and ``_attempts``.
A row is filled by **who acts** (:data:`STATUS_FILLS`, explained by :data:`WHO_ACTS`); the input cell
a message names is marked (darker, with a red border) and carries the message as a cell note. The
header has an autofilter.

Sheet ``Summary`` leads with what a person needs: the counts (only statuses that occur, each row in
its status colour: the legend), the problems by column, and the exact next command
(``booking-import rerun ...``). Below the heading :data:`TECHNICAL_HEADING` come the caller's run
details as key/value rows in the order given (dates as ISO text, numbers as numbers): the part
:func:`read_results` (and ``rerun``) read back. :func:`read_results` gives the Results columns
in the order input columns, then :data:`RESULT_COLUMNS`, whatever their place on the sheet.

Safety: XlsxWriter never turns text into formulas, URLs or numbers here, and text starting with
``= + - @``, tab, CR or NUL gets a quote-prefix style, so it stays text even after a user edits the
cell in Excel. Sensitive columns are masked, a marked cell too (its note is the row's message, which
the engine has already masked). The file is written to a temporary name beside the target and
renamed into place, so a crash never leaves a half-written workbook.
"""
from __future__ import annotations

import datetime
import math
import os
import re
import shlex
import uuid
import zipfile
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
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
    "FAULT_FILL",
    "LEAD_COLUMNS",
    "MASK",
    "MESSAGE_LIMIT",
    "NOT_REACHED_MESSAGE",
    "RESULTS_SHEET",
    "RESULT_COLUMNS",
    "STATUS_FILLS",
    "SUMMARY_SHEET",
    "TECHNICAL_HEADING",
    "WHO_ACTS",
    "check_writable",
    "input_number_formats",
    "next_command",
    "read_results",
    "write_results",
]

#: the columns a run adds, in the order :func:`read_results` gives them
RESULT_COLUMNS = ["_row", "_status", "_provider_id", "_http_status", "_message", "_attempts"]
#: result columns placed before the input columns (and frozen), so they are in view on opening
LEAD_COLUMNS = ["_status", "_message"]
_TRAIL_COLUMNS = [c for c in RESULT_COLUMNS if c not in LEAD_COLUMNS]
RESULTS_SHEET = "Results"
SUMMARY_SHEET = "Summary"
#: the Summary row heading the run details; the key/value rows below it are what readers parse
TECHNICAL_HEADING = "Technical detail"
#: what a non-empty value of a masked (sensitive) column is replaced with
MASK = "••••••"
#: ``_message`` is cut to this many characters (Excel shows about 1,000 in a cell anyway)
MESSAGE_LIMIT = 1000
#: row fill per status, by who acts: the sheet's sender (pink), the operator (lavender: resend after
#: fixing the cause; amber: check with the provider first), nobody (plain; pale blue: wait), see the
#: message (grey). ``created`` rows are left plain.
STATUS_FILLS: dict[Status, str] = {
    Status.ACCEPTED: "#DDEBF7",
    Status.SKIPPED: "#EDEDED",
    Status.INVALID: "#FFC7CE",
    Status.REJECTED: "#FFC7CE",
    Status.FAILED: "#E4DFEC",
    Status.UNKNOWN: "#FFD966",
}
#: the input cell a message names: darker than its row, with a red border and the message as a note
FAULT_FILL = "#FF8F8F"
_FAULT_BORDER = "#C00000"
#: status -> (who acts, what to do): the Summary's legend and the `_status` header's note
WHO_ACTS: dict[Status, tuple[str, str]] = {
    Status.CREATED: ("nobody", "booked at the provider"),
    Status.ACCEPTED: ("nobody: wait", "queued by the provider; `booking-import status` refreshes it when confirmed"),
    Status.SKIPPED: ("see the message", "not sent this run: done earlier, or the run stopped before it"),
    Status.INVALID: ("sender: fix the sheet", "not sent: fix the marked cell (its note says why), then rerun"),
    Status.REJECTED: ("sender: fix the sheet", "the provider refused the values: fix the marked cell, then rerun"),
    Status.FAILED: ("operator", "not booked: fix the cause in the message (credentials, address), then rerun"),
    Status.UNKNOWN: ("operator: check with the provider first", "may be booked: never resend by hand; rerun "
                                                                "checks with the provider before sending"),
}
#: the message for a row whose outcome is ``None`` (the run never reached it)
NOT_REACHED_MESSAGE = "not sent: the run stopped before this row"

_FORMULA_TRIGGERS = frozenset("=+-@\t\r\0")
_WIDTH_CAP = 60
_WIDTH_SAMPLE = 1000  # rows looked at to size the columns
_RESULT_WIDTHS = {"_row": 7, "_status": 10, "_provider_id": 16, "_http_status": 13, "_message": 60, "_attempts": 10}
_KINDS = ("text", "quoted", "date", "datetime", "time", "number", "wrap", "wrap_quoted")
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
    number_formats: Mapping[str, str] | None = None,
) -> Path:
    """Write the results workbook atomically to ``path`` (parent folders created); return the path.

    ``rows``, ``line_numbers`` and ``outcomes`` run in parallel; a ``None`` outcome is written as
    ``skipped`` with :data:`NOT_REACHED_MESSAGE`. Input columns named like a result column (the
    input was itself a results workbook) are left out, since fresh values follow them.
    ``number_formats`` (column -> Excel number format, from :func:`input_number_formats`) shows the
    date and time cells of those columns as the input did; others show ``yyyy-mm-dd`` / ``hh:mm``.
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
        tally = _write_results_sheet(
            workbook.add_worksheet(RESULTS_SHEET), formats, columns, rows, line_numbers, outcomes, masked_columns,
            number_formats or {},
        )
        _write_summary_sheet(workbook.add_worksheet(SUMMARY_SHEET), formats, tally, summary, target)
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
    """The ``Results`` sheet as a DataFrame (native cell types, blanks as NaN; input columns first, then
    :data:`RESULT_COLUMNS`) and the Summary's run details (see :func:`summary_pairs`) as text."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: results workbook not found; check the path")
    try:
        results = pd.read_excel(p, sheet_name=RESULTS_SHEET, engine="calamine", dtype=object,
                                keep_default_na=False, na_values=[""])
        summary_df = pd.read_excel(p, sheet_name=SUMMARY_SHEET, engine="calamine", dtype=object,
                                   keep_default_na=False, na_values=[""], header=None)
    except ValueError as exc:  # a missing sheet, or a file that is not a workbook
        raise InputError(
            f"{p} is not a results workbook written by this tool ({' '.join(str(exc).split())[:200]}); "
            f"give the file the import wrote"
        ) from None
    except Exception as exc:  # calamine's errors are not ValueError/OSError subclasses
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{p} cannot be read as a workbook ({reason}); it may be corrupt: write it again") from None
    order = [c for c in results.columns if c not in RESULT_COLUMNS] + [c for c in RESULT_COLUMNS if c in results.columns]
    return results[order], summary_pairs(summary_df.itertuples(index=False, name=None))


def summary_pairs(rows: Iterable[Sequence[object]]) -> dict[str, str]:
    """A Summary sheet's rows (the first row included) as key/value text: the count of each status that
    occurred and ``total`` (from the "Rows by status" table), then the run details below
    :data:`TECHNICAL_HEADING`. For a workbook written before the heading existed: every key/value row
    below the first."""
    rows = [row for row in rows if row]
    heading = next((i for i, row in enumerate(rows) if _summary_text(row[0]) == TECHNICAL_HEADING), None)
    out: dict[str, str] = {}
    if heading is None:
        pairs = rows[1:]
    else:
        table = next((i for i, row in enumerate(rows[:heading]) if len(row) >= 2
                      and (_summary_text(row[0]), _summary_text(row[1])) == ("status", "rows")), heading)
        counts = []
        for row in rows[table + 1:heading]:
            counts.append(row)
            if _summary_text(row[0]) == "total":
                break
        pairs = counts + rows[heading + 1:]
    for row in pairs:
        if len(row) >= 2 and _summary_text(row[0]):
            out[_summary_text(row[0])] = _summary_text(row[1])
    return out


# --------------------------------------------------------------------------- input number formats

#: Excel's built-in date/time number formats (ids 14-22, 45-47) as format codes
_BUILTIN_DATE_FORMATS = {14: "mm-dd-yy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy", 18: "h:mm AM/PM",
                         19: "h:mm:ss AM/PM", 20: "h:mm", 21: "h:mm:ss", 22: "m/d/yy h:mm", 45: "mm:ss",
                         46: "[h]:mm:ss", 47: "mmss.0"}
_FORMAT_SCAN_ROWS = 50  # data rows under the header looked at for each column's format


def input_number_formats(path: str | os.PathLike[str], sheet_name: str | None,
                         header_line: int = 1) -> dict[str, str]:
    """Column name -> number format of the date and time cells of an .xlsx/.xlsm input (the first
    formatted cell among the first rows under the header), so the results show ``25/12/2026`` where
    the sender typed it so. Empty for CSV and other files, and whenever the file cannot be read: the
    formats are a courtesy, never a reason to fail. Only the styles, the start of the worksheet and
    the first shared strings are read, so a 100,000-row input costs no more than a small one."""
    p = Path(path)
    if p.suffix.lower() not in (".xlsx", ".xlsm") or not sheet_name:
        return {}
    from xml.etree import ElementTree as ET

    from .sheets import _sheet_part  # the sheet-name -> part lookup the reader uses

    try:
        with zipfile.ZipFile(p) as z:
            date_styles = _date_styles(z)
            part = _sheet_part(z, sheet_name) if date_styles else None
            if part is None:
                return {}
            last = header_line + _FORMAT_SCAN_ROWS
            head = _sheet_head(z, part, last)
            cells = _CELL.findall(head)
            header: dict[str, str] = {}
            shared_wanted: dict[int, str] = {}
            for letters, row, attrs, body in cells:
                if int(row) != header_line:
                    continue
                value = _VALUE.search(body or b"")
                text = _INLINE.search(body or b"") if b't="inlineStr"' in attrs else None
                if text is not None:
                    header[letters.decode()] = _xml_text(text.group(1))
                elif value is not None and b't="s"' in attrs:
                    shared_wanted[int(value.group(1))] = letters.decode()
                elif value is not None:
                    header[letters.decode()] = _xml_text(value.group(1))
            if shared_wanted:
                for i, text in _shared_strings(z, max(shared_wanted), ET):
                    if i in shared_wanted:
                        header[shared_wanted[i]] = text
            out: dict[str, str] = {}
            for letters, row, attrs, _body in cells:
                if not header_line < int(row) <= last:
                    continue
                style = _STYLE.search(attrs)
                code = date_styles.get(int(style.group(1))) if style else None
                name = header.get(letters.decode(), "").strip()
                if code and name and name not in out:
                    out[name] = code
            return out
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, ET.ParseError):
        return {}


_CELL = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)"([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)', re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v>(.*?)</(?:\w+:)?v>", re.S)
_INLINE = re.compile(rb"<(?:\w+:)?t[^>]*>(.*?)</(?:\w+:)?t>", re.S)
_STYLE = re.compile(rb'\bs="(\d+)"')


def _xml_text(raw: bytes) -> str:
    import html

    return html.unescape(raw.decode("utf-8", "replace"))


def _date_styles(z: zipfile.ZipFile) -> dict[int, str]:
    """cellXfs index -> format code, for the styles whose format shows a date or a time."""
    from xml.etree import ElementTree as ET

    from .sheets import _NS_MAIN, _strip_format

    root = ET.fromstring(z.read("xl/styles.xml"))
    codes = dict(_BUILTIN_DATE_FORMATS)
    fmts = root.find(f"{_NS_MAIN}numFmts")
    for nf in fmts if fmts is not None else []:
        codes[int(nf.get("numFmtId", "-1"))] = nf.get("formatCode", "")
    out: dict[int, str] = {}
    xfs = root.find(f"{_NS_MAIN}cellXfs")
    for i, xf in enumerate(xfs if xfs is not None else []):
        code = codes.get(int(xf.get("numFmtId", "0")))
        if code and re.search(r"[dmyhs]", _strip_format(code.split(";")[0]).lower().replace("general", "")):
            out[i] = code
    return out


def _sheet_head(z: zipfile.ZipFile, part: str, last_row: int) -> bytes:
    """The worksheet XML up to the end of row ``last_row`` (or all of it, if shorter)."""
    marker = re.compile(rb'<(?:\w+:)?row r="(\d+)"')
    data = b""
    with z.open(part) as f:
        while True:
            chunk = f.read(1 << 16)
            data += chunk
            rows = marker.findall(data[-(1 << 17):])
            if not chunk or (rows and int(rows[-1]) > last_row):
                return data


def _shared_strings(z: zipfile.ZipFile, upto: int, ET) -> Iterator[tuple[int, str]]:
    """(index, text) of the shared strings up to index ``upto``, read incrementally."""
    try:
        f = z.open("xl/sharedStrings.xml")
    except KeyError:
        return
    with f:
        i = 0
        for _event, el in ET.iterparse(f):
            if el.tag.endswith("}si"):
                yield i, "".join(t.text or "" for t in el.iter() if t.tag.endswith("}t"))
                el.clear()
                i += 1
                if i > upto:
                    return


# --------------------------------------------------------------------------- formats


class _Formats:
    """Every format the workbook uses, made once: (fill or None) x cell kind, plus a few extras."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._workbook = workbook
        fills: list[str | None] = [None, *sorted(set(STATUS_FILLS.values())), FAULT_FILL]
        self.cell: dict[tuple[str | None, str], Format | None] = {}
        self._custom: dict[tuple[str | None, str], Format] = {}
        for fill in fills:
            for kind in _KINDS:
                props = self._props(fill, kind)
                self.cell[(fill, kind)] = workbook.add_format(props) if props else None
        header = {"bold": True, "bottom": 1, "bg_color": "#D9E1F2", "pattern": 1, "valign": "top"}
        self.header = workbook.add_format(header)
        self.header_quoted = workbook.add_format({**header, "quote_prefix": True})
        self.bold = workbook.add_format({"bold": True})
        self.title = workbook.add_format({"bold": True, "font_size": 14})
        self.heading = workbook.add_format({"bold": True, "font_size": 12, "bottom": 1})
        self.command = workbook.add_format({"font_name": "Courier New", "bold": True, "bg_color": "#F2F2F2",
                                            "pattern": 1, "border": 1})
        self.wrap = workbook.add_format({"text_wrap": True, "valign": "top"})
        self.legend = {fill: workbook.add_format({"bg_color": fill, "pattern": 1, "border": 1, "valign": "top"})
                       for fill in fills if fill}
        self.legend_plain = workbook.add_format({"border": 1, "valign": "top"})

    @staticmethod
    def _props(fill: str | None, kind: str) -> dict[str, object]:
        props: dict[str, object] = {}
        if fill:
            props.update(bg_color=fill, pattern=1)
        if fill == FAULT_FILL:
            props.update(border=2, border_color=_FAULT_BORDER, font_color="#9C0006", bold=True)
        if kind in ("quoted", "wrap_quoted"):
            props["quote_prefix"] = True
        if kind.startswith("wrap"):
            props.update(text_wrap=True, valign="top")
        if kind in _NUM_FORMATS:
            props["num_format"] = _NUM_FORMATS[kind]
        return props

    def row(self, status: Status) -> _RowStyle:
        """The formats of a row with this status (all ``None`` for an unfilled ``created`` row)."""
        fill = STATUS_FILLS.get(status)
        return _RowStyle(*(self.cell[(fill, kind)] for kind in _KINDS), fill)

    def fault(self) -> _RowStyle:
        return _RowStyle(*(self.cell[(FAULT_FILL, kind)] for kind in _KINDS), FAULT_FILL)

    def custom(self, fill: str | None, code: str) -> Format:
        """A date/time cell in the input's own number format, in a row's fill."""
        key = (fill, code)
        fmt = self._custom.get(key)
        if fmt is None:
            fmt = self._custom[key] = self._workbook.add_format({**self._props(fill, "text"), "num_format": code})
        return fmt


class _RowStyle(NamedTuple):
    """One row's formats, one per cell kind (field order = :data:`_KINDS`), and its fill."""

    text: Format | None
    quoted: Format | None
    date: Format | None
    datetime: Format | None
    time: Format | None
    number: Format | None
    wrap: Format | None
    wrap_quoted: Format | None
    fill: str | None = None

    @property
    def filled(self) -> bool:
        return self.fill is not None


# --------------------------------------------------------------------------- Results sheet


class _Tally(NamedTuple):
    """What the Results sheet held, for the Summary: rows per status, rows with a problem per column
    (and the commonest message there)."""

    counts: Counter[Status]
    by_column: Counter[str]
    column_messages: dict[str, Counter[str]]


def _write_results_sheet(
    ws: Worksheet,
    formats: _Formats,
    columns: list[str],
    rows: list[list[Cell]],
    line_numbers: list[int],
    outcomes: list[Outcome | None],
    masked_columns: Collection[str],
    number_formats: Mapping[str, str],
) -> _Tally:
    keep = [j for j, name in enumerate(columns) if name not in RESULT_COLUMNS]
    masked_names = set(masked_columns)
    lead = len(LEAD_COLUMNS)
    n_in = len(keep)
    masked = {lead + i for i, j in enumerate(keep) if columns[j] in masked_names}
    header = LEAD_COLUMNS + [columns[j] for j in keep] + _TRAIL_COLUMNS
    position = {columns[j]: lead + i for i, j in enumerate(keep)}  # input column name -> sheet column
    custom = {position[name]: code for name, code in number_formats.items() if name in position}
    last_col = len(header) - 1

    _size_columns(ws, header, rows, keep, masked, lead)
    ws.freeze_panes(1, lead)  # the header and _status/_message stay in view
    ws.autofilter(0, 0, max(len(rows), 1), last_col)
    status_col = LEAD_COLUMNS.index("_status")
    if rows:
        ws.data_validation(
            1, status_col, len(rows), status_col,
            {"validate": "list", "source": [s.value for s in Status], "error_type": "warning"},
        )
    ws.ignore_errors({"number_stored_as_text": f"A1:{column_letter(last_col)}{len(rows) + 1}"})
    for c, name in enumerate(header):
        ws.write_string(0, c, name, formats.header_quoted if name[:1] in _FORMULA_TRIGGERS else formats.header)
    ws.write_comment(0, status_col, "Colours: who acts\n" + "\n".join(
        f"{status.value}: {who}" for status, (who, _) in WHO_ACTS.items())
        + "\nA marked input cell (red border) is the one to fix: its note says why. See the Summary sheet.",
        {"x_scale": 2.2, "y_scale": 2.2})

    # bound once: this loop runs for every cell
    write_string, write_number, write_blank = ws.write_string, ws.write_number, ws.write_blank
    triggers = _FORMULA_TRIGGERS
    all_columns = keep == list(range(len(columns)))
    row_formats = {status: formats.row(status) for status in Status}
    fault_style = formats.fault()
    counts: Counter[Status] = Counter()
    by_column: Counter[str] = Counter()
    column_messages: dict[str, Counter[str]] = {}
    skipped = Outcome(Status.SKIPPED, NOT_REACHED_MESSAGE)
    trail = lead + n_in

    for r, (values, line, outcome) in enumerate(zip(rows, line_numbers, outcomes), start=1):
        if outcome is None:
            outcome = skipped
        status = Status(outcome.status)
        counts[status] += 1
        style = row_formats[status]
        f_text, f_number = style.text, style.number
        filled = style.filled  # a filled row gets blank cells too, so the highlight has no gaps

        # the lead columns: status, then the whole message (wrapped)
        write_string(r, 0, status.value, f_text)
        message = outcome.message[:MESSAGE_LIMIT] if outcome.message else outcome.message
        if message:
            write_string(r, 1, message, style.wrap_quoted if message[0] in triggers else style.wrap)
        elif filled:
            write_blank(r, 1, None, style.wrap)

        faults: dict[int, str] = {}
        if outcome.column_messages:
            for name, messages in outcome.column_messages.items():
                at = position.get(name)
                if at is None or not messages:
                    continue
                # messages are already masked by the engine (flows.redact): a note never shows a secret
                faults[at] = "\n".join(dict.fromkeys(messages))[:MESSAGE_LIMIT]
                by_column[name] += 1
                column_messages.setdefault(name, Counter())[messages[0][:200]] += 1

        cells = values if all_columns else [values[j] for j in keep]
        for c, value in enumerate(cells, start=lead):
            if faults and c in faults:
                _write_cell(ws, r, c, value, fault_style, c in masked, custom.get(c), formats)
                ws.write_comment(r, c, faults[c], {"x_scale": 2, "y_scale": 1.5})
                continue
            t = type(value)
            if t is str:
                if not value:
                    if filled:
                        write_blank(r, c, None, f_text)
                elif c in masked:
                    write_string(r, c, MASK, f_text)
                else:
                    write_string(r, c, value, style.quoted if value[0] in triggers else f_text)
            elif value is None:
                if filled:
                    write_blank(r, c, None, f_text)
            elif c in masked:
                write_string(r, c, MASK, f_text)
            elif custom and c in custom:
                _write_cell(ws, r, c, value, style, False, custom[c], formats)
            else:
                _write_other(ws, r, c, value, style)

        c = trail
        write_number(r, c, line, f_number)
        _write_text(ws, r, c + 1, outcome.provider_id, style)
        if outcome.http_status is not None:
            write_number(r, c + 2, outcome.http_status, f_number)
        elif filled:
            write_blank(r, c + 2, None, f_text)
        write_number(r, c + 3, outcome.attempts, f_number)
    return _Tally(counts, by_column, column_messages)


def _write_cell(ws: Worksheet, r: int, c: int, value: object, style: _RowStyle, masked: bool,
                code: str | None, formats: _Formats) -> None:
    """One input cell outside the fast path: a marked (faulty) cell, or a date/time in the input's format."""
    if value is None or value == "":
        ws.write_blank(r, c, None, style.text)
    elif masked:
        ws.write_string(r, c, MASK, style.text)
    elif type(value) is str:
        _write_text(ws, r, c, value, style)
    elif code and isinstance(value, (datetime.date, datetime.time)) and getattr(value, "tzinfo", None) is None \
            and not (isinstance(value, datetime.datetime) and pd.isna(value)):
        ws.write_datetime(r, c, value, formats.custom(style.fill, code))  # type: ignore[arg-type]
    else:
        _write_other(ws, r, c, value, style)


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
    ws: Worksheet, header: list[str], rows: Sequence[list[Cell]], keep: list[int], masked: set[int], lead: int
) -> None:
    """Column widths from the header and the first rows: enough to read, never wider than 60. The
    ``_message`` column is 60 wide and wraps, so a long message is read whole."""
    sample = rows[:_WIDTH_SAMPLE]
    for c, name in enumerate(header):
        width = len(name) + 3  # room for the autofilter button
        if c in masked:
            width = max(width, len(MASK))  # sized by the mask, so widths say nothing about secrets
        elif lead <= c < lead + len(keep):
            j = keep[c - lead]
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
    ws: Worksheet, formats: _Formats, tally: _Tally, summary: Mapping[str, object], target: Path
) -> None:
    """What happened (counts by status, coloured: the legend), problems by column, the next step with
    the exact command, then the technical detail below :data:`TECHNICAL_HEADING`."""
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 12)
    ws.set_column(2, 2, 34)
    ws.set_column(3, 3, 80)
    counts = tally.counts
    total = sum(counts.values())
    source = str(summary.get("input file") or "")
    ws.write_string(0, 0, f"Results of {Path(source).name or target.name}", formats.title)
    ws.write_string(1, 0, _verdict(counts))
    r = 3
    ws.write_string(r, 0, "Rows by status", formats.heading)
    r += 1
    for c, name in enumerate(("status", "rows", "who acts", "what to do")):
        ws.write_string(r, c, name, formats.header)
    r += 1
    for status in Status:
        n = counts.get(status, 0)
        if not n:
            continue
        who, what = WHO_ACTS[status]
        fill = STATUS_FILLS.get(status)
        cell = formats.legend[fill] if fill else formats.legend_plain
        ws.write_string(r, 0, status.value, cell)
        ws.write_number(r, 1, n, cell)
        ws.write_string(r, 2, who, cell)
        ws.write_string(r, 3, what, cell)
        r += 1
    ws.write_string(r, 0, "total", formats.bold)
    ws.write_number(r, 1, total, formats.bold)
    r += 1
    if tally.by_column:
        ws.write_string(r, 0, "marked cell", formats.legend[FAULT_FILL])
        ws.write_string(r, 2, "the input cell to fix", formats.legend_plain)
        ws.write_string(r, 3, "its note (hover, or right-click > Show Comment) gives the message", formats.legend_plain)
        r += 1
    r += 1

    if tally.by_column:
        ws.write_string(r, 0, "Problems by column", formats.heading)
        r += 1
        for c, name in enumerate(("column", "rows", "commonest message")):
            ws.write_string(r, c, name, formats.header)
        r += 1
        for name, n in tally.by_column.most_common(_PROBLEM_COLUMNS):
            message = tally.column_messages[name].most_common(1)[0][0]
            _summary_string(ws, r, 0, name, formats)
            ws.write_number(r, 1, n)
            _summary_string(ws, r, 2, message, formats)
            r += 1
        if len(tally.by_column) > _PROBLEM_COLUMNS:
            ws.write_string(r, 0, f"... and {len(tally.by_column) - _PROBLEM_COLUMNS} more columns")
            r += 1
        r += 1

    ws.write_string(r, 0, "Next step", formats.heading)
    r += 1
    for text, command in next_command(target, summary, counts):
        if text:
            ws.write_string(r, 0, text)
            r += 1
        if command:
            ws.merge_range(r, 0, r, 3, command, formats.command)
            r += 1
    r += 1

    ws.write_string(r, 0, TECHNICAL_HEADING, formats.heading)
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


_PROBLEM_COLUMNS = 15  # columns listed under "Problems by column"


def _summary_string(ws: Worksheet, r: int, c: int, text: str, formats: _Formats) -> None:
    """Text from the sheet or a provider (column names, messages): never a formula."""
    if text:
        ws.write_string(r, c, text, formats.cell[(None, "quoted" if text[0] in _FORMULA_TRIGGERS else "text")])


def _verdict(counts: Counter[Status]) -> str:
    """One line: how many rows, and how many are done, to fix, for the operator, not sent."""
    total = sum(counts.values())
    parts = [
        ("booked", counts[Status.CREATED]),
        ("queued by the provider", counts[Status.ACCEPTED]),
        ("to fix in the sheet", counts[Status.INVALID] + counts[Status.REJECTED]),
        ("not delivered (operator)", counts[Status.FAILED]),
        ("to check with the provider first", counts[Status.UNKNOWN]),
        ("not sent (skipped)", counts[Status.SKIPPED]),
    ]
    said = ", ".join(f"{n:,} {what}" for what, n in parts if n)
    return f"{total:,} row{'s' if total != 1 else ''}" + (f": {said}" if said else "")


def next_command(results: str | os.PathLike[str], summary: Mapping[str, object],
                 counts: Mapping[Status, int]) -> list[tuple[str, str | None]]:
    """What to do next, as (sentence, command or None) pairs: the exact ``booking-import`` command for
    these results (``rerun`` when any row is left to send, ``status`` when rows wait for the provider)."""
    path = shlex.quote(str(results))
    fix = counts.get(Status.INVALID, 0) + counts.get(Status.REJECTED, 0)
    failed, unknown = counts.get(Status.FAILED, 0), counts.get(Status.UNKNOWN, 0)
    skipped, accepted = counts.get(Status.SKIPPED, 0), counts.get(Status.ACCEPTED, 0)
    rows = lambda n: f"{n:,} row{'s' if n != 1 else ''}"  # noqa: E731
    steps: list[tuple[str, str | None]] = []
    if str(summary.get("mode", "")).startswith("validate"):
        if fix:
            steps.append((f"Fix the marked cells of the {rows(fix)} in pink in the input sheet (each cell's note "
                          f"says why), save it and check again:", None))
            source, mapping = summary.get("input file"), summary.get("mapping")
            if source and mapping:
                steps.append(("", f"booking-import validate {shlex.quote(str(source))} --mapping "
                                  f"{shlex.quote(str(mapping))}"))
            steps.append(("Or fix them in this workbook and send every valid row with:", f"booking-import rerun {path}"))
        else:
            steps.append(("Every row is valid. Send them with:", f"booking-import rerun {path}"))
        return steps
    if fix:
        steps.append((f"Fix the marked cells of the {rows(fix)} in pink (each cell's note says why) and save "
                      f"this workbook.", None))
    if failed:
        steps.append((f"{rows(failed)} could not be delivered (lavender): fix the cause their message names "
                      f"(credentials, address, network).", None))
    if unknown:
        steps.append((f"{rows(unknown)} may have reached the provider (amber): never book them by hand. The rerun "
                      f"checks each with the provider before sending; where the provider offers no check (Systems X "
                      f"Bridge), check them yourself first, then add --resend-unknown.", None))
    if skipped:
        steps.append((f"{rows(skipped)} skipped (grey): the rerun sends those not booked yet; their message says "
                      f"why they were not sent.", None))
    if fix or failed or unknown or skipped:
        steps.append(("Then run:", f"booking-import rerun {path}"))
    if accepted:
        steps.append((f"{rows(accepted)} queued by the provider (blue): when it has confirmed them, refresh "
                      f"this workbook with:", f"booking-import status {path}"))
    if not steps:
        steps.append(("Nothing to do: every row is booked.", None))
    return steps


def _summary_text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (pd.Timestamp, datetime.date, datetime.time)):
        return value.isoformat()
    return str(value)
