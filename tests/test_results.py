"""flows.workbooks.results: the results workbook written to tmp_path, read back with pandas and openpyxl."""
from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import openpyxl
import pytest

from flows.errors import InputError
from flows.outcomes import Outcome, Status
from flows.workbooks import results as results_mod
from flows.workbooks.results import (
    MASK,
    NOT_REACHED_MESSAGE,
    RESULT_COLUMNS,
    read_results,
    write_results,
)
from flows.workbooks.sheets import read_sheet

COLUMNS = ["Booking Ref", "Name", "Password", "Date", "Start", "Note"]
SECRET = "hunter2-Sup3rSecret"
EVIL = ['=HYPERLINK("http://evil.example","click")', "+1", "-1+2", "@SUM(A1)", "\tTAB", "\rCR"]


def rows_and_outcomes() -> tuple[list[list[object]], list[int], list[Outcome | None]]:
    rows: list[list[object]] = [
        ["B1", "Ann", SECRET, dt.date(2026, 3, 1), dt.time(9, 30), None],
        ["B2", "Bob", SECRET, dt.datetime(2026, 3, 2, 14, 0), None, EVIL[0]],
        ["B3", EVIL[1], "", None, None, EVIL[2]],
        ["B4", EVIL[3], None, None, None, "0612345678"],
        ["B5", "Eve", SECRET, None, None, None],
        ["B6", "Fay", SECRET, None, None, None],
        ["B7", "Gus", SECRET, None, None, None],
        ["B8", "Hal", SECRET, None, None, None],
    ]
    lines = [2, 3, 5, 6, 7, 8, 9, 10]
    outcomes: list[Outcome | None] = [
        Outcome(Status.CREATED, provider_id="P-1", http_status=201, attempts=1),
        Outcome(Status.FAILED, message="could not connect; retries used up", attempts=3),
        Outcome(Status.REJECTED, message=EVIL[0], http_status=422, attempts=1),
        Outcome(Status.INVALID, message="phone: not a phone number"),
        Outcome(Status.UNKNOWN, message="timeout after the request was sent", attempts=1),
        Outcome(Status.ACCEPTED, provider_id="Q-7", http_status=202, attempts=1),
        Outcome(Status.SKIPPED, message="already created in run r1", provider_id="P-0"),
        None,
    ]
    return rows, lines, outcomes


SUMMARY = {
    "input file": "bookings.xlsx",
    "sheet": "Bookings",
    "mapping": "mappings/jicoo.yaml",
    "provider": "jicoo",
    "run id": "r-123",
    "started": dt.datetime(2026, 3, 1, 9, 0, 0, tzinfo=dt.UTC),
    "duration (s)": 1.5,
    "evil": "=1+1",
}


@pytest.fixture
def written(tmp_path) -> Path:
    rows, lines, outcomes = rows_and_outcomes()
    return write_results(tmp_path / "out" / "deep" / "results.xlsx", columns=COLUMNS, rows=rows, line_numbers=lines,
                         outcomes=outcomes, summary=SUMMARY, masked_columns=["Password"])


def test_columns_rows_statuses_and_messages_read_back(written):
    df, _ = read_results(written)
    assert list(df.columns) == COLUMNS + RESULT_COLUMNS
    assert list(df["_row"]) == [2, 3, 5, 6, 7, 8, 9, 10]
    assert list(df["_status"]) == ["created", "failed", "rejected", "invalid", "unknown", "accepted", "skipped",
                                   "skipped"]
    assert df["_message"].iloc[1] == "could not connect; retries used up"
    assert df["_message"].iloc[7] == NOT_REACHED_MESSAGE
    assert df["_provider_id"].iloc[0] == "P-1" and df["_http_status"].iloc[2] == 422
    assert list(df["_attempts"]) == [1, 3, 1, 0, 1, 1, 0, 0]
    assert list(df["Booking Ref"]) == [f"B{i}" for i in range(1, 9)]
    assert df["Note"].iloc[3] == "0612345678"  # text stays text


