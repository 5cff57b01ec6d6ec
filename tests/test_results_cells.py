"""The Results data rows written as XML (flows.workbooks.results_xml) read back as the values written.

Odd values a real sheet or provider can hold, read back with openpyxl and calamine: text needing
XML escapes, Excel's own ``_xHHHH_`` escapes, edge whitespace, formula-like text, a text over
Excel's cell limit, booleans, numbers, NaN, dates around Excel's 1900 leap-year bug, time zones.
"""
from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pandas as pd

from flows.outcomes import Outcome, Status
from flows.workbooks.results import MASK, write_results

ODD: list[tuple[object, object]] = [  # (written, read back by openpyxl)
    (" lead", " lead"),
    ("trail ", "trail "),
    ("x & <y> \"q\"", "x & <y> \"q\""),
    ("_x0041_ literal", "_x005F_x0041_ literal"),  # Excel's escaped underscore: openpyxl leaves it, calamine
                                                   # and Excel undo it (as with XlsxWriter's own writing)
    ("line\nbreak", "line\nbreak"),
    ("é€😀", "é€😀"),
    ("x" * 40_000, "x" * 32_767),
    (True, True),
    (3, 3),
    (2.5, 2.5),
    (float("nan"), None),
    (dt.date(1900, 2, 28), dt.datetime(1900, 2, 28)),
    (dt.date(1900, 3, 1), dt.datetime(1900, 3, 1)),
    (dt.datetime(2026, 1, 2, 3, 4, 5), dt.datetime(2026, 1, 2, 3, 4, 5)),
    (dt.time(23, 59), dt.time(23, 59)),
    (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "2026-01-01 00:00:00+00:00"),
    (None, None),
    ("", None),
]


def _write(tmp_path, outcome: Outcome):
    columns = ["Ref", "Value", "Secret"]
    rows = [[f"R{i}", value, "pw" if i % 2 else None] for i, (value, _) in enumerate(ODD)]
    return write_results(tmp_path / "r.xlsx", columns=columns, rows=rows, line_numbers=list(range(2, len(ODD) + 2)),
                         outcomes=[outcome] * len(ODD), summary={"mode": "run"}, masked_columns=["Secret"])


def test_odd_values_read_back_as_written(tmp_path):
    out = _write(tmp_path, Outcome(Status.CREATED, provider_id="=id", http_status=201, attempts=1))
    ws = openpyxl.load_workbook(out)["Results"]
    header = [c.value for c in ws[1]]
    assert header == ["_status", "_message", "Ref", "Value", "Secret", "_row", "_provider_id", "_http_status",
                      "_attempts"]
    for r, (_, expected) in enumerate(ODD, start=2):
        got = ws.cell(r, 4).value
        assert got == expected, (r, got)
        assert ws.cell(r, 5).value == (MASK if r % 2 else None)
        assert ws.cell(r, 6).value == r and ws.cell(r, 8).value == 201 and ws.cell(r, 9).value == 1
        pid = ws.cell(r, 7)
        assert pid.value == "=id" and pid.data_type == "s" and pid.quotePrefix  # text, never a formula
    frame = pd.read_excel(out, sheet_name="Results", engine="calamine", dtype=object)
    assert list(frame["Ref"]) == [f"R{i}" for i in range(len(ODD))]
    assert frame["Value"][2] == "x & <y> \"q\"" and frame["Value"][3] == "_x0041_ literal"
    with zipfile.ZipFile(out) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert f'<dimension ref="A1:I{len(ODD) + 1}"/>' in sheet
    assert f'<row r="{len(ODD) + 2}"' not in sheet  # the row that gave every format its index is gone


def test_a_filled_row_keeps_its_fill_on_every_cell_kind(tmp_path):
    """Numbers, dates and blanks of a pink row are pink too (formats with equal properties share one index)."""
    out = _write(tmp_path, Outcome(Status.REJECTED, "Value: refused", http_status=422, attempts=1,
                                   column_messages={"Value": ["refused"]}))
    ws = openpyxl.load_workbook(out)["Results"]
    for r in range(2, len(ODD) + 2):
        for c in (1, 2, 3, 5, 6, 7, 8, 9):
            assert ws.cell(r, c).fill.fgColor.rgb == "FFFFC7CE", (r, c)
        marked = ws.cell(r, 4)  # the cell the message names: darker, bordered, with the message as a note
        assert marked.fill.fgColor.rgb == "FFFF8F8F" and marked.comment is not None
        assert marked.comment.text == "refused"
