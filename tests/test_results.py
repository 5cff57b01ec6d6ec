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
    ws = openpyxl.load_workbook(written)["Results"]  # _status, _message, then the input columns from C
    date_cell, time_cell, datetime_cell = ws["F2"], ws["G2"], ws["F3"]
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
        ws["H3"].value: ws["H3"],  # =HYPERLINK in an input column
        ws["D4"].value: ws["D4"],  # +1
        ws["H4"].value: ws["H4"],  # -1+2
        ws["D5"].value: ws["D5"],  # @SUM(A1)
        ws["B4"].value: ws["B4"],  # =HYPERLINK in _message
    }
    assert set(cells) == {EVIL[0], EVIL[1], EVIL[2], EVIL[3]}
    for cell in cells.values():
        assert cell.data_type == "s" and isinstance(cell.value, str)
        assert cell.quotePrefix
    assert not ws["C3"].quotePrefix  # ordinary text has no prefix
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

    # by who acts (issue 15): failed (operator) no longer shares the pink of invalid/rejected (the sender),
    # and unknown (check with the provider) is amber, far from accepted's pale blue
    by_row = {r: fill(ws.cell(row=r, column=1)) for r in range(2, 10)}
    assert by_row == {2: None, 3: "E4DFEC", 4: "FFC7CE", 5: "FFC7CE", 6: "FFD966", 7: "DDEBF7", 8: "EDEDED",
                      9: "EDEDED"}
    assert len({by_row[3], by_row[4], by_row[6], by_row[7], by_row[8]}) == 5
    # the whole row is filled, empty cells included, so the highlight has no gaps
    assert fill(ws["H5"]) == "FFC7CE" and fill(ws["K3"]) == "E4DFEC"
    assert fill(ws["H2"]) is None


def test_header_frozen_autofilter_widths_validation(written):
    ws = openpyxl.load_workbook(written)["Results"]
    assert ws.freeze_panes == "C2"  # the header and _status/_message stay in view (issue 15)
    assert [ws.cell(row=1, column=c).value for c in (1, 2)] == ["_status", "_message"]
    assert ws.auto_filter.ref == "A1:L9"
    assert all(ws.cell(row=1, column=c).font.b for c in range(1, 13))
    widths = [ws.column_dimensions[letter].width for letter in "ABCDEFGHIJKL"]
    assert all(8 <= w <= 61 for w in widths), widths
    assert ws.column_dimensions["B"].width >= 60 and ws["B3"].alignment.wrap_text  # messages read whole
    validations = ws.data_validations.dataValidation
    assert len(validations) == 1 and str(validations[0].sqref) == "A2:A9"
    assert "unknown" in validations[0].formula1


def summary_column(path: Path, col: int = 1) -> list[object]:
    ws = openpyxl.load_workbook(path)["Summary"]
    return [ws.cell(row=r, column=col).value for r in range(1, ws.max_row + 1)]


def test_summary_sheet(written):
    # read back: the counts of the statuses that occurred and the total, then the run details below the
    # "Technical detail" heading, in the order given
    _, summary = read_results(written)
    statuses = ["created", "accepted", "skipped", "invalid", "rejected", "failed", "unknown"]
    assert list(summary)[:8] == [*statuses, "total"]
    assert [summary[s] for s in statuses] == ["1", "1", "2", "1", "1", "1", "1"] and summary["total"] == "8"
    assert list(summary)[8:] == list(SUMMARY)
    assert summary["started"] == "2026-03-01T09:00:00+00:00"
    assert summary["duration (s)"] == "1.5"
    assert summary["provider"] == "jicoo"


def test_summary_leads_with_counts_then_problems_next_step_and_technical_detail(written):
    """Issue 15: counts first (with who acts, coloured as on the Results sheet: the legend), then the
    next command, the developer detail last."""
    ws = openpyxl.load_workbook(written)["Summary"]
    a = summary_column(written)
    assert a[0] == "Results of bookings.xlsx"
    assert a[1] == ("8 rows: 1 booked, 1 queued by the provider, 2 to fix in the sheet, 1 not delivered (operator), "
                    "1 to check with the provider first, 2 not sent (skipped)")
    order = [a.index(h) for h in ("Rows by status", "Next step", results_mod.TECHNICAL_HEADING)]
    assert order == sorted(order) and order[0] < 5
    top = a.index("Rows by status") + 2
    statuses = ["created", "accepted", "skipped", "invalid", "rejected", "failed", "unknown"]
    assert a[top:top + 7] == statuses and a[top + 7] == "total"
    assert [ws.cell(row=top + 1 + i, column=2).value for i in range(8)] == [1, 1, 2, 1, 1, 1, 1, 8]
    for i, status in enumerate(statuses):  # each count row is filled like that status's rows: the legend
        cell = ws.cell(row=top + 1 + i, column=1)
        want = results_mod.STATUS_FILLS.get(Status(status))
        got = cell.fill.fgColor.rgb[-6:] if cell.fill.fill_type == "solid" else None
        assert got == (want[1:] if want else None), status
        assert ws.cell(row=top + 1 + i, column=3).value == results_mod.WHO_ACTS[Status(status)][0]
    commands = [v for v in a if isinstance(v, str) and v.startswith("booking-import ")]
    assert commands == [f"booking-import rerun {written}", f"booking-import status {written}"]
    assert "zero" not in " ".join(str(v) for v in a)