def test_dates_and_times_are_real_excel_values(written):
    ws = openpyxl.load_workbook(written)["Results"]
    date_cell, time_cell, datetime_cell = ws["D2"], ws["E2"], ws["D3"]
    assert date_cell.is_date and date_cell.value == dt.datetime(2026, 3, 1)
    assert time_cell.is_date and time_cell.value == dt.time(9, 30)
    assert datetime_cell.is_date and datetime_cell.value == dt.datetime(2026, 3, 2, 14, 0)
    assert date_cell.number_format == "yyyy-mm-dd"


def test_masked_column_never_holds_the_secret(written):
    df, _ = read_results(written)
    assert list(df["Password"].fillna("")) == [MASK, MASK, "", "", MASK, MASK, MASK, MASK]
    with zipfile.ZipFile(written) as zf:
        for name in zf.namelist():
            assert SECRET.encode() not in zf.read(name), name


def test_formula_like_text_stays_text_with_quote_prefix(written):
    wb = openpyxl.load_workbook(written)
    ws = wb["Results"]
    cells = {
        ws["F3"].value: ws["F3"],  # =HYPERLINK in an input column
        ws["B4"].value: ws["B4"],  # +1
        ws["F4"].value: ws["F4"],  # -1+2
        ws["B5"].value: ws["B5"],  # @SUM(A1)
        ws["K4"].value: ws["K4"],  # =HYPERLINK in _message
    }
    assert set(cells) == {EVIL[0], EVIL[1], EVIL[2], EVIL[3]}
    for cell in cells.values():
        assert cell.data_type == "s" and isinstance(cell.value, str)
        assert cell.quotePrefix
    assert not ws["A3"].quotePrefix  # ordinary text has no prefix
    with zipfile.ZipFile(written) as zf:
        assert b'quotePrefix="1"' in zf.read("xl/styles.xml")
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in zf.read(name) and b"<f " not in zf.read(name)
    # the Summary value "=1+1" is text too
    summary_ws = wb["Summary"]
    evil = next(r for r in summary_ws.iter_rows() if r[0].value == "evil")[1]
    assert evil.value == "=1+1" and evil.data_type == "s" and evil.quotePrefix


def test_rows_are_filled_by_status(written):
    ws = openpyxl.load_workbook(written)["Results"]

    def fill(cell) -> str | None:
        return cell.fill.fgColor.rgb[-6:] if cell.fill.fill_type == "solid" else None

    by_row = {r: fill(ws.cell(row=r, column=1)) for r in range(2, 10)}
    assert by_row == {2: None, 3: "FFC7CE", 4: "FFC7CE", 5: "FFC7CE", 6: "FFEB9C", 7: "FFF2CC", 8: "EDEDED",
                      9: "EDEDED"}
    # the whole row is filled, empty cells included, so the highlight has no gaps
    assert fill(ws["F5"]) == "FFC7CE" and fill(ws["K3"]) == "FFC7CE"
    assert fill(ws["F2"]) is None


