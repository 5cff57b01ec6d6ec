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

import codecs
import contextlib
import csv
import datetime
import difflib
import functools
import gc
import io
import operator
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import python_calamine

from flows.errors import InputError

__all__ = [
    "CSV_SUFFIXES",
    "EXCEL_SUFFIXES",
    "HEADER_SCAN_ROWS",
    "SUPPORTED_SUFFIXES",
    "Cell",
    "Sheet",
    "column_letter",
    "list_sheets",
    "paused_gc",
    "read_sheet",
    "shown",
    "shown_list",
]

Cell = str | datetime.datetime | datetime.date | datetime.time | None

#: delimited text files (the delimiter is detected unless given)
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
#: workbooks read by calamine
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
SUPPORTED_SUFFIXES = CSV_SUFFIXES + EXCEL_SUFFIXES

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: .xls, or an encrypted .xlsx
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".ods")
_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024
_BOM = "\ufeff"
#: rows looked at (from the first non-blank one) when looking for the header row
HEADER_SCAN_ROWS = 30
#: longest piece of file content quoted in a message, and most names listed
_SHOWN_CHARS = 80
_SHOWN_ITEMS = 20


@dataclass
class Sheet:
    """A sheet read as text-first rows (see the module docstring for the cell types)."""

    path: Path
    #: header names, trimmed, in sheet order
    columns: list[str]
    #: one list per data row, aligned with :attr:`columns`
    rows: list[list[Cell]]
    #: for each row: the row number a person sees in Excel (header included), or the CSV line
    line_numbers: list[int]
    #: worksheet used (``None`` for CSV)
    sheet_name: str | None = None
    #: CSV: the encoding actually used ("utf-8-sig", "cp1252", ...)
    encoding: str | None = None
    #: CSV: the delimiter used
    delimiter: str | None = None
    #: the row number (as Excel shows it) of the header row
    header_line: int = 1
    #: things the reader decided that a person should hear about (a header found below title rows)
    notes: list[str] = field(default_factory=list)

    def column_index(self, name: str) -> int:
        """The position of column ``name``; :class:`InputError` naming the columns found if absent."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise InputError(_missing_column_message(name, self.columns, self.path)) from None


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
    with paused_gc():
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


def column_letter(index: int) -> str:
    """Excel's letter for a 0-based column index: ``0`` -> ``"A"``, ``27`` -> ``"AB"``."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


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


def _head(p: Path) -> bytes:
    with p.open("rb") as fh:
        return fh.read(8)


def _describe_content(head: bytes) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<html", b"<!doc", b"<?xml", b"<table")):
        return "it looks like an HTML or XML page"
    if head.startswith(_CFB_MAGIC):
        return "it is an old binary .xls workbook or an encrypted file"
    return "it looks corrupt or is a different kind of file"


# --------------------------------------------------------------------------- Excel


def _open_workbook(p: Path) -> python_calamine.CalamineWorkbook:
    try:
        if p.suffix.lower() == ".xls" and _head(p).startswith(_ZIP_MAGIC):
            # an .xlsx saved under an .xls name: calamine picks the format from the content
            with p.open("rb") as fh:
                return python_calamine.CalamineWorkbook.from_filelike(fh)
        return python_calamine.CalamineWorkbook.from_path(str(p))
    except python_calamine.PasswordError:
        raise InputError(f"{p} is password-protected or encrypted: save an unprotected copy and use that") from None
    except (python_calamine.CalamineError, ValueError) as exc:
        raise InputError(
            f"{p} cannot be read as a workbook ({_one_line(exc)}); it may be corrupt: "
            f"open it in Excel and save it again"
        ) from None
    except OSError as exc:
        raise InputError(f"{p} cannot be opened ({exc.strerror or exc}); check its permissions") from None


def _worksheet_names(wb: python_calamine.CalamineWorkbook) -> list[str]:
    return [m.name for m in wb.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]


