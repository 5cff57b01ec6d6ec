"""The cell types a sheet reads into (:data:`Cell`) and how calamine's Excel values become them."""
from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

Cell = str | datetime.datetime | datetime.date | datetime.time | None
#: a cell as python-calamine returns it (its stub spells the union out and names no alias)
ExcelValue = (int | float | str | bool | datetime.time | datetime.date | datetime.datetime
              | datetime.timedelta)
_V = TypeVar("_V")

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


def _converter(kind: type[_V], convert: Callable[[_V], Cell]) -> tuple[type, Callable[[object], Cell]]:
    """One entry of the table below: the converter is checked against the type it is looked up by (the table
    is keyed by the exact type of the cell, so a converter only ever sees values of its own key)."""
    return kind, cast(Callable[[object], Cell], convert)


_EXCEL_CONVERTERS: dict[type, Callable[[object], Cell]] = dict([
    _converter(str, _text_or_none),
    _converter(float, _number_text),
    _converter(int, str),
    _converter(bool, _bool_text),
    _converter(datetime.datetime, _same),
    _converter(datetime.date, _same),
    _converter(datetime.time, _same),
    _converter(datetime.timedelta, _duration),
])


def _convert_excel_row(row: Sequence[object]) -> list[Cell]:
    conv = _EXCEL_CONVERTERS
    try:
        return [conv[type(c)](c) for c in row]
    except KeyError:  # a cell type calamine may add in the future: keep it as text
        return [conv[type(c)](c) if type(c) in conv else str(c) for c in row]
