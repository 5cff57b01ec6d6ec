"""The data rows of the ``Results`` sheet as worksheet XML, written by this module, not cell by cell.

XlsxWriter spent about 80 % of a large results workbook on its per-cell machinery (a call, a
dimension check, a tuple, an attribute list and three regular expressions per cell); at a million
rows that was most of ``validate``. So XlsxWriter still writes everything else (styles, the header,
notes, the filter, the Summary sheet), while this module writes the ``<row>`` elements of the data
rows, cell for cell as XlsxWriter would in ``constant_memory`` mode (inline strings, the same
escaping of control characters and of ``&<>``, the same ``xml:space="preserve"`` rule, numbers as
``%.16G``, dates as Excel serial numbers), and :func:`splice_rows` streams them into the finished
workbook. The cell rules (which style a cell gets, what a masked, faulty or blank cell holds) are
the ones :mod:`flows.workbooks.results_sheet` documents; ``tests/test_results.py`` reads the result
back with openpyxl and calamine.
"""
from __future__ import annotations

import datetime
import math
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from xlsxwriter.format import Format

from flows.outcomes import Outcome, Status
from flows.workbooks.cells import Cell
from flows.workbooks.results_layout import _FORMULA_TRIGGERS, FAULT_FILL, MASK, MESSAGE_LIMIT, NOT_REACHED_MESSAGE
from flows.workbooks.results_styles import _RowStyle
from flows.workbooks.sheet_rows import column_letter

__all__ = ["RowAttrs", "row_attrs", "rows_xml", "splice_rows"]