def _pick_sheet(wb: python_calamine.CalamineWorkbook, p: Path, sheet: str | None,
                expect: list[str] | None = None) -> str:
    metas = [m for m in wb.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
    names = [m.name for m in metas]
    if not names:
        raise InputError(f"{p} has no worksheets (only charts); add a sheet with a header row")
    if sheet is None:
        visible = [m.name for m in metas if m.visible == python_calamine.SheetVisibleEnum.Visible]
        return (visible or names)[0]
    if sheet in names:
        return sheet
    close = difflib.get_close_matches(sheet, names, n=1, cutoff=0.6)
    hint = f' (did you mean "{shown(close[0])}"?)' if close else ""
    listed = shown_list([f'"{n}"' for n in names])
    if expect:
        # the sheet named (usually by the mapping) is absent: is it the sheet, or the mapping, that is wrong?
        want = _folded(expect)
        counts = {n: _best_header_score(wb, n, want) for n in names}
        best = max(names, key=lambda n: counts[n])
        if counts[best] == 0:
            raise InputError(
                f"{p}: 0 of {len(want)} columns found: is this the right mapping? It reads the sheet "
                f'"{shown(sheet)}", which this file lacks, and none of its sheets ({listed}) has any of its columns'
            )
        raise InputError(
            f'{p} has no sheet named "{shown(sheet)}"{hint}; sheet "{shown(best)}" has {counts[best]} of {len(want)} '
            f"columns the mapping needs: give --sheet \"{shown(best)}\" or set source.sheet in the mapping; "
            f"the sheets are: {listed}"
        )
    raise InputError(f'{p} has no sheet named "{shown(sheet)}"{hint}; the sheets are: {listed}')


def _best_header_score(wb: python_calamine.CalamineWorkbook, name: str, want: set[str]) -> int:
    try:
        try:
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS + 50)
        except TypeError:  # an older calamine without nrows
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError):
        return 0
    return max((_header_score(row, want) for row in raw[: HEADER_SCAN_ROWS + 50]), default=0)


def _folded(names: list[str]) -> set[str]:
    return {n.strip().casefold() for n in names if n and n.strip()}


def _header_score(row: list[object], want: set[str]) -> int:
    return len(want.intersection(_header_text(c).casefold() for c in row if not _is_blank(c)))


def _read_excel(p: Path, sheet: str | None, *, header_row: int | None = None,
                expect: list[str] | None = None) -> Sheet:
    with _open_workbook(p) as wb:
        name = _pick_sheet(wb, p, sheet, expect)
        try:
            # skip_empty_area=False keeps row/column 0 at A1, so positions are true to the file
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except (python_calamine.CalamineError, ValueError) as exc:
            raise InputError(
                f'{p}: sheet "{shown(name)}" cannot be read ({_one_line(exc)}); open the file in Excel and save it again'
            ) from None
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        _apply_shown_formats(p, name, raw)
    where = f'{p} (sheet "{shown(name)}")'
    return _build(p, raw, None, convert=_convert_excel_row, where=where, sheet_name=name,
                  header_row=header_row, expect=expect)


# --------------------------------------------------------------------------- Excel number formats (xlsx)
#
# calamine gives a number cell's value, not what the sheet shows. Two formats change what a value
# means, so for .xlsx/.xlsm the styles are read (a small part) and, only when a workbook uses such a
# format at all, the worksheet's XML is scanned for the cells that carry it:
#   * a zero-padded whole number (000000, Zip Code 00000, 000-00-0000): the text shown, "000123";
#   * a date-time format showing a time: calamine gives a bare date at exactly midnight, which a
#     combined date-and-time column could not tell from a date typed without a time.

_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PAD, _DATETIME = "pad", "datetime"
_BUILTIN_DATETIME = {22}  # m/d/yy h:mm


def _strip_format(code: str) -> str:
    """A number format without quoted text, escapes, [colours]/[conditions] and _x / *x fillers."""
    code = re.sub(r'"[^"]*"', "", code)
    code = re.sub(r"\\.", "", code)
    code = re.sub(r"\[[^\]]*\]", "", code)
    return re.sub(r"[_*].", "", code)


