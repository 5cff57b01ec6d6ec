"""The ``Summary`` sheet: counts by status, problems by column, the next command, run details."""
from __future__ import annotations

import datetime
import os
import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from xlsxwriter.worksheet import Worksheet

from flows.outcomes import Status
from flows.workbooks.results_layout import _FORMULA_TRIGGERS, FAULT_FILL, STATUS_FILLS, TECHNICAL_HEADING, WHO_ACTS
from flows.workbooks.results_sheet import _Tally
from flows.workbooks.results_styles import _Formats


def summary_pairs(rows: Iterable[Sequence[object]]) -> dict[str, str]:
    """A Summary sheet's rows (the first row included) as key/value text: the count of each status that
    occurred and ``total`` (from the "Rows by status" table), then the run details below
    :data:`TECHNICAL_HEADING`. For a workbook written before the heading existed: every key/value row
    below the first."""
    rows = [row for row in rows if row]
    heading = next((i for i, row in enumerate(rows) if _summary_text(row[0]) == TECHNICAL_HEADING), None)
    out: dict[str, str] = {}
    if heading is None:
        pairs = rows[1:]
    else:
        table = next((i for i, row in enumerate(rows[:heading]) if len(row) >= 2
                      and (_summary_text(row[0]), _summary_text(row[1])) == ("status", "rows")), heading)
        counts = []
        for row in rows[table + 1:heading]:
            counts.append(row)
            if _summary_text(row[0]) == "total":
                break
        pairs = counts + rows[heading + 1:]
    for row in pairs:
        if len(row) >= 2 and _summary_text(row[0]):
            out[_summary_text(row[0])] = _summary_text(row[1])
    return out



# --------------------------------------------------------------------------- Summary sheet


