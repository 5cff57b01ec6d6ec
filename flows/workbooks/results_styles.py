"""The cell formats of the results workbook, made once per workbook."""
from __future__ import annotations

from typing import NamedTuple

import xlsxwriter
from xlsxwriter.format import Format

from flows.outcomes import Status
from flows.workbooks.results_layout import _FAULT_BORDER, _KINDS, _NUM_FORMATS, FAULT_FILL, STATUS_FILLS

# --------------------------------------------------------------------------- formats


class _Formats:
    """Every format the workbook uses, made once: (fill or None) x cell kind, plus a few extras."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._workbook = workbook
        fills: list[str | None] = [None, *sorted(set(STATUS_FILLS.values())), FAULT_FILL]
        self.cell: dict[tuple[str | None, str], Format | None] = {}
        self._custom: dict[tuple[str | None, str], Format] = {}
        # equal properties share one Format: XlsxWriter gives a duplicate no index of its own
        # (Format.xf_index), and the Results rows are written with those indices
        self._made: dict[tuple[tuple[str, object], ...], Format] = {}
        for fill in fills:
            for kind in _KINDS:
                props = self._props(fill, kind)
                self.cell[(fill, kind)] = self._format(props) if props else None
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
        return _RowStyle._make([*(self.cell[(fill, kind)] for kind in _KINDS), fill])

    def fault(self) -> _RowStyle:
        return _RowStyle._make([*(self.cell[(FAULT_FILL, kind)] for kind in _KINDS), FAULT_FILL])

    def custom(self, fill: str | None, code: str) -> Format:
        """A date/time cell in the input's own number format, in a row's fill."""
        key = (fill, code)
        fmt = self._custom.get(key)
        if fmt is None:
            fmt = self._custom[key] = self._format({**self._props(fill, "text"), "num_format": code})
        return fmt

    def _format(self, props: dict[str, object]) -> Format:
        key = tuple(sorted(props.items()))
        fmt = self._made.get(key)
        if fmt is None:
            fmt = self._made[key] = self._workbook.add_format(props)
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