def test_header_frozen_autofilter_widths_validation(written):
    ws = openpyxl.load_workbook(written)["Results"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:L9"
    assert all(ws.cell(row=1, column=c).font.b for c in range(1, 13))
    widths = [ws.column_dimensions[letter].width for letter in "ABCDEFGHIJKL"]
    assert all(8 <= w <= 61 for w in widths), widths
    validations = ws.data_validations.dataValidation
    assert len(validations) == 1 and str(validations[0].sqref) == "H2:H9"
    assert "unknown" in validations[0].formula1


def test_summary_sheet(written):
    _, summary = read_results(written)
    keys = list(summary)
    statuses = ["created", "accepted", "skipped", "invalid", "rejected", "failed", "unknown"]
    assert keys[:7] == statuses
    assert [summary[s] for s in statuses] == ["1", "1", "2", "1", "1", "1", "1"]
    assert summary["total"] == "8"
    assert keys[8:] == list(SUMMARY)
    assert summary["started"] == "2026-03-01T09:00:00+00:00"
    assert summary["duration (s)"] == "1.5"
    assert summary["provider"] == "jicoo"


def test_summary_lists_zero_counts(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[], line_numbers=[], outcomes=[], summary={})
    df, summary = read_results(path)
    assert list(df.columns) == ["a"] + RESULT_COLUMNS and len(df) == 0
    assert summary == {s.value: "0" for s in Status} | {"total": "0"}


def test_long_messages_are_truncated(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[["x"]], line_numbers=[2],
                         outcomes=[Outcome(Status.REJECTED, message="y" * 5000)], summary={})
    df, _ = read_results(path)
    assert df["_message"].iloc[0] == "y" * 1000


def test_stale_result_columns_in_the_input_are_replaced(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["ref", "_status", "_message"], rows=[["B1", "failed", "old"]],
                         line_numbers=[2], outcomes=[Outcome(Status.CREATED, provider_id="P1")], summary={})
    df, _ = read_results(path)
    assert list(df.columns) == ["ref"] + RESULT_COLUMNS
    assert df["_status"].iloc[0] == "created"


def test_atomic_write_replaces_and_leaves_no_temp_files(tmp_path, written):
    folder = written.parent
    assert [p.name for p in folder.iterdir()] == ["results.xlsx"]
    rows, lines, outcomes = rows_and_outcomes()
    write_results(written, columns=COLUMNS, rows=rows[:1], line_numbers=lines[:1], outcomes=outcomes[:1], summary={})
    assert [p.name for p in folder.iterdir()] == ["results.xlsx"]
    assert len(read_results(written)[0]) == 1


def test_interrupted_write_keeps_the_previous_workbook(tmp_path, written, monkeypatch):
    before = written.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results_mod, "_write_summary_sheet", boom)
    rows, lines, outcomes = rows_and_outcomes()
    with pytest.raises(KeyboardInterrupt):
        write_results(written, columns=COLUMNS, rows=rows, line_numbers=lines, outcomes=outcomes, summary={})
    assert written.read_bytes() == before
    assert [p.name for p in written.parent.iterdir()] == ["results.xlsx"]


def test_mismatched_lengths_are_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        write_results(tmp_path / "r.xlsx", columns=["a"], rows=[["x"]], line_numbers=[], outcomes=[None], summary={})


def test_read_results_rejects_other_workbooks(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_results(tmp_path / "missing.xlsx")
    other = tmp_path / "other.xlsx"
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(other))
    wb.add_worksheet("Sheet1").write_string(0, 0, "a")
    wb.close()
    with pytest.raises(InputError, match="not a results workbook"):
        read_results(other)


def test_round_trip_from_a_read_sheet(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("ref;phone;note\nB1;0612345678;NA\n\nB2;01234;=2+2\n", encoding="utf-8")
    sheet = read_sheet(src)
    out = write_results(tmp_path / "r.xlsx", columns=sheet.columns, rows=sheet.rows, line_numbers=sheet.line_numbers,
                        outcomes=[Outcome(Status.CREATED, provider_id="1"), None], summary={"sheet": sheet.sheet_name})
    again = read_sheet(out, sheet="Results")
    assert again.columns == ["ref", "phone", "note"] + RESULT_COLUMNS
    assert again.rows[0][:5] == ["B1", "0612345678", "NA", "2", "created"]
    assert again.rows[1][:5] == ["B2", "01234", "=2+2", "4", "skipped"]
    assert read_results(out)[1]["sheet"] == ""


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "\0x"])
def test_every_formula_trigger_gets_a_quote_prefix(tmp_path, text):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[[text]], line_numbers=[2],
                         outcomes=[Outcome(Status.REJECTED, message=text)], summary={})
    ws = openpyxl.load_workbook(path)["Results"]
    for cell in (ws["A2"], ws["F2"]):
        assert cell.data_type == "s" and cell.quotePrefix, repr(cell.value)
    # openpyxl shows control characters as XlsxWriter's _x000D_ escapes; calamine (and Excel) decode them
    df, _ = read_results(path)
    assert df["a"].iloc[0] == text and df["_message"].iloc[0] == text


def test_unwritable_target_is_a_readable_error(tmp_path):
    from flows.errors import ImporterError

    blocker = tmp_path / "taken"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(ImporterError) as err:
        write_results(blocker / "r.xlsx", columns=["a"], rows=[], line_numbers=[], outcomes=[], summary={})
    assert "choose another output path" in str(err.value) and "\n" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
