"""The ``Results`` sheet: one row per input row, coloured by who acts, faulty cells marked."""
from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import pandas as pd
from xlsxwriter.worksheet import Worksheet

from flows.outcomes import Outcome, Status
from flows.workbooks.results_layout import (
    _FORMULA_TRIGGERS,
    _RESULT_WIDTHS,
    _TRAIL_COLUMNS,
    _WIDTH_CAP,
    _WIDTH_SAMPLE,
    LEAD_COLUMNS,
    MASK,
    MESSAGE_LIMIT,
    NOT_REACHED_MESSAGE,
    RESULT_COLUMNS,
    WHO_ACTS,
)
from flows.workbooks.results_styles import _Formats, _RowStyle
from flows.workbooks.sheets import Cell, column_letter

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
