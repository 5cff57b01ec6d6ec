"""The ``Results`` sheet: one row per input row, coloured by who acts, faulty cells marked."""
from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from xlsxwriter.worksheet import Worksheet

from flows.outcomes import Outcome, Status
from flows.workbooks.results_layout import (
    _FORMULA_TRIGGERS,
    _RESULT_WIDTHS,
    _TRAIL_COLUMNS,
    _WIDTH_CAP,
    _WIDTH_SAMPLE,
    FAULT_FILL,
    LEAD_COLUMNS,
    MASK,
    MESSAGE_LIMIT,
    RESULT_COLUMNS,
    STATUS_FILLS,
    WHO_ACTS,
)
from flows.workbooks.results_styles import _Formats
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
    outcomes: Sequence[Outcome | None],
    masked_columns: Collection[str],
    number_formats: Mapping[str, str],
) -> tuple[_Tally, _RowsPlan]:
    keep = [j for j, name in enumerate(columns) if name not in RESULT_COLUMNS]
    masked_names = set(masked_columns)
    lead = len(LEAD_COLUMNS)
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

    # only what needs the rows' outcomes here (counts, notes on marked cells); the cells themselves are
    # written as XML by flows.workbooks.results_xml once XlsxWriter has closed the workbook
    counts: Counter[Status] = Counter()
    by_column: Counter[str] = Counter()
    column_messages: dict[str, Counter[str]] = {}
    faults: dict[int, set[int]] = {}
    for i, outcome in enumerate(outcomes):
        if outcome is None:
            counts[Status.SKIPPED] += 1
            continue
        counts[Status(outcome.status)] += 1
        if not outcome.column_messages:
            continue
        for name, messages in outcome.column_messages.items():
            at = position.get(name)
            if at is None or not messages:
                continue
            # messages are already masked by the engine (flows.redact): a note never shows a secret
            note = "\n".join(dict.fromkeys(messages))[:MESSAGE_LIMIT]
            ws.write_comment(i + 1, at, note, {"x_scale": 2, "y_scale": 1.5})
            faults.setdefault(i, set()).add(at)
            by_column[name] += 1
            column_messages.setdefault(name, Counter())[messages[0][:200]] += 1

    # every format the rows may use is written once, in a row below the data that the splice drops, so
    # that XlsxWriter puts it into the styles and gives it an index (Format.xf_index) on closing
    used = [f for f in formats.cell.values() if f is not None]
    for fill in _FILLS:
        for code in set(custom.values()):
            used.append(formats.custom(fill, code))
    for c, fmt in enumerate(used):
        ws.write_blank(len(rows) + 1, c, None, fmt)
    plan = _RowsPlan(keep, masked, custom, faults, lead, last_col)
    return _Tally(counts, by_column, column_messages), plan


class _RowsPlan(NamedTuple):
    """What :func:`flows.workbooks.results_xml.rows_xml` needs to write the data rows."""

    keep: list[int]  # input columns written, in order
    masked: set[int]  # sheet columns masked
    custom: dict[int, str]  # sheet column -> the input's number format
    faults: dict[int, set[int]]  # row index -> sheet columns of its marked cells
    lead: int
    last_col: int


_FILLS: list[str | None] = [None, *sorted(set(STATUS_FILLS.values())), FAULT_FILL]


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