#: the worksheet part XlsxWriter writes the first sheet (``Results``) to
RESULTS_PART = "xl/worksheets/sheet1.xml"
_ROWS_PER_CHUNK = 2000  # rows joined into one string before it goes to the zip stream
#: anything a string cell needs escaped (XlsxWriter's rules): XML's ``&<>``, control characters and
#: the two non-characters as ``_xHHHH_``, and a literal ``_xHHHH_`` by escaping its underscore
_SPECIAL = re.compile("[&<>\x00-\x08\x0b-\x1f\ufffe\uffff]|_x[0-9a-fA-F]{4}_")
_ESCAPED_UNDERSCORE = re.compile("(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile("([\x00-\x08\x0b-\x1f])")
_STRING_MAX = 32767  # Excel's limit on a cell's text (UTF-16 units)
_EPOCH = datetime.datetime(1899, 12, 31)


class RowAttrs(NamedTuple):
    """One row's style attributes (`` s="N"`` or ``""``), one per cell kind, as :class:`_RowStyle`."""

    text: str
    quoted: str
    date: str
    datetime: str
    time: str
    number: str
    wrap: str
    wrap_quoted: str
    filled: bool


def _attr(fmt: Format | None) -> str:
    # xf_index is set by XlsxWriter when the workbook is closed, for every format a cell used
    return "" if fmt is None or fmt.xf_index is None else f' s="{fmt.xf_index}"'


def row_attrs(style: _RowStyle) -> RowAttrs:
    """The attributes of a row style's formats, once the workbook is closed (indices assigned)."""
    formats: list[Format | None] = list(style[:8])
    return RowAttrs._make([*(_attr(f) for f in formats), style.filled])


def _escape(text: str) -> str:
    text = _ESCAPED_UNDERSCORE.sub(r"_x005F\1", text)
    text = _CONTROL.sub(lambda m: f"_x{ord(m.group(1)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _string(ref: str, attr: str, text: str) -> str:
    if len(text) > _STRING_MAX // 2:
        text = _truncate(text)
    if _SPECIAL.search(text):
        text = _escape(text)
    if text[0].isspace() or text[-1].isspace():
        return f'<c r="{ref}"{attr} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return f'<c r="{ref}"{attr} t="inlineStr"><is><t>{text}</t></is></c>'


def _truncate(text: str) -> str:
    """At most 32,767 UTF-16 units, as XlsxWriter cuts a longer text."""
    if len(text.encode("utf-16-le")) // 2 <= _STRING_MAX:
        return text
    out, units = [], 0
    for ch in text:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > _STRING_MAX:
            break
        out.append(ch)
    return "".join(out)


def _serial(value: datetime.date | datetime.time) -> float:
    """An Excel serial date-time (1900 system), computed as XlsxWriter computes it."""
    if isinstance(value, datetime.datetime):
        delta = value.replace(tzinfo=None) - _EPOCH
    elif isinstance(value, datetime.date):
        delta = datetime.datetime.fromordinal(value.toordinal()) - _EPOCH
    else:
        delta = datetime.datetime.combine(_EPOCH, value) - _EPOCH
    serial = delta.days + (float(delta.seconds) + float(delta.microseconds) / 1e6) / 86400
    if isinstance(value, datetime.datetime) and value.isocalendar() == (1900, 1, 1):
        serial -= 1
    if serial > 59:  # Excel counts 29 February 1900
        serial += 1
    return serial


class _RowWriter:
    """Writes the cells of one sheet row into ``out``; ``rr`` is the row number Excel shows."""

    def __init__(self, letters: Sequence[str], custom: Mapping[int, Mapping[str | None, str]]) -> None:
        self.letters = letters
        self.custom = custom  # sheet column -> {row fill -> attribute of the input's own format}

    def text(self, out: list[str], c: int, rr: int, value: object, style: RowAttrs) -> None:
        """Untrusted text (provider ids, messages): quote-prefixed when it could start a formula."""
        text = "" if value is None else str(value)
        if text:
            out.append(_string(f"{self.letters[c]}{rr}", style.quoted if text[0] in _FORMULA_TRIGGERS
                               else style.text, text))
        elif style.filled and style.text:
            out.append(f'<c r="{self.letters[c]}{rr}"{style.text}/>')

    def number(self, out: list[str], c: int, rr: int, value: float, attr: str) -> None:
        out.append(f'<c r="{self.letters[c]}{rr}"{attr}><v>{value:.16G}</v></c>')

    def blank(self, out: list[str], c: int, rr: int, attr: str) -> None:
        if attr:  # a blank cell without a format is no cell at all
            out.append(f'<c r="{self.letters[c]}{rr}"{attr}/>')

    def cell(self, out: list[str], c: int, rr: int, value: object, style: RowAttrs, masked: bool,
             fill: str | None, custom: bool) -> None:
        """One input cell outside the fast path: a marked (faulty) cell, or a date/time in the input's format."""
        if value is None or value == "":
            self.blank(out, c, rr, style.text)
        elif masked:
            out.append(_string(f"{self.letters[c]}{rr}", style.text, MASK))
        elif type(value) is str:
            self.text(out, c, rr, value, style)
        elif custom and isinstance(value, (datetime.date, datetime.time)) \
                and getattr(value, "tzinfo", None) is None \
                and not (isinstance(value, datetime.datetime) and value != value):
            self.number(out, c, rr, _serial(value), self.custom[c][fill])
        else:
            self.other(out, c, rr, value, style)

    def other(self, out: list[str], c: int, rr: int, value: object, style: RowAttrs) -> None:
        """Cells that are not plain text: dates and times as real Excel values, numbers as numbers."""
        if isinstance(value, datetime.datetime):
            if value.tzinfo is not None:  # Excel has no time zones: keep the offset visible as text
                self.text(out, c, rr, value.isoformat(sep=" "), style)
            elif value != value:  # NaT from a DataFrame
                self.text(out, c, rr, None, style)
            else:
                self.number(out, c, rr, _serial(value), style.datetime)
        elif isinstance(value, datetime.date):
            self.number(out, c, rr, _serial(value), style.date)
        elif isinstance(value, datetime.time):
            if value.tzinfo is not None:
                self.text(out, c, rr, value.isoformat(), style)
            else:
                self.number(out, c, rr, _serial(value), style.time)
        elif isinstance(value, bool):
            out.append(f'<c r="{self.letters[c]}{rr}"{style.text} t="b"><v>{int(value)}</v></c>')
        elif isinstance(value, (int, float)) and math.isfinite(value):
            self.number(out, c, rr, value, style.number)
        elif isinstance(value, float) and math.isnan(value):  # NaN from a DataFrame: an empty cell
            self.text(out, c, rr, None, style)
        else:
            self.text(out, c, rr, value, style)


def rows_xml(
    rows: Sequence[list[Cell]],
    line_numbers: Sequence[int],
    outcomes: Sequence[Outcome | None],
    *,
    keep: list[int],
    masked: set[int],
    custom: Mapping[int, Mapping[str | None, str]],
    faults: Mapping[int, Iterable[int]],
    styles: Mapping[Status, tuple[RowAttrs, str | None]],
    fault_style: RowAttrs,
    lead: int,
    last_col: int,
) -> Iterator[str]:
    """The ``<row>`` elements of the data rows, in chunks. ``faults`` maps a row's index (0-based) to the
    sheet columns of its marked cells; ``custom`` a sheet column to the attribute of the input's own
    number format per row fill."""
    letters = [column_letter(c) for c in range(last_col + 1)]
    writer = _RowWriter(letters, custom)
    text, number, blank, cell, other = writer.text, writer.number, writer.blank, writer.cell, writer.other
    triggers = _FORMULA_TRIGGERS
    all_columns = bool(rows) and keep == list(range(len(rows[0])))
    skipped = Outcome(Status.SKIPPED, NOT_REACHED_MESSAGE)
    trail = lead + len(keep)
    a_status, a_message = letters[0], letters[1]
    out: list[str] = []
    for i, (values, line, outcome) in enumerate(zip(rows, line_numbers, outcomes, strict=True)):
        rr = i + 2
        if outcome is None:
            outcome = skipped
        status = Status(outcome.status)
        style, fill = styles[status]
        f_text, filled = style.text, style.filled
        out.append(f'<row r="{rr}">')
        out.append(f'<c r="{a_status}{rr}"{f_text} t="inlineStr"><is><t>{status.value}</t></is></c>')
        message = outcome.message[:MESSAGE_LIMIT] if outcome.message else outcome.message
        if message:
            out.append(_string(f"{a_message}{rr}", style.wrap_quoted if message[0] in triggers else style.wrap,
                               message))
        elif filled:
            blank(out, 1, rr, style.wrap)
        marked = faults.get(i, ())
        cells = values if all_columns else [values[j] for j in keep]
        # one search per row instead of one per cell: does any text of the row need escaping or cutting?
        texts = "\n".join([v for v in cells if isinstance(v, str)])
        clean = len(texts) <= _STRING_MAX // 2 and not _SPECIAL.search(texts)
        for c, value in enumerate(cells, start=lead):
            if marked and c in marked:
                cell(out, c, rr, value, fault_style, c in masked, FAULT_FILL, c in custom)
                continue
            if type(value) is str:  # exact type, as before: narrows value for the checker
                if not value:
                    if filled:
                        blank(out, c, rr, f_text)
                elif c in masked:
                    out.append(_string(f"{letters[c]}{rr}", f_text, MASK))
                elif clean and not (value[0].isspace() or value[-1].isspace()):
                    # the common case, inlined: text needing no escape and no xml:space
                    attr = style.quoted if value[0] in triggers else f_text
                    out.append(f'<c r="{letters[c]}{rr}"{attr} t="inlineStr"><is><t>{value}</t></is></c>')
                else:
                    out.append(_string(f"{letters[c]}{rr}", style.quoted if value[0] in triggers
                                       else f_text, value))
            elif value is None:
                if filled:
                    blank(out, c, rr, f_text)
            elif c in masked:
                out.append(_string(f"{letters[c]}{rr}", f_text, MASK))
            elif custom and c in custom:
                cell(out, c, rr, value, style, False, fill, True)
            else:
                other(out, c, rr, value, style)
        c = trail
        number(out, c, rr, line, style.number)
        text(out, c + 1, rr, outcome.provider_id, style)
        if outcome.http_status is not None:
            number(out, c + 2, rr, outcome.http_status, style.number)
        elif filled:
            blank(out, c + 2, rr, f_text)
        number(out, c + 3, rr, outcome.attempts, style.number)
        out.append("</row>")
        if i % _ROWS_PER_CHUNK == _ROWS_PER_CHUNK - 1:
            yield "".join(out)
            out.clear()
    if out:
        yield "".join(out)


_DIMENSION = re.compile(r'<dimension ref="[^"]*"/>')


def splice_rows(source: Path, target: Path, chunks: Iterable[str], dimension: str) -> None:
    """Copy the workbook ``source`` to ``target`` with the ``Results`` sheet's rows after its header row
    replaced by ``chunks`` (and its dimension set to ``dimension``), streaming them into the zip."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        for info in zin.infolist():
            if info.filename != RESULTS_PART:  # streamed: the notes of a million rows are tens of MB
                copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                copy.compress_type = zipfile.ZIP_DEFLATED
                with zin.open(info) as src, zout.open(copy, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                continue
            xml = zin.read(info).decode("utf-8")
            start = xml.index("<sheetData>")
            header_end = xml.index("</row>", start) + len("</row>")
            tail = xml.index("</sheetData>", header_end)
            head = _DIMENSION.sub(f'<dimension ref="{dimension}"/>', xml[:header_end], count=1)
            member = zipfile.ZipInfo(RESULTS_PART, date_time=info.date_time)
            member.compress_type = zipfile.ZIP_DEFLATED
            with zout.open(member, "w", force_zip64=True) as sheet:
                sheet.write(head.encode("utf-8"))
                for chunk in chunks:
                    sheet.write(chunk.encode("utf-8"))
                sheet.write(xml[tail:].encode("utf-8"))