def _format_kind(code: str) -> str | None:
    sections = code.split(";")
    first = _strip_format(sections[0]).lower()
    if re.search(r"[dy]", first) and re.search(r"[hs]", first) and "general" not in first:
        return _DATETIME
    # a whole-number pattern of 0/# placeholders with literal separators and at least one padding 0
    # (or a literal) that General would not show: 000000, 00000-0000, 000-00-0000, (###) ###-####
    if not first or re.search(r"[^0#\- ()/+]", first) or ("0" not in first and "#" not in first):
        return None
    if re.fullmatch(r"#*0?", first):  # 0, #, #0: what General shows anyway
        return None
    return _PAD


def _render_pad(code: str, value: float) -> str | None:
    """The text Excel shows for a whole ``value`` under a padding format (None: not one we render)."""
    if not value.is_integer() or value < 0 or value >= 1e15:
        return None
    digits = str(int(value))
    sections = _pad_sections(code)
    tokens, slots, zeros = sections[0][2:]
    if len(sections) > 1 or sections[0][0] is not None:
        # conditional sections ([<=9999999]###-####;(###) ###-####): the first whose condition holds,
        # else the first without a condition
        pick = next((sec for sec in sections if sec[0] is None), sections[-1])
        for sec in sections:
            if sec[0] is not None and _holds(sec[0], value, sec[1]):
                pick = sec
                break
        tokens, slots, zeros = pick[2:]
    if zeros:  # 000000: the common case
        return digits.zfill(zeros)
    if slots == 0:
        return None
    if len(digits) < slots:
        digits = " " * (slots - len(digits)) + digits  # " " marks a digit position with no digit
    extra, digits = digits[: len(digits) - slots], digits[len(digits) - slots:]
    out: list[str] = []
    k = 0
    for t, lit in tokens:
        if t == "lit":
            out.append(lit)
            continue
        if k == 0:
            out.append(extra)  # digits beyond the placeholders go before the first one
        d = digits[k]
        k += 1
        out.append(("0" if t == "0" else "") if d == " " else d)
    return "".join(out).strip() or None


@functools.lru_cache(maxsize=256)
def _pad_sections(code: str) -> list[tuple[str | None, float, list[tuple[str, str]], int, int]]:
    """Per section of a number format: (condition operator, bound, tokens, placeholders, n when it is n zeros)."""
    out = []
    for section in code.split(";"):
        m = re.match(r"\[([<>=]{1,2})(\d+(?:\.\d+)?)\]", section)
        op, bound = (m.group(1), float(m.group(2))) if m else (None, 0.0)
        tokens: list[tuple[str, str]] = []  # placeholders and literals (quoted text and \x escapes are literal)
        i = 0
        while i < len(section):
            ch = section[i]
            if ch == '"':
                j = section.find('"', i + 1)
                j = len(section) if j < 0 else j
                tokens.append(("lit", section[i + 1:j]))
                i = j + 1
            elif ch == "\\" and i + 1 < len(section):
                tokens.append(("lit", section[i + 1]))
                i += 2
            elif ch == "[":
                i = section.find("]", i) + 1 or len(section)
            elif ch in "_*":
                i += 2
            elif ch in "0#":
                tokens.append((ch, ""))
                i += 1
            else:
                tokens.append(("lit", ch))
                i += 1
        slots = sum(1 for t, _ in tokens if t in "0#")
        zeros = slots if tokens and all(t == "0" for t, _ in tokens) else 0
        out.append((op, bound, tokens, slots, zeros))
    return out


def _holds(op: str, value: float, bound: float) -> bool:
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound,
            "=": value == bound, "<>": value != bound}.get(op, False)


def _styles(z: zipfile.ZipFile) -> dict[int, tuple[str, str]]:
    """cellXfs index -> (kind, format code) for the styles whose formats change what a cell means."""
    from xml.etree import ElementTree as ET

    try:
        root = ET.fromstring(z.read("xl/styles.xml"))
    except (KeyError, ET.ParseError):
        return {}
    codes: dict[int, str] = {}
    fmts = root.find(f"{_NS_MAIN}numFmts")
    for nf in fmts if fmts is not None else []:
        try:
            codes[int(nf.get("numFmtId", "-1"))] = nf.get("formatCode", "")
        except ValueError:
            continue
    out: dict[int, tuple[str, str]] = {}
    xfs = root.find(f"{_NS_MAIN}cellXfs")
    for i, xf in enumerate(xfs if xfs is not None else []):
        try:
            fid = int(xf.get("numFmtId", "0"))
        except ValueError:
            continue
        if fid in _BUILTIN_DATETIME:
            out[i] = (_DATETIME, "m/d/yy h:mm")
        elif fid in codes:
            kind = _format_kind(codes[fid])
            if kind:
                out[i] = (kind, codes[fid])
    return out