def _write_summary_sheet(
    ws: Worksheet, formats: _Formats, tally: _Tally, summary: Mapping[str, object], target: Path
) -> None:
    """What happened (counts by status, coloured: the legend), problems by column, the next step with
    the exact command, then the technical detail below :data:`TECHNICAL_HEADING`."""
    ws.set_column(0, 0, 30)
    ws.set_column(1, 1, 12)
    ws.set_column(2, 2, 34)
    ws.set_column(3, 3, 80)
    counts = tally.counts
    total = sum(counts.values())
    source = str(summary.get("input file") or "")
    ws.write_string(0, 0, f"Results of {Path(source).name or target.name}", formats.title)
    ws.write_string(1, 0, _verdict(counts))
    r = 3
    ws.write_string(r, 0, "Rows by status", formats.heading)
    r += 1
    for c, name in enumerate(("status", "rows", "who acts", "what to do")):
        ws.write_string(r, c, name, formats.header)
    r += 1
    for status in Status:
        n = counts.get(status, 0)
        if not n:
            continue
        who, what = WHO_ACTS[status]
        fill = STATUS_FILLS.get(status)
        cell = formats.legend[fill] if fill else formats.legend_plain
        ws.write_string(r, 0, status.value, cell)
        ws.write_number(r, 1, n, cell)
        ws.write_string(r, 2, who, cell)
        ws.write_string(r, 3, what, cell)
        r += 1
    ws.write_string(r, 0, "total", formats.bold)
    ws.write_number(r, 1, total, formats.bold)
    r += 1
    if tally.by_column:
        ws.write_string(r, 0, "marked cell", formats.legend[FAULT_FILL])
        ws.write_string(r, 2, "the input cell to fix", formats.legend_plain)
        ws.write_string(r, 3, "its note (hover, or right-click > Show Comment) gives the message", formats.legend_plain)
        r += 1
    r += 1

    if tally.by_column:
        ws.write_string(r, 0, "Problems by column", formats.heading)
        r += 1
        for c, name in enumerate(("column", "rows", "commonest message")):
            ws.write_string(r, c, name, formats.header)
        r += 1
        for name, n in tally.by_column.most_common(_PROBLEM_COLUMNS):
            message = tally.column_messages[name].most_common(1)[0][0]
            _summary_string(ws, r, 0, name, formats)
            ws.write_number(r, 1, n)
            _summary_string(ws, r, 2, message, formats)
            r += 1
        if len(tally.by_column) > _PROBLEM_COLUMNS:
            ws.write_string(r, 0, f"... and {len(tally.by_column) - _PROBLEM_COLUMNS} more columns")
            r += 1
        r += 1

    ws.write_string(r, 0, "Next step", formats.heading)
    r += 1
    for text, command in next_command(target, summary, counts):
        if text:
            ws.write_string(r, 0, text)
            r += 1
        if command:
            ws.merge_range(r, 0, r, 3, command, formats.command)
            r += 1
    r += 1

    ws.write_string(r, 0, TECHNICAL_HEADING, formats.heading)
    r += 1
    f_text, f_quoted = formats.cell[(None, "text")], formats.cell[(None, "quoted")]
    for key, value in summary.items():
        ws.write_string(r, 0, str(key), formats.bold)
        if isinstance(value, bool) or value is None:
            text = "" if value is None else str(value).lower()
        elif isinstance(value, (int, float)) and value == value:
            ws.write_number(r, 1, value)
            r += 1
            continue
        elif isinstance(value, (datetime.date, datetime.time)):
            text = value.isoformat()
        elif isinstance(value, datetime.timedelta):
            text = f"{value.total_seconds():.3f} s"
        elif isinstance(value, (list, tuple, set, frozenset)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        if text:
            ws.write_string(r, 1, text, f_quoted if text[0] in _FORMULA_TRIGGERS else f_text)
        r += 1


_PROBLEM_COLUMNS = 15  # columns listed under "Problems by column"


def _summary_string(ws: Worksheet, r: int, c: int, text: str, formats: _Formats) -> None:
    """Text from the sheet or a provider (column names, messages): never a formula."""
    if text:
        ws.write_string(r, c, text, formats.cell[(None, "quoted" if text[0] in _FORMULA_TRIGGERS else "text")])


def _verdict(counts: Counter[Status]) -> str:
    """One line: how many rows, and how many are done, to fix, for the operator, not sent."""
    total = sum(counts.values())
    parts = [
        ("booked", counts[Status.CREATED]),
        ("queued by the provider", counts[Status.ACCEPTED]),
        ("to fix in the sheet", counts[Status.INVALID] + counts[Status.REJECTED]),
        ("not delivered (operator)", counts[Status.FAILED]),
        ("to check with the provider first", counts[Status.UNKNOWN]),
        ("not sent (skipped)", counts[Status.SKIPPED]),
    ]
    said = ", ".join(f"{n:,} {what}" for what, n in parts if n)
    return f"{total:,} row{'s' if total != 1 else ''}" + (f": {said}" if said else "")


def next_command(results: str | os.PathLike[str], summary: Mapping[str, object],
                 counts: Mapping[Status, int]) -> list[tuple[str, str | None]]:
    """What to do next, as (sentence, command or None) pairs: the exact ``booking-import`` command for
    these results (``rerun`` when any row is left to send, ``status`` when rows wait for the provider)."""
    path = shlex.quote(str(results))
    fix = counts.get(Status.INVALID, 0) + counts.get(Status.REJECTED, 0)
    failed, unknown = counts.get(Status.FAILED, 0), counts.get(Status.UNKNOWN, 0)
    skipped, accepted = counts.get(Status.SKIPPED, 0), counts.get(Status.ACCEPTED, 0)

    def rows(n: int) -> str:
        return f"{n:,} row{'s' if n != 1 else ''}"

    steps: list[tuple[str, str | None]] = []
    if str(summary.get("mode", "")).startswith("validate"):
        if fix:
            steps.append((f"Fix the marked cells of the {rows(fix)} in pink in the input sheet (each cell's note "
                          f"says why), save it and check again:", None))
            source, mapping = summary.get("input file"), summary.get("mapping")
            if source and mapping:
                steps.append(("", f"booking-import validate {shlex.quote(str(source))} --mapping "
                                  f"{shlex.quote(str(mapping))}"))
            steps.append(("Or fix them in this workbook and send every valid row with:",
                          f"booking-import rerun {path}"))
        else:
            steps.append(("Every row is valid. Send them with:", f"booking-import rerun {path}"))
        return steps
    if fix:
        steps.append((f"Fix the marked cells of the {rows(fix)} in pink (each cell's note says why) and save "
                      f"this workbook.", None))
    if failed:
        steps.append((f"{rows(failed)} could not be delivered (lavender): fix the cause their message names "
                      f"(credentials, address, network).", None))
    if unknown:
        steps.append((f"{rows(unknown)} may have reached the provider (amber): never book them by hand. The rerun "
                      f"checks each with the provider before sending; where the provider offers no check (Systems X "
                      f"Bridge), check them yourself first, then add --resend-unknown.", None))
    if skipped:
        steps.append((f"{rows(skipped)} skipped (grey): the rerun sends those not booked yet; their message says "
                      f"why they were not sent.", None))
    if fix or failed or unknown or skipped:
        steps.append(("Then run:", f"booking-import rerun {path}"))
    if accepted:
        steps.append((f"{rows(accepted)} queued by the provider (blue): when it has confirmed them, refresh "
                      f"this workbook with:", f"booking-import status {path}"))
    if not steps:
        steps.append(("Nothing to do: every row is booked.", None))
    return steps


def _summary_text(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime.date, datetime.time)):  # pandas' Timestamp is a datetime
        return value.isoformat()
    return str(value)