def test_summary_lists_only_statuses_that_occur(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[], line_numbers=[], outcomes=[], summary={})
    df, summary = read_results(path)
    assert list(df.columns) == ["a", *RESULT_COLUMNS] and len(df) == 0
    assert summary == {"total": "0"}  # zero counts are not listed (issue 15)
    a = summary_column(path)
    assert a[1] == "0 rows" and not set(a) & {s.value for s in Status}
    assert "Nothing to do: every row is booked." in a


def test_faulty_cell_is_marked_with_its_message_as_a_note(tmp_path):
    outcomes = [
        Outcome(Status.INVALID, "Email: not an e-mail address; Date: 31/02/2026 is not a date",
                column_messages={"Email": ["not an e-mail address"], "Date": ["31/02/2026 is not a date"]}),
        Outcome(Status.REJECTED, "the provider refused: Email is taken", http_status=422,
                column_messages={"Email": ["is taken"], "Not a column": ["ignored"]}),
        Outcome(Status.CREATED, provider_id="P1"),
    ]
    rows = [["B1", "ann(at)example", "31/02/2026"], ["B2", "bob@example.com", "01/03/2026"],
            ["B3", "cy@example.com", "01/03/2026"]]
    path = write_results(tmp_path / "r.xlsx", columns=["Ref", "Email", "Date"], rows=rows, line_numbers=[2, 3, 4],
                         outcomes=outcomes, summary={"provider": "jicoo"})
    ws = openpyxl.load_workbook(path)["Results"]
    email, date, ref = ws["D2"], ws["E2"], ws["C2"]
    assert email.value == "ann(at)example" and email.comment.text == "not an e-mail address"
    assert date.comment.text == "31/02/2026 is not a date"
    assert ref.comment is None and ws["D4"].comment is None
    marked = results_mod.FAULT_FILL[1:]
    assert email.fill.fgColor.rgb[-6:] == marked and email.border.left.style == "medium"
    assert ref.fill.fgColor.rgb[-6:] == "FFC7CE" and ref.border.left.style is None  # the row, not marked
    assert ws["D3"].comment.text == "is taken"
    assert ws["A1"].comment is not None and "who acts" in ws["A1"].comment.text  # the legend on the header
    a = summary_column(path)
    at = a.index("Problems by column")
    assert a[at + 2:at + 4] == ["Email", "Date"]  # most rows first
    assert summary_column(path, 2)[at + 2:at + 4] == [2, 1]
    assert "marked cell" in a


def test_validate_workbook_says_how_to_check_again(tmp_path):
    path = write_results(tmp_path / "v.xlsx", columns=["a"], rows=[["x"]], line_numbers=[2],
                         outcomes=[Outcome(Status.INVALID, "a: bad", column_messages={"a": ["bad"]})],
                         summary={"input file": "in put.xlsx", "mapping": "mappings/jicoo.yaml",
                                  "mode": "validate (nothing sent)"})
    commands = [v for v in summary_column(path) if isinstance(v, str) and v.startswith("booking-import ")]
    assert commands == ["booking-import validate 'in put.xlsx' --mapping mappings/jicoo.yaml",
                        f"booking-import rerun {path}"]


def test_long_messages_are_truncated(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[["x"]], line_numbers=[2],
                         outcomes=[Outcome(Status.REJECTED, message="y" * 5000)], summary={})
    df, _ = read_results(path)
    assert df["_message"].iloc[0] == "y" * 1000


def test_stale_result_columns_in_the_input_are_replaced(tmp_path):
    path = write_results(tmp_path / "r.xlsx", columns=["ref", "_status", "_message"], rows=[["B1", "failed", "old"]],
                         line_numbers=[2], outcomes=[Outcome(Status.CREATED, provider_id="P1")], summary={})
    df, _ = read_results(path)
    assert list(df.columns) == ["ref", *RESULT_COLUMNS]
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
    assert again.columns == ["_status", "_message", "ref", "phone", "note", "_row", "_provider_id", "_http_status",
                             "_attempts"]
    assert again.rows[0][:6] == ["created", None, "B1", "0612345678", "NA", "2"]
    assert again.rows[1][:6] == ["skipped", results_mod.NOT_REACHED_MESSAGE, "B2", "01234", "=2+2", "4"]
    assert read_results(out)[1]["sheet"] == ""


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx", "\0x"])
def test_every_formula_trigger_gets_a_quote_prefix(tmp_path, text):
    path = write_results(tmp_path / "r.xlsx", columns=["a"], rows=[[text]], line_numbers=[2],
                         outcomes=[Outcome(Status.REJECTED, message=text)], summary={})
    ws = openpyxl.load_workbook(path)["Results"]
    for cell in (ws["C2"], ws["B2"]):
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