def _sheet_part(z: zipfile.ZipFile, name: str) -> str | None:
    from xml.etree import ElementTree as ET

    try:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ET.ParseError):
        return None
    rid = None
    for sh in wb.iter(f"{_NS_MAIN}sheet"):
        if sh.get("name") == name:
            rid = sh.get(f"{_NS_REL}id")
    for rel in rels:
        if rel.get("Id") == rid:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _col_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n - 1


def _apply_shown_formats(p: Path, name: str, raw: list[list[object]]) -> None:
    """Replace, in place, padded numbers by the text shown and midnight dates by date-times (see above)."""
    try:
        with zipfile.ZipFile(p) as z:
            styles = _styles(z)
            if not styles:
                return
            part = _sheet_part(z, name)
            if part is None:
                return
            xml = z.read(part)
    except (OSError, zipfile.BadZipFile, KeyError):
        return  # calamine read it; the formats are a refinement, never a reason to fail
    ids = b"|".join(str(i).encode() for i in sorted(styles))
    # writers put r first and s before t (Excel, LibreOffice, openpyxl, XlsxWriter): a fixed-order pattern is
    # three times faster than a general one, which is used only if the fast one finds nothing
    fast = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)" (?:t="\w+" )?s="(' + ids + rb')"')
    general = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)"[^>]*?\bs="(' + ids + rb')"')
    found = fast.findall(xml) or general.findall(xml)
    columns: dict[bytes, int] = {}
    kinds = {str(i).encode(): v for i, v in styles.items()}
    n = len(raw)
    date_type, number_types = datetime.date, (float, int)
    for letters, row, style in found:
        r = int(row) - 1
        if r >= n:
            continue
        c = columns.get(letters)
        if c is None:
            c = columns[letters] = _col_index(letters)
        cells = raw[r]
        if c >= len(cells):
            continue
        value = cells[c]
        kind, code = kinds[style]
        if kind == _DATETIME:
            if type(value) is date_type:
                cells[c] = datetime.datetime.combine(value, datetime.time())
        elif type(value) in number_types:
            text = _render_pad(code, float(value))
            if text is not None:
                cells[c] = text


