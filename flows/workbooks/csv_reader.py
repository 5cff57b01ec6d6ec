"""Reading a CSV file: its encoding, its delimiter, and its records with the line Excel shows."""
from __future__ import annotations

import codecs
import csv
import ctypes
import io
import re
from collections.abc import Callable
from pathlib import Path

from flows.errors import InputError
from flows.workbooks.cells import Cell
from flows.workbooks.sheet_rows import _BOM, HEADER_SCAN_ROWS, Sheet, _build, _folded, _one_line, shown

_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024

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
    del data  # a million-row file: the bytes are not needed again
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
        sep_line = None  # it holds the whole text as read
    if delimiter is None:
        sep = (_delimiter_for_columns(text, expect) if expect else None) or _detect_delimiter(text)
    else:
        sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(delimiter, delimiter)
        if len(sep) != 1 or sep in "\"\r\n":
            raise InputError(f"invalid delimiter {shown(delimiter)}: use one character such as , ; | or tab")
    if len(text) < _PANDAS_FROM or _BARE_CR.search(text) or _first_content_line(text).count(sep) > _WIDE:
        # the standard library's parser: as fast below _PANDAS_FROM, without importing pandas; right about a
        # bare CR inside quotes whatever the pandas version; and linear in the width (pandas takes minutes
        # over a garbage file with a million "columns")
        values = _parse_csv_py(p, text, sep)
    else:
        # the text is not needed once encoded: freed before pandas parses, since a million rows' text is
        # 150 MB at the read's peak (the bytes are handed over in a box, so only the parser holds them)
        box = [text.encode("utf-8")]  # the text came from a strict decode: it always encodes
        del text
        values = _parse_csv(p, box, sep)
    _trim_heap()
    # a record's row is its position, as Excel shows the file: a quoted cell holding a line break is
    # one row there, not two, so the rows after it keep their numbers
    return _build(p, values, None, convert=None, where=str(p), encoding=used, delimiter=sep,
                  header_row=header_row, expect=expect)


_BARE_CR = re.compile(r"\r(?!\n)")
_WIDE = 1000  # columns
#: CSV text shorter than this (characters; about 50,000 rows of a booking sheet) is parsed by the standard
#: library's reader, longer text by pandas' C engine. Both give the same records (tests/test_csv_parsers.py
#: reads the same files both ways). Below this size the standard library is about as fast (10,000 rows:
#: 0.18 s against 0.13 s) and a run does not import pandas (0.5-0.7 s here, half of a 60-row run's wall
#: time: issue 16, target 1); above it pandas is faster and holds less while parsing.
_PANDAS_FROM = 8_000_000


def _parse_csv_py(p: Path, text: str, sep: str) -> list[list[Cell]]:
    """The standard library's parser (see _PANDAS_FROM): right about a bare CR inside a quoted cell (Mac
    line ends inside a note). A quote that is never closed is refused, as pandas refuses it: it would
    otherwise swallow every line after it into one cell, and those rows would silently not be booked."""
    source = io.StringIO(text, newline="")
    reader = csv.reader(source, delimiter=sep, quotechar='"', doublequote=True, strict=False)
    records: list[list[str]] = []
    last_at, last_line = 0, 1  # where the last record starts: the text offset and the file's line
    try:
        while True:
            at, line = source.tell(), reader.line_num + 1
            record = next(reader, None)
            if record is None:
                break
            records.append(record)
            last_at, last_line = at, line
    except csv.Error as exc:
        raise InputError(f"{p} cannot be parsed as CSV ({_one_line(exc)}); check the quotes on that line") from None
    if records and _unclosed_quote(text[last_at:], sep):
        raise InputError(f"{p} cannot be parsed as CSV (the quoted cell that starts on line {last_line} is never "
                         f"closed: a \" is missing); check the quotes on that line")
    width = max((len(r) for r in records), default=0)
    blank: list[Cell] = [None]
    return [[c if c != "" else None for c in r] + blank * (width - len(r)) for r in records]


def _unclosed_quote(last_record: str, sep: str) -> bool:
    """Whether the text of a file's last record ends inside a quoted cell (an unclosed quote runs to the end
    of the file, so only the last record can hold one), read as the lenient reader reads it: a quote opens a
    cell only at the cell's start, a doubled quote inside is a quote, and after the closing quote the cell
    goes on unquoted, where a quote is just a character."""
    quoted, at_start, i, n = False, True, 0, len(last_record)
    while i < n:
        ch = last_record[i]
        if quoted:
            if ch == '"':
                if last_record.startswith('"', i + 1):
                    i += 1  # a doubled quote: one quote in the cell
                else:
                    quoted = False
        elif ch == '"' and at_start:
            quoted = True
        at_start = not quoted and ch in (sep, "\r", "\n")
        i += 1
    return quoted


def _parse_csv(p: Path, box: list[bytes], sep: str) -> list[list[Cell]]:
    """pandas' C engine, for text of _PANDAS_FROM characters and more: the file's UTF-8 bytes, taken out of
    ``box`` (so they are freed as soon as pandas is done)."""
    import pandas as pd  # for start-up speed: only a large CSV needs pandas (see _PANDAS_FROM)

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
    # pandas is handed UTF-8 bytes, not a StringIO: a StringIO holds the text at 4 bytes a character, which
    # was a third of the peak memory of reading a million rows (1.11 GB against 0.75 GB, measured)
    encoded = box.pop()
    try:
        df = pd.read_csv(io.BytesIO(encoded), encoding="utf-8", **options)
    except pd.errors.EmptyDataError:
        raise InputError(f"{p} has no header row: the file is blank; export the sheet again") from None
    except pd.errors.ParserError as exc:
        # a later line has more fields than the first one: read again with the widest line's width
        width = _max_fields(encoded.decode("utf-8"), sep)
        if width is None:
            raise InputError(
                f"{p} cannot be parsed as CSV ({_one_line(exc)}); check the quotes on that line"
            ) from None
        try:
            df = pd.read_csv(io.BytesIO(encoded), encoding="utf-8", names=list(range(width)), **options)
        except pd.errors.ParserError as exc2:
            raise InputError(
                f"{p} cannot be parsed as CSV ({_one_line(exc2)}); check the quotes on that line"
            ) from None
    del encoded
    arr = df.to_numpy(dtype=object, na_value=None)
    del df
    arr[arr == ""] = None  # short lines give NaN -> None above; empty fields give "" -> None here
    rows: list[list[Cell]] = arr.tolist()  # numpy types tolist() as Any: str or None cells, by dtype=str
    return rows


def _max_fields(text: str, sep: str) -> int | None:
    try:
        return max((len(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep)), default=0)
    except csv.Error:
        return None


def _libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _libc_malloc_trim()


def _trim_heap() -> None:
    """Hand the memory the parse freed (the file's bytes, pandas' frame) back to the system. glibc keeps
    freed blocks of the heap for reuse; a process that freed ~250 MB after reading a million rows was
    measured holding on to it, so it counted in every later peak. Nothing on other C libraries."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
