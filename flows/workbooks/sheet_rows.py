"""What both readers share: :class:`Sheet`, finding the header, dropping blank rows, messages."""
from __future__ import annotations

import datetime
import difflib
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from flows.errors import InputError
from flows.workbooks.cells import _EXCEL_CONVERTERS, Cell

_BOM = "\ufeff"
#: rows looked at (from the first non-blank one) when looking for the header row
HEADER_SCAN_ROWS = 30
#: longest piece of file content quoted in a message, and most names listed
_SHOWN_CHARS = 80
_SHOWN_ITEMS = 20
_V = TypeVar("_V")


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



def column_letter(index: int) -> str:
    """Excel's letter for a 0-based column index: ``0`` -> ``"A"``, ``27`` -> ``"AB"``."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters



def _folded(names: list[str]) -> set[str]:
    return {n.strip().casefold() for n in names if n and n.strip()}


def _header_score(row: Sequence[object], want: set[str]) -> int:
    return len(want.intersection(_header_text(c).casefold() for c in row if not _is_blank(c)))



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
        converted = _EXCEL_CONVERTERS.get(type(value), str)(value)
        # a duration under a day converts to a time of day, which has no .replace(str, str)
        text = converted.isoformat() if isinstance(converted, (datetime.date, datetime.time)) else converted or ""
    return text.replace(_BOM, "").strip()


def _build(
    p: Path,
    raw: list[list[_V]],
    lines: list[int] | None,
    *,
    convert: Callable[[list[_V]], list[Cell]] | None,
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
    # no converter: the rows are cells already (the CSV reader)
    cells = cast(list[list[Cell]], raw)
    for i in range(header_at + 1, len(raw)):
        row = convert(raw[i]) if convert is not None else cells[i]
        for c in row:
            if not (c is None or (type(c) is str and c.isspace())):
                rows.append(row)
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


def _check_duplicates(columns: list[str], positions: list[int], where: str) -> None:
    seen: dict[str, int] = {}
    for name, pos in zip(columns, positions, strict=False):
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