def _typed_input(path: Path, *, title: bool = False) -> Path:
    """An input workbook as a person types it in Excel: dates dd/mm/yyyy, times hh:mm, maybe a title row."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Bookings"
    if title:
        ws.append(["Bookings export, March"])
    ws.append(["Ref", "Date", "Start", "When", "Note"])
    for i in range(3):
        ws.append([f"B{i}", dt.datetime(2026, 3, 1 + i), dt.time(9 + i, 30), dt.datetime(2026, 3, 1 + i, 14, 5), "x"])
    top = 3 if title else 2
    for r in range(top, top + 3):
        ws.cell(r, 2).number_format = "dd/mm/yyyy"
        ws.cell(r, 3).number_format = "hh:mm"
        ws.cell(r, 4).number_format = "dd/mm/yyyy hh:mm"
    wb.save(path)
    return path


@pytest.mark.parametrize("title", [False, True])
def test_input_date_cells_keep_their_number_format(tmp_path, title):
    """Issue 15: Excel date cells typed dd/mm/yyyy come back as dates shown dd/mm/yyyy, not yyyy-mm-dd."""
    src = _typed_input(tmp_path / "in.xlsx", title=title)
    sheet = read_sheet(src, expect=["Ref", "Date", "Start", "When"])
    formats = results_mod.input_number_formats(sheet.path, sheet.sheet_name, sheet.header_line)
    assert formats == {"Date": "dd/mm/yyyy", "Start": "hh:mm", "When": "dd/mm/yyyy hh:mm"}
    outcomes = [Outcome(Status.CREATED, provider_id="1"),
                Outcome(Status.INVALID, "Date: too early", column_messages={"Date": ["too early"]}), None]
    out = write_results(tmp_path / "r.xlsx", columns=sheet.columns, rows=sheet.rows, line_numbers=sheet.line_numbers,
                        outcomes=outcomes, summary={}, number_formats=formats)
    ws = openpyxl.load_workbook(out)["Results"]
    header = [c.value for c in ws[1]]
    for r in (2, 3, 4):  # plain, marked (faulty) and filled rows alike
        date, start, when = (ws.cell(r, header.index(n) + 1) for n in ("Date", "Start", "When"))
        assert date.is_date and date.number_format == "dd/mm/yyyy" and date.value == dt.datetime(2026, 3, r - 1)
        assert start.is_date and start.number_format == "hh:mm"
        assert when.number_format == "dd/mm/yyyy hh:mm"
    assert ws.cell(3, header.index("Date") + 1).comment.text == "too early"
    # and once more from the results workbook itself (what `status` and `rerun` read)
    assert results_mod.input_number_formats(out, "Results") == formats


def test_input_number_formats_is_empty_for_csv_and_plain_workbooks(tmp_path):
    csv = tmp_path / "in.csv"
    csv.write_text("a,b\n1,2\n")
    assert results_mod.input_number_formats(csv, None) == {}
    wb = openpyxl.Workbook()
    wb.active.append(["a"])
    wb.active.append(["x"])
    wb.save(tmp_path / "plain.xlsx")
    assert results_mod.input_number_formats(tmp_path / "plain.xlsx", "Sheet") == {}
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really")
    assert results_mod.input_number_formats(tmp_path / "broken.xlsx", "Sheet") == {}


def test_a_marked_cell_in_a_masked_column_shows_the_mask_never_the_secret(tmp_path):
    out = write_results(tmp_path / "r.xlsx", columns=["Ref", "Password"], rows=[["B1", SECRET]], line_numbers=[2],
                        outcomes=[Outcome(Status.INVALID, "Password: too short",
                                          column_messages={"Password": ["too short"]})],
                        summary={}, masked_columns=["Password"])
    cell = openpyxl.load_workbook(out)["Results"]["D2"]
    assert cell.value == MASK and cell.comment.text == "too short"
    assert cell.fill.fgColor.rgb[-6:] == results_mod.FAULT_FILL[1:]
    with zipfile.ZipFile(out) as zf:
        for name in zf.namelist():
            assert SECRET.encode() not in zf.read(name), name


def test_a_workbook_written_before_issue_15_still_reads(tmp_path):
    """Old layout: result columns after the input, Summary a plain key/value table (rerun and status read it)."""
    import xlsxwriter

    path = tmp_path / "old.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("Results")
    ws.write_row(0, 0, ["ref", *RESULT_COLUMNS])
    ws.write_row(1, 0, ["B1", 2, "invalid", "", "", "ref: bad", 0])
    summary = wb.add_worksheet("Summary")
    for r, (k, v) in enumerate([("key", "value"), ("created", 0), ("invalid", 1), ("total", 1),
                                ("mapping", "mappings/jicoo.yaml"), ("run id", "r-1")]):
        summary.write(r, 0, k)
        summary.write(r, 1, v)
    wb.close()
    df, info = read_results(path)
    assert list(df.columns) == ["ref", *RESULT_COLUMNS] and df["_status"].iloc[0] == "invalid"
    assert info == {"created": "0", "invalid": "1", "total": "1", "mapping": "mappings/jicoo.yaml", "run id": "r-1"}
