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

The header is the first row with a non-blank cell; names are trimmed. Fully blank rows are
skipped, but :attr:`Sheet.line_numbers` keeps the row number a person sees in Excel (or the CSV
line where the record starts), so messages can point at the right place.

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
import gc
import io
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import python_calamine

from flows.errors import InputError

__all__ = [
    "Cell",
    "Sheet",
    "read_sheet",
    "list_sheets",
    "column_letter",
    "CSV_SUFFIXES",
    "EXCEL_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "paused_gc",
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
) -> Sheet:
    """Read a CSV/TSV or Excel/ODS file into a :class:`Sheet`.

    ``sheet`` picks a worksheet by name (default: the first visible one); it is ignored for CSV
    files, which hold a single table. ``encoding`` and ``delimiter`` force those CSV settings
    instead of detecting them. Every problem raises :class:`InputError` with a one-line message.
    """
    p = _check_path(path)
    with paused_gc():
        if p.suffix.lower() in CSV_SUFFIXES:
            return _read_csv(p, encoding=encoding, delimiter=delimiter)
        return _read_excel(p, sheet)


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


def _pick_sheet(wb: python_calamine.CalamineWorkbook, p: Path, sheet: str | None) -> str:
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
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    listed = ", ".join(f'"{n}"' for n in names)
    raise InputError(f'{p} has no sheet named "{sheet}"{hint}; the sheets are: {listed}')


def _read_excel(p: Path, sheet: str | None) -> Sheet:
    with _open_workbook(p) as wb:
        name = _pick_sheet(wb, p, sheet)
        try:
            # skip_empty_area=False keeps row/column 0 at A1, so positions are true to the file
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except (python_calamine.CalamineError, ValueError) as exc:
            raise InputError(
                f'{p}: sheet "{name}" cannot be read ({_one_line(exc)}); open the file in Excel and save it again'
            ) from None
    where = f'{p} (sheet "{name}")'
    return _build(p, raw, None, convert=_convert_excel_row, where=where, sheet_name=name)


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
    for candidate in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    # cp1252 leaves 5 bytes undefined; Latin-1 maps every byte, so this cannot fail
    return data.decode("latin-1"), "latin-1"


def _first_content_line(text: str) -> str:
    for line in io.StringIO(text[:_SNIFF_CHARS], newline=""):
        if line.strip().strip(_DELIMITERS + " "):
            return line
    return ""


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


def _count_lines(text: str) -> int:
    crlf = text.count("\r\n")
    breaks = text.count("\n") + text.count("\r") - crlf
    return breaks + (0 if text.endswith(("\n", "\r")) else 1)


def _record_lines(text: str, delimiter: str, n_records: int) -> list[int]:
    """The line where each CSV record starts (differs from record+1 when quoted fields hold newlines)."""
    if _count_lines(text) == n_records:
        return list(range(1, n_records + 1))
    starts: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous = 0
    try:
        for _ in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        pass
    if len(starts) != n_records:  # the two parsers disagree: record numbers are the best we have
        return list(range(1, n_records + 1))
    return starts


def _read_csv(p: Path, *, encoding: str | None, delimiter: str | None) -> Sheet:
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p} cannot be read ({exc.strerror or exc}); check its permissions") from None
    text, used = _decode(p, data, encoding)
    if text.startswith(_BOM):
        text = text[1:]
    if not text.strip():
        raise InputError(f"{p} has no header row: the file is blank; export the sheet again")
    if delimiter is None:
        sep = _detect_delimiter(text)
    else:
        sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(delimiter, delimiter)
        if len(sep) != 1 or sep in "\"\r\n":
            raise InputError(f"invalid delimiter {delimiter!r}: use one character such as , ; | or tab")
    values = _parse_csv(p, text, sep)
    lines = _record_lines(text, sep, len(values))
    return _build(p, values, lines, convert=None, where=str(p), encoding=used, delimiter=sep)


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
) -> Sheet:
    """Header detection, blank-row skipping and column selection over rectangular ``raw`` rows."""
    header_at = next((i for i, row in enumerate(raw) if not all(_is_blank(c) for c in row)), None)
    if header_at is None:
        raise InputError(f"{where} has no header row: every row is blank; put the column names in the first row")
    header = [_header_text(c) for c in raw[header_at]]
    width = len(header)

    rows: list[list[Cell]] = []
    numbers: list[int] = []
    for i in range(header_at + 1, len(raw)):
        row = convert(raw[i]) if convert is not None else raw[i]
        for c in row:
            if not (c is None or (type(c) is str and c.isspace())):
                rows.append(row)  # type: ignore[arg-type]
                numbers.append(lines[i] if lines is not None else i + 1)
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
                f'{where}: two columns are named "{name}" (columns {first} and {second}); '
                f"rename one of them so each header is unique"
            )
        seen[name] = pos


# --------------------------------------------------------------------------- messages


def _missing_column_message(name: str, columns: list[str], p: Path) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    lowered = [c for c in columns if c.casefold() == name.casefold()]
    hint = f' (did you mean "{(lowered or close)[0]}"?)' if (lowered or close) else ""
    found = ", ".join(f'"{c}"' for c in columns) or "none"
    return f'{p} has no column "{name}"{hint}; the columns found are: {found}'


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