def _number_text(value: float) -> str:
    """An Excel number as the text Excel shows in a General cell (15 significant digits)."""
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def _bool_text(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _duration(value: datetime.timedelta) -> Cell:
    if datetime.timedelta(0) <= value < datetime.timedelta(days=1):
        return (datetime.datetime.min + value).time()
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"


def _same(value: Cell) -> Cell:
    return value


def _text_or_none(value: str) -> str | None:
    return value or None


_EXCEL_CONVERTERS: dict[type, Callable[[object], Cell]] = {
    str: _text_or_none,
    float: _number_text,
    int: str,
    bool: _bool_text,
    datetime.datetime: _same,
    datetime.date: _same,
    datetime.time: _same,
    datetime.timedelta: _duration,
}


def _convert_excel_row(row: list[object]) -> list[Cell]:
    conv = _EXCEL_CONVERTERS
    try:
        return [conv[type(c)](c) for c in row]
    except KeyError:  # a cell type calamine may add in the future: keep it as text
        return [conv[type(c)](c) if type(c) in conv else str(c) for c in row]


# --------------------------------------------------------------------------- CSV


def _decode(p: Path, data: bytes, encoding: str | None) -> tuple[str, str]:
    """The file's text and the encoding used: UTF-16 by BOM, else UTF-8 (BOM optional), else cp1252."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"unknown encoding {encoding!r}; use e.g. utf-8, cp1252 or latin-1") from None
        used = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding  # never keep a BOM
        try:
            return data.decode(used), used
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{p} is not valid {encoding} text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                f"give the right encoding, or leave it out to detect it"
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text"
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    bare16 = _utf16_without_bom(data)
    if bare16 is not None:
        try:
            return data.decode(bare16), bare16
        except UnicodeDecodeError:
            pass
    for candidate in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    # cp1252 leaves 5 bytes undefined; Latin-1 maps every byte, so this cannot fail
    return data.decode("latin-1"), "latin-1"


def _utf16_without_bom(data: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when the start looks like UTF-16 text saved without a BOM (most of the
    odd or even bytes NUL, the others not), else None."""
    head = data[:4096]
    if len(head) < 4:
        return None
    head = head[: len(head) // 2 * 2]
    even, odd = head[0::2], head[1::2]
    half = len(head) // 2
    if odd.count(0) > 0.6 * half and even.count(0) < 0.1 * half:
        return "utf-16-le"
    if even.count(0) > 0.6 * half and odd.count(0) < 0.1 * half:
        return "utf-16-be"
    return None


_SEP_LINE = re.compile(r"\A\s*sep=(.)[ \t]*(?:\r\n|\r|\n|\Z)", re.IGNORECASE)


def _first_content_line(text: str) -> str:
    for line in io.StringIO(text[:_SNIFF_CHARS], newline=""):
        if line.strip().strip(_DELIMITERS + " "):
            return line
    return ""


def _delimiter_for_columns(text: str, expect: list[str]) -> str | None:
    """The delimiter that splits one of the first lines into the most of the ``expect``-ed column names (a
    title line above the header, "Export, November", must not decide it); None when no line has any."""
    want = _folded(expect)
    best, best_score = None, 0
    lines = text[:_SNIFF_CHARS].splitlines()[:HEADER_SCAN_ROWS]
    for d in _DELIMITERS:
        score = max((len(want.intersection(f.strip().strip('"').strip().casefold() for f in line.split(d)))
                     for line in lines), default=0)
        if score > best_score:
            best, best_score = d, score
    return best


def _detect_delimiter(text: str) -> str:
    """Comma, semicolon, tab or pipe: csv.Sniffer on a sample, checked against the header line."""
    header = _first_content_line(text)
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS:  # cut at a line end so the sniffer sees whole lines
        sample = sample[: max(sample.rfind("\n"), len(header))]
    counts = {d: header.count(d) for d in _DELIMITERS}
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    if sniffed in counts and counts[sniffed] > 0:
        return sniffed
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: the order of _DELIMITERS
    return best if counts[best] > 0 else ","


def _read_csv(p: Path, *, encoding: str | None, delimiter: str | None, header_row: int | None = None,
              expect: list[str] | None = None) -> Sheet:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p} cannot be read ({exc.strerror or exc}); check its permissions") from None
    text, used = _decode(p, data, encoding)
    if text.startswith(_BOM):
        text = text[1:]
    if "\x00" in text[:_SNIFF_CHARS]:
        raise InputError(
            f"{p} does not look like a text CSV file (it holds NUL bytes, as binary files and UTF-16 text do); "
            f"save the sheet from Excel as CSV UTF-8, or give the right encoding (e.g. utf-16)"
        )
    if not text.strip():
        raise InputError(f"{p} has no header row: the file is blank; export the sheet again")
    # Excel's "sep=;" first line names the delimiter; Excel does not show it as a row, and neither do we
    sep_line = _SEP_LINE.match(text)
    if sep_line:
        text = text[sep_line.end():]
        if delimiter is None:
            delimiter = sep_line.group(1)
    if delimiter is None:
        sep = (_delimiter_for_columns(text, expect) if expect else None) or _detect_delimiter(text)
    else:
        sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(delimiter, delimiter)
        if len(sep) != 1 or sep in "\"\r\n":
            raise InputError(f"invalid delimiter {shown(delimiter)}: use one character such as , ; | or tab")
    if _BARE_CR.search(text) or _first_content_line(text).count(sep) > _WIDE:
        # the standard library's parser is right about a bare CR inside quotes whatever the pandas version,
        # and linear in the width: pandas takes minutes over a garbage file with a million "columns"
        values = _parse_csv_py(p, text, sep)
    else:
        values = _parse_csv(p, text, sep)
    # a record's row is its position, as Excel shows the file: a quoted cell holding a line break is
    # one row there, not two, so the rows after it keep their numbers
    return _build(p, values, None, convert=None, where=str(p), encoding=used, delimiter=sep,
                  header_row=header_row, expect=expect)


_BARE_CR = re.compile(r"\r(?!\n)")
_WIDE = 1000  # columns


def _parse_csv_py(p: Path, text: str, sep: str) -> list[list[Cell]]:
    """The standard library's parser: slower than pandas' C engine, but right about a bare CR inside a
    quoted cell (Mac line ends inside a note); used only for files that hold one."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"', doublequote=True,
                                  strict=False))
    except csv.Error as exc:
        raise InputError(f"{p} cannot be parsed as CSV ({_one_line(exc)}); check the quotes on that line") from None
    width = max((len(r) for r in records), default=0)
    return [[c if c != "" else None for c in r] + [None] * (width - len(r)) for r in records]


def _parse_csv(p: Path, text: str, sep: str) -> list[list[Cell]]:
    options: dict[str, object] = dict(
        sep=sep,
        engine="c",
        header=None,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=False,
        quotechar='"',
        doublequote=True,
    )
    try:
        df = pd.read_csv(io.StringIO(text), **options)
    except pd.errors.EmptyDataError:
        raise InputError(f"{p} has no header row: the file is blank; export the sheet again") from None
    except pd.errors.ParserError as exc:
        # a later line has more fields than the first one: read again with the widest line's width
        width = _max_fields(text, sep)
        if width is None:
            raise InputError(
                f"{p} cannot be parsed as CSV ({_one_line(exc)}); check the quotes on that line"
            ) from None
        try:
            df = pd.read_csv(io.StringIO(text), names=list(range(width)), **options)
        except pd.errors.ParserError as exc2:
            raise InputError(
                f"{p} cannot be parsed as CSV ({_one_line(exc2)}); check the quotes on that line"
            ) from None
    arr = df.to_numpy(dtype=object, na_value=None)
    arr[arr == ""] = None  # short lines give NaN -> None above; empty fields give "" -> None here
    return arr.tolist()


def _max_fields(text: str, sep: str) -> int | None:
    try:
        return max((len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep)), default=0)
    except csv.Error:
        return None


# --------------------------------------------------------------------------- common: header, blank rows


def _is_blank(value: object) -> bool:
    return value is None or (type(value) is str and (not value or value.isspace()))


def _header_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, str):
        text = value
    else:
        text = _EXCEL_CONVERTERS.get(type(value), str)(value) or ""  # type: ignore[operator]
    return text.replace(_BOM, "").strip()


def _build(
    p: Path,
    raw: list[list[object]],
    lines: list[int] | None,
    *,
    convert: Callable[[list[object]], list[Cell]] | None,
    where: str,
    sheet_name: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    expect: list[str] | None = None,
) -> Sheet:
    """Header detection, blank-row skipping and column selection over rectangular ``raw`` rows."""
    notes: list[str] = []
    header_at = next((i for i, row in enumerate(raw) if not all(_is_blank(c) for c in row)), None)
    if header_at is None:
        raise InputError(f"{where} has no header row: every row is blank; put the column names in the first row")
    line_of = (lambda i: lines[i]) if lines is not None else (lambda i: i + 1)
    if header_row is not None:
        at = next((i for i in range(len(raw)) if line_of(i) == header_row), None)
        if at is None or all(_is_blank(c) for c in raw[at]):
            state = "is blank" if at is not None else f"is past the end (the last row is {line_of(len(raw) - 1)})"
            raise InputError(f"{where}: row {header_row}, named as the header row (source.header_row), {state}; "
                             f"give the row that holds the column names")
        header_at = at
    elif expect:
        # title rows above the header ("Bookings export, November"): the header is the first row holding
        # the most of the columns the mapping needs, when that is not the first non-blank row
        want = _folded(expect)
        first_score = _header_score(raw[header_at], want)
        if first_score < len(want):
            best_at, best = header_at, first_score
            for i in range(header_at + 1, min(len(raw), header_at + HEADER_SCAN_ROWS)):
                score = _header_score(raw[i], want)
                if score > best:
                    best_at, best = i, score
            if best_at != header_at:
                skipped = best_at - header_at
                notes.append(
                    f"{where}: the header is row {line_of(best_at)} ({best} of the mapping's {len(want)} columns); "
                    f"the {skipped} row{'s' if skipped > 1 else ''} above it {'are' if skipped > 1 else 'is'} "
                    f"read as a title and skipped (set source.header_row in the mapping to choose another row)"
                )
                header_at = best_at
    header = [_header_text(c) for c in raw[header_at]]
    width = len(header)

    rows: list[list[Cell]] = []
    numbers: list[int] = []
    for i in range(header_at + 1, len(raw)):
        row = convert(raw[i]) if convert is not None else raw[i]
        for c in row:
            if not (c is None or (type(c) is str and c.isspace())):
                rows.append(row)  # type: ignore[arg-type]
                numbers.append(line_of(i))
                break

    # a blank header cell names its column only when the column holds data; empty ones go
    keep = [j for j, name in enumerate(header) if name or _column_has_data(rows, j)]
    columns = [header[j] or f"Column {column_letter(j)}" for j in keep]
    _check_duplicates(columns, keep, where)
    if len(keep) != width:
        lo, hi = keep[0], keep[-1] + 1
        if hi - lo == len(keep):  # the usual case: empty columns only at the edges
            rows = [r[lo:hi] for r in rows]
        else:
            pick = operator.itemgetter(*keep)
            rows = [list(pick(r)) for r in rows] if len(keep) > 1 else [[r[lo]] for r in rows]

    return Sheet(
        path=p,
        columns=columns,
        rows=rows,
        line_numbers=numbers,
        sheet_name=sheet_name,
        encoding=encoding,
        delimiter=delimiter,
        header_line=line_of(header_at),
        notes=notes,
    )


def _column_has_data(rows: list[list[Cell]], j: int) -> bool:
    return any(not _is_blank(r[j]) for r in rows)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic GC while building millions of acyclic objects (it halves an xlsx read, and
    mapping 100,000 rows into payload dicts likewise); the collector runs again afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_duplicates(columns: list[str], positions: list[int], where: str) -> None:
    seen: dict[str, int] = {}
    for name, pos in zip(columns, positions):
        if name in seen:
            first, second = column_letter(seen[name]), column_letter(pos)
            raise InputError(
                f'{where}: two columns are named "{shown(name)}" (columns {first} and {second}); '
                f"rename one of them so each header is unique"
            )
        seen[name] = pos


# --------------------------------------------------------------------------- messages


def _missing_column_message(name: str, columns: list[str], p: Path) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    lowered = [c for c in columns if c.casefold() == name.casefold()]
    hint = f' (did you mean "{shown((lowered or close)[0])}"?)' if (lowered or close) else ""
    found = shown_list([f'"{c}"' for c in columns]) or "none"
    return f'{p} has no column "{shown(name)}"{hint}; the columns found are: {found}'


def shown(text: object, limit: int = _SHOWN_CHARS) -> str:
    """File content made safe for a one-line message: control characters, NULs and line breaks escaped
    (``\\x00``, ``\\n``), and at most ``limit`` characters, the rest counted."""
    s = str(text)
    cut = s[:limit]
    safe = "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in cut)
    if len(s) > limit:
        safe += f"… ({len(s) - limit:,} more characters)"
    return safe


def shown_list(items: list[str], limit: int = _SHOWN_ITEMS, sep: str = ", ") -> str:
    """``items`` (each passed through :func:`shown`) joined, at most ``limit`` of them, the rest counted."""
    parts = [shown(i) for i in items[:limit]]
    if len(items) > limit:
        parts.append(f"… and {len(items) - limit:,} more")
    return sep.join(parts)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return shown(text, 200) or type(exc).__name__
