"""The cell types a sheet reads into (:data:`Cell`) and how calamine's Excel values become them."""
from __future__ import annotations

import datetime
from collections.abc import Callable

Cell = str | datetime.datetime | datetime.date | datetime.time | None

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
