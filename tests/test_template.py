"""`booking-import template MAPPING`: an empty input workbook that, once filled, `validate` accepts."""
from __future__ import annotations

import datetime as dt

import openpyxl
import pytest

from flows.cli import main
from flows.mapping.model import load_mapping
from flows.workbooks.results import read_results
from flows.workbooks.template import HELP_SHEET, describe_columns

from .conftest import MAPPINGS

JICOO = MAPPINGS / "jicoo.yaml"


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def template(tmp_path, capsys):
    out = tmp_path / "to fill.xlsx"
    code, stdout, _ = run_cli(["template", JICOO, "--out", out], capsys)
    assert code == 0 and f"template: {out}" in stdout and "booking-import validate" in stdout
    return out


def test_headers_notes_dropdowns_and_formats(template):
    wb = openpyxl.load_workbook(template)
    assert wb.sheetnames[0] == "Bookings"  # the mapping's source.sheet, so validate reads it by default
    ws = wb["Bookings"]
    header = [c.value for c in ws[1]]
    assert header == load_mapping(JICOO).columns()
    assert ws.max_row == 1  # empty: nothing to import until a sender fills it
    assert ws.freeze_panes == "A2"
    col = {name: openpyxl.utils.get_column_letter(i + 1) for i, name in enumerate(header)}

    date_note = ws[f"{col['Date']}1"].comment.text
    assert date_note.startswith("Required.") and "dd/mm/yyyy" in date_note and "Example: 25/03/2027" in date_note
    assert ws[f"{col['Email']}1"].comment.text.startswith("Required.\nFormat: an e-mail address")
    phone = ws[f"{col['Phone']}1"].comment.text
    assert phone.startswith("Optional.") and "At most 32 characters." in phone
    zone = ws[f"{col['Time Zone']}1"].comment.text
    assert "Empty means Europe/London" in zone and "IANA" in zone
    assert ws[f"{col['Booking Ref']}1"].font.b and not ws[f"{col['Phone']}1"].font.b  # required are bold

    assert ws.column_dimensions[col["Date"]].number_format == "dd/mm/yyyy"
    assert ws.column_dimensions[col["Start Time"]].number_format == "hh:mm"
    assert ws.column_dimensions[col["Phone"]].number_format == "@"  # a leading zero stays

    lists = {str(v.sqref): v for v in ws.data_validations.dataValidation if v.type == "list"}
    event = lists[f"{col['Event Type']}2:{col['Event Type']}1001"]
    assert event.formula1 == '"Initial consultation,Follow-up call,Workshop"'
    meeting = lists[f"{col['Meeting']}2:{col['Meeting']}1001"]
    assert "Google Meet" in meeting.formula1
    assert set(lists) == {f"{col[c]}2:{col[c]}1001" for c in ("Event Type", "Meeting", "Language")}

    help_rows = list(wb[HELP_SHEET].iter_rows(min_row=6, values_only=True))
    assert [r[0] for r in help_rows] == header and help_rows[0][1] == "yes"


def test_a_filled_template_validates(template, tmp_path, capsys):
    wb = openpyxl.load_workbook(template)
    ws = wb["Bookings"]
    header = [c.value for c in ws[1]]
    typed = [  # as a sender types them into the formatted columns: real date and time cells
        {"Booking Ref": "T-1", "Event Type": "Workshop", "Date": dt.datetime(2027, 3, 25),
         "Start Time": dt.time(14, 30),
         "Guest Name": "Ann Lee", "Email": "ann.lee@example.com", "Phone": "07700 900123", "Meeting": "Zoom"},
        {"Booking Ref": "T-2", "Event Type": "follow-up call", "Date": dt.datetime(2027, 3, 26),
         "Start Time": dt.time(9, 0), "Time Zone": "Asia/Tokyo", "Guest Name": "Bo Ito", "Email": "bo@example.jp",
         "Language": "ja"},
    ]
    for r, values in enumerate(typed, start=2):
        for c, name in enumerate(header, start=1):
            if name in values:
                ws.cell(r, c).value = values[name]
        ws.cell(r, header.index("Date") + 1).number_format = "dd/mm/yyyy"
        ws.cell(r, header.index("Start Time") + 1).number_format = "hh:mm"
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)

    code, out, err = run_cli(["validate", filled, "--mapping", JICOO, "--out", tmp_path / "checked.xlsx"], capsys)
    assert code == 0, err
    assert "2 rows checked: 2 valid, 0 invalid" in out
    df, _ = read_results(tmp_path / "checked.xlsx")
    assert list(df["_status"]) == ["skipped", "skipped"] and list(df["Booking Ref"]) == ["T-1", "T-2"]
    # the results show the dates as the sender's sheet did
    results = openpyxl.load_workbook(tmp_path / "checked.xlsx")["Results"]
    date = results.cell(2, [c.value for c in results[1]].index("Date") + 1)
    assert date.is_date and date.number_format == "dd/mm/yyyy"


def test_a_wrongly_filled_template_marks_the_cell(template, tmp_path, capsys):
    wb = openpyxl.load_workbook(template)
    ws = wb["Bookings"]
    header = [c.value for c in ws[1]]
    row = {"Booking Ref": "T-9", "Event Type": "Massage", "Date": dt.datetime(2027, 3, 25), "Start Time": dt.time(10),
           "Guest Name": "Cy", "Email": "cy(at)example.com"}
    for name, value in row.items():
        ws.cell(2, header.index(name) + 1).value = value
    wb.save(tmp_path / "bad.xlsx")
    code, _, _ = run_cli(["validate", tmp_path / "bad.xlsx", "--mapping", JICOO, "--out", tmp_path / "r.xlsx"], capsys)
    assert code == 1
    results = openpyxl.load_workbook(tmp_path / "r.xlsx")["Results"]
    head = [c.value for c in results[1]]
    email = results.cell(2, head.index("Email") + 1)
    event = results.cell(2, head.index("Event Type") + 1)
    assert email.comment is not None and "e-mail" in email.comment.text
    assert event.comment is not None and "Massage" in event.comment.text
    assert results.cell(2, head.index("Guest Name") + 1).comment is None


@pytest.mark.parametrize("mapping", sorted(p.name for p in MAPPINGS.glob("*.yaml")))
def test_every_mapping_gets_a_template(mapping, tmp_path, capsys):
    out = tmp_path / "t.xlsx"
    code, _, err = run_cli(["template", MAPPINGS / mapping, "--out", out], capsys)
    assert code == 0, err
    m = load_mapping(MAPPINGS / mapping)
    wb = openpyxl.load_workbook(out)
    ws = wb.worksheets[0]
    assert [c.value for c in ws[1]] == m.columns()
    assert all((c.comment is not None and c.comment.text.split("\n")[0] in ("Required.", "Optional."))
               or c.comment.text.startswith("Optional.") for c in ws[1])
    required = {h.name for h in describe_columns(m) if h.required}
    assert set(m.key) <= required


def test_an_existing_file_is_never_replaced_and_bad_input_is_one_line(template, tmp_path, capsys):
    before = template.read_bytes()
    code, _, err = run_cli(["template", JICOO, "--out", template], capsys)
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert template.read_bytes() == before
    code, _, err = run_cli(["template", JICOO, "--out", tmp_path / "t.csv"], capsys)
    assert code == 2 and ".xlsx" in err and err.count("\n") == 1
    code, _, err = run_cli(["template", tmp_path / "missing.yaml"], capsys)
    assert code == 2 and err.count("\n") == 1
