"""Mapping files: how sheet columns become a payload, and what a row's problems say.

Mappings are built in code from the same dictionaries a YAML file holds; the last section runs
``flows.engine.plan.prepare`` over a small CSV with the real mappings/jicoo.yaml.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.engine.plan import prepare
from flows.errors import InputError
from flows.mapping.model import MappingFile, Problem, compile_mapping, load_mapping, set_path, split_path
from flows.providers.jicoo import CreateBooking

ROOT = Path(__file__).resolve().parents[1]
JICOO = ROOT / "mappings" / "jicoo.yaml"


def mapping(fields: dict, key: str | list[str] = "Ref", **extra) -> MappingFile:
    data = {
        "provider": "test",
        "key": key,
        "connection": {"base_url": "http://127.0.0.1:9", "auth": {"kind": "none"}},
        "request": {"path": "/bookings"},
        "fields": fields,
        **extra,
    }
    return MappingFile.model_validate(data)


def mapper(fields: dict, columns: list[str], key: str | list[str] = "Ref"):
    return compile_mapping(mapping(fields, key), columns)


# --- sources -------------------------------------------------------------------------------------------


def test_column_const_and_template_sources():
    m = mapper(
        {
            "name": {"template": "{First} {Last}"},
            "email": {"column": "Email", "transforms": ["trim", "lower"]},
            "locationId": {"const": "inPerson"},
            "duration": {"const": 30},
        },
        ["Ref", "First", "Last", "Email"],
    )
    row = m.map_row(["R1", "Ann", "Lee", " Ann@Example.COM "])
    assert row.problems == []
    assert row.payload == {"name": "Ann Lee", "email": "ann@example.com", "locationId": "inPerson", "duration": 30}
    assert list(row.payload) == ["name", "email", "locationId", "duration"]  # the mapping's order


@pytest.mark.parametrize(("first", "last", "expected"), [
    ("Ann", "Lee", "Ann Lee"),
    (" Ann ", None, "Ann"),  # an empty part leaves no stray spaces
    (None, "Lee", "Lee"),
    (None, None, None),  # every part empty: the field is empty
    ("  ", "", None),
])
def test_template_of_two_columns(first, last, expected):
    m = mapper({"name": {"template": "{First} {Last}"}}, ["Ref", "First", "Last"])
    assert m.map_row(["R1", first, last]).payload.get("name") == expected


def test_template_problem_names_both_columns():
    m = mapper({"name": {"template": "{First} {Last}", "transforms": [{"max_length": 5}]}}, ["Ref", "First", "Last"])
    assert m.map_row(["R1", "Annabelle", "Lee"]).problems == [
        Problem("First + Last", "is 13 characters long; at most 5 are allowed")]


def test_template_in_the_middle_of_text():
    m = mapper({"message": {"template": "Booked via sheet, ref {Ref}."}}, ["Ref"])
    assert m.map_row(["R7"]).payload == {"message": "Booked via sheet, ref R7."}


# --- empty values ----------------------------------------------------------------------------------------

EMPTY_CASES = [
    # (field spec, cell, payload, problems)
    ({"column": "C"}, None, {}, []),
    ({"column": "C"}, "", {}, []),
    ({"column": "C"}, "   ", {}, []),  # a cell of spaces is empty
    ({"column": "C", "when_empty": "omit"}, None, {}, []),
    ({"column": "C", "when_empty": "null"}, None, {"f": None}, []),  # send null, e.g. to clear a value
    ({"column": "C", "when_empty": "null"}, "x", {"f": "x"}, []),
    ({"column": "C", "required": True}, None, {}, [Problem("C", "is empty; a value is required")]),
    ({"column": "C", "required": True, "transforms": ["trim"]}, "\u00a0", {},
     [Problem("C", "is empty; a value is required")]),
    ({"column": "C", "required": True, "transforms": [{"default": "d"}]}, None, {"f": "d"}, []),
    ({"column": "C", "transforms": ["digits"]}, "n/a", {}, []),  # a transform can empty a value
]


@pytest.mark.parametrize(("spec", "cell", "payload", "problems"), EMPTY_CASES)
def test_empty_values(spec, cell, payload, problems):
    row = mapper({"f": spec}, ["Ref", "C"]).map_row(["R1", cell])
    assert row.payload == payload
    assert row.problems == problems


# --- date and time to UTC ----------------------------------------------------------------------------------

DATETIME = {
    "datetime": {
        "date": "Date",
        "time": "Start Time",
        "format": "%d/%m/%Y",
        "timezone_column": "Time Zone",
        "timezone": "Europe/London",
    },
    "required": True,
}
DT_COLUMNS = ["Ref", "Date", "Start Time", "Time Zone"]

DATETIME_CASES = [
    # (date cell, time cell, zone cell, UTC result)
    ("16/07/2026", "09:00", None, "2026-07-16T08:00:00.000Z"),  # London summer time: UTC-1h
    ("16/01/2026", "09:00", None, "2026-01-16T09:00:00.000Z"),  # London winter: UTC
    ("16/07/2026", "09:00", "", "2026-07-16T08:00:00.000Z"),  # empty zone cell: the default
    ("16/07/2026", "09:00", "Asia/Tokyo", "2026-07-16T00:00:00.000Z"),  # Tokyo: UTC-9h
    ("16/07/2026", "09:00", " Asia/Tokyo ", "2026-07-16T00:00:00.000Z"),
    ("01/02/2026", "08:30", "Asia/Tokyo", "2026-01-31T23:30:00.000Z"),  # day first; the UTC day is earlier
    ("16/07/2026", "09:00:30", None, "2026-07-16T08:00:30.000Z"),  # seconds are accepted
    ("16/07/2026", "9:00 PM", None, "2026-07-16T20:00:00.000Z"),
    ("16/07/2026", "09.15", None, "2026-07-16T08:15:00.000Z"),
    (dt.datetime(2026, 7, 16), dt.time(9, 0), None, "2026-07-16T08:00:00.000Z"),  # real Excel cells
    (dt.date(2026, 7, 16), "09:00", None, "2026-07-16T08:00:00.000Z"),
    ("16/07/2026", dt.datetime(1899, 12, 30, 9, 0), None, "2026-07-16T08:00:00.000Z"),  # Excel time as a date-time
    ("31/10/2027", "00:59", None, "2027-10-30T23:59:00.000Z"),  # just before the repeated hour: BST
    ("31/10/2027", "02:00", None, "2027-10-31T02:00:00.000Z"),  # just after it: GMT
]


@pytest.mark.parametrize(("date", "time", "zone", "utc"), DATETIME_CASES)
def test_datetime_to_utc(date, time, zone, utc):
    row = mapper({"startedAt": DATETIME}, DT_COLUMNS).map_row(["R1", date, time, zone])
    assert row.problems == []
    assert row.payload == {"startedAt": utc}


DATETIME_PROBLEMS = [
    # (date cell, time cell, zone cell, problem)
    ("28/03/2027", "01:30", None,
     Problem("Date", "2027-03-28 01:30 does not exist in Europe/London (the clocks go forward then)")),
    # issue 12: the repeated hour was booked at its first meaning; now refused, naming both instants
    ("31/10/2027", "01:30", None,
     Problem("Date", "2027-10-31 01:30 happens twice in Europe/London (the clocks go back then): it is either "
                     "2027-10-31T00:30Z (BST) or 2027-10-31T01:30Z (GMT)")),
    ("31/02/2026", "09:00", None, Problem("Date", "'31/02/2026' is not a date in the form 31/12/2026")),
    ("2026-07-16", "09:00", None, Problem("Date", "'2026-07-16' is not a date in the form 31/12/2026")),
    ("16/07/2026", "9am", None, Problem("Start Time", "'9am' is not a time in the form 17:45")),
    ("16/07/2026", "25:00", None, Problem("Start Time", "'25:00' is not a time in the form 17:45")),
    ("16/07/2026", None, None, Problem("Start Time", "is empty; a start time is needed")),
    ("16/07/2026", "09:00", "Mars/Olympus",
     Problem("Time Zone", "'Mars/Olympus' is not an IANA time zone such as Europe/London")),
    ("16/07/2026", "09:00", "Europe/Londn",
     Problem("Time Zone", "'Europe/Londn' is not an IANA time zone such as Europe/London (closest: Europe/London")),
    (None, "09:00", None, Problem("Date", "is empty; a value is required")),
]


@pytest.mark.parametrize(("date", "time", "zone", "expected"), DATETIME_PROBLEMS)
def test_datetime_problems(date, time, zone, expected):
    row = mapper({"startedAt": DATETIME}, DT_COLUMNS).map_row(["R1", date, time, zone])
    assert row.payload == {}
    assert [p.column for p in row.problems] == [expected.column]
    assert row.problems[0].message.startswith(expected.message)


def test_datetime_from_one_column_with_a_fixed_zone():
    spec = {"datetime": {"date": "Start", "format": "%d/%m/%Y %H:%M", "timezone": "Asia/Tokyo"}}
    m = mapper({"startedAt": spec}, ["Ref", "Start"])
    assert m.map_row(["R1", "16/07/2026 09:00"]).payload == {"startedAt": "2026-07-16T00:00:00.000Z"}
    assert m.map_row(["R1", dt.datetime(2026, 7, 16, 9, 0)]).payload == {"startedAt": "2026-07-16T00:00:00.000Z"}
    assert m.map_row(["R1", "16/07/2026"]).problems == [
        Problem("Start", "'16/07/2026' is not a date and time in the form 31/12/2026 17:45")]


def test_datetime_zone_column_without_default():
    spec = {"datetime": {"date": "Date", "time": "Time", "format": "%d/%m/%Y", "timezone_column": "Zone"}}
    m = mapper({"startedAt": spec}, ["Ref", "Date", "Time", "Zone"])
    assert m.map_row(["R1", "16/07/2026", "09:00", "Asia/Tokyo"]).payload == {"startedAt": "2026-07-16T00:00:00.000Z"}
    assert m.map_row(["R1", "16/07/2026", "09:00", None]).problems == [
        Problem("Zone", "is empty and the mapping has no default timezone")]


def test_datetime_output_format():
    spec = {"datetime": {"date": "Date", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/London",
                         "output": "%Y-%m-%dT%H:%M:%SZ"}}
    m = mapper({"startedAt": spec}, ["Ref", "Date"])
    assert m.map_row(["R1", "16/07/2026 09:00"]).payload == {"startedAt": "2026-07-16T08:00:00Z"}


# --- nested payloads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "parts"), [
    ("name", ("name",)),
    ("a.b[0].c", ("a", "b", 0, "c")),
    ("Location.Contacts[0].Phones[1].PhoneNum", ("Location", "Contacts", 0, "Phones", 1, "PhoneNum")),
    ("m[0][1]", ("m", 0, 1)),
    ("x-y.z_1", ("x-y", "z_1")),
])
def test_split_path(path, parts):
    assert split_path(path) == parts


@pytest.mark.parametrize("bad", ["a..b", "a[x]", "1a", "a b", "a.", "[0]"])
def test_split_path_rejects(bad):
    with pytest.raises(ValueError, match="is not a field path"):
        split_path(bad)


def test_set_path_builds_dicts_and_lists():
    target: dict = {}
    set_path(target, split_path("a.b[0].c"), 1)
    set_path(target, split_path("a.b[0].d"), 2)
    set_path(target, split_path("a.b[2].c"), 3)
    set_path(target, split_path("a.e"), 4)
    set_path(target, split_path("m[1]"), "x")
    assert target == {"a": {"b": [{"c": 1, "d": 2}, None, {"c": 3}], "e": 4}, "m": [None, "x"]}


def test_nested_fields_and_pruned_list_items():
    m = mapper(
        {
            "customer.name": {"column": "Name"},
            "customer.phones[0].number": {"column": "Phone 1"},
            "customer.phones[1].number": {"column": "Phone 2"},
            "answers[0].questionUid": {"const": "q-diet"},
            "answers[0].content": {"column": "Diet", "required": True},
        },
        ["Ref", "Name", "Phone 1", "Phone 2", "Diet"],
    )
    full = m.map_row(["R1", "Ann", "0770", "0207", "vegan"])
    assert full.payload == {
        "customer": {"name": "Ann", "phones": [{"number": "0770"}, {"number": "0207"}]},
        "answers": [{"questionUid": "q-diet", "content": "vegan"}],
    }
    # the first phone is empty: its list item is dropped rather than sent as null or {}
    gap = m.map_row(["R2", "Ann", None, "0207", "vegan"])
    assert gap.payload["customer"] == {"name": "Ann", "phones": [{"number": "0207"}]}
    missing = m.map_row(["R3", "Ann", None, None, None])
    assert missing.problems == [Problem("Diet", "is empty; a value is required")]
    assert "phones" not in missing.payload["customer"]


# --- keys and columns -----------------------------------------------------------------------------------------


def test_key_of_one_and_several_columns():
    one = mapper({"name": {"column": "Name"}}, ["Ref", "Name"])
    assert one.key_of([" R1 ", "Ann"]) == ("R1",)
    assert one.key_of([None, "Ann"]) == ("",)
    two = mapper({"name": {"column": "Name"}}, ["Shop", "Ref", "Name"], key=["Shop", "Ref"])
    assert two.key_of(["Leeds", "R1", "Ann"]) == ("Leeds", "R1")
    assert two.key_of(["Leeds", dt.date(2026, 7, 16), "Ann"]) == ("Leeds", "2026-07-16")


def test_a_missing_column_lists_what_was_found_and_the_closest():
    m = mapping({"name": {"column": "Guest Name"}, "email": {"column": "Email"}})
    with pytest.raises(InputError) as info:
        compile_mapping(m, ["Ref", "Guest Nmae", "E-mail address"], source="bookings.csv")
    text = str(info.value)
    assert "bookings.csv lacks the columns 'Guest Name' (closest: 'Guest Nmae'), 'Email'" in text
    assert "columns found: 'Ref', 'Guest Nmae', 'E-mail address'" in text
    assert "Rename the sheet's header or change the mapping." in text


def test_a_missing_key_column_is_reported_too():
    with pytest.raises(InputError, match=r"lacks the column 'Ref' .*columns found: 'Name'"):
        compile_mapping(mapping({"name": {"column": "Name"}}), ["Name"])


def test_columns_match_case_insensitively_when_unambiguous():
    m = mapper({"email": {"column": "Email"}}, ["REF", "email"])
    assert m.map_row(["R1", "ann@example.com"]).payload == {"email": "ann@example.com"}
    assert m.key_of(["R1", "x"]) == ("R1",)
    # two columns that differ only in case: the mapping must name one exactly
    with pytest.raises(InputError, match="lacks the column 'Email'"):
        compile_mapping(mapping({"email": {"column": "Email"}}), ["Ref", "EMAIL", "email"])
    exact = mapper({"email": {"column": "Email"}}, ["Ref", "EMAIL", "Email"])
    assert exact.map_row(["R1", "upper", "exact"]).payload == {"email": "exact"}


def test_every_problem_of_a_row_is_reported_with_its_column():
    m = mapper(
        {
            "eventTypeId": {"column": "Event", "transforms": [{"lookup": {"Workshop": "w1"}}], "required": True},
            "name": {"column": "Name", "required": True},
            "email": {"column": "Email", "transforms": ["email"]},
            "startedAt": DATETIME,
            "seats": {"column": "Seats", "transforms": ["integer"]},
        },
        ["Ref", "Event", "Name", "Email", "Date", "Start Time", "Time Zone", "Seats"],
    )
    row = m.map_row(["R1", "Massage", None, "ann@", "16/07/2026", "9am", None, "two"])
    assert [p.column for p in row.problems] == ["Event", "Name", "Email", "Start Time", "Seats"]
    assert str(row.problems[1]) == "Name: is empty; a value is required"
    assert row.payload == {}


def test_mapping_columns_and_sensitive_fields():
    m = mapping({
        "name": {"template": "{First} {Last}"},
        "password": {"column": "Password", "sensitive": True},
        "startedAt": DATETIME,
    }, key=["Ref"])
    assert m.columns() == ["Ref", "First", "Last", "Password", "Date", "Start Time", "Time Zone"]
    assert m.sensitive_paths() == {"password"}
    assert m.sensitive_columns() == {"Password"}
    assert m.scope == "test" and m.env_prefix == "TEST"


# --- the real Jicoo mapping over a sheet -----------------------------------------------------------------------

HEADER = "Booking Ref,Event Type,Date,Start Time,Time Zone,Guest Name,Email,Phone,Company,Meeting,Notes,Language"


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "bookings.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def loosened(tmp_path: Path, *removals: tuple[str, str]) -> Path:
    """mappings/jicoo.yaml with some checks taken out, so the provider contract is what catches them."""
    text = JICOO.read_text(encoding="utf-8")
    for old, new in removals:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "jicoo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_jicoo_mapping_loads():
    m = load_mapping(JICOO)
    assert m.provider == "jicoo" and m.key == ["Booking Ref"]
    assert m.connection.auth.secret == "JICOO_API_KEY"
    assert m.request.contract == "jicoo.CreateBooking"


def test_prepare_valid_rows_satisfy_the_jicoo_contract(tmp_path):
    sheet = write_csv(
        tmp_path,
        "B1,Initial consultation,16/07/2026,09:00,,  Ann   Lee ,Ann@Example.com,07700 900123,Acme,zoom,"
        "Please call first,EN",
        "B2,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
    )
    plan = prepare(sheet, JICOO)
    assert [r.problems for r in plan.rows] == [[], []]
    first, second = (r.payload for r in plan.rows)
    assert first == {
        "eventTypeId": "mzgdPJVBb7RE",
        "startedAt": "2026-07-16T08:00:00.000Z",
        "timeZone": "Europe/London",
        "name": "Ann Lee",
        "email": "ann@example.com",
        "phoneNumber": "07700 900123",
        "company": "Acme",
        "locationId": "zoom",
        "message": "Please call first",
        "locale": "en",
    }
    assert second["startedAt"] == "2026-07-16T01:00:00.000Z" and second["timeZone"] == "Asia/Tokyo"
    assert second["locationId"] == "inPerson"  # the default meeting kind
    for payload in (first, second):
        CreateBooking.model_validate(payload)
    assert [r.line for r in plan.rows] == [2, 3]
    assert [r.key for r in plan.rows] == [("B1",), ("B2",)]


def test_prepare_reports_mapping_problems_by_column(tmp_path):
    sheet = write_csv(tmp_path, "B3,Massage,31/02/2026,09:00,Mars/X,,bad@,,,,,fr")
    (row,) = prepare(sheet, JICOO).rows
    assert row.payload is None
    by_column = {p.column: p.message for p in row.problems}
    assert set(by_column) == {"Event Type", "Date", "Time Zone", "Guest Name", "Email", "Language"}
    assert "closest" not in by_column["Event Type"] and "'Massage' is not one of" in by_column["Event Type"]
    assert by_column["Guest Name"] == "is empty; a value is required"


@pytest.mark.parametrize(("removals", "cells", "column", "fragment"), [
    # the mapping's own max_length removed: Jicoo's 64-character limit still catches it
    ([("transforms: [trim, collapse_spaces, {max_length: 64}]", "transforms: [trim, collapse_spaces]")],
     {"Guest Name": "X" * 65}, "Guest Name", "is too long: at most 64 characters"),
    # the locale lookup removed: Jicoo only takes ja or en
    ([("transforms: [trim, lower, {lookup: {en: en, ja: ja, english: en, japanese: ja}}]",
       "transforms: [trim, lower]")],
     {"Language": "fr"}, "Language", "must be one of 'ja' or 'en'"),
    ([("transforms: [trim, {max_length: 32}]\n  locationId", "transforms: [trim]\n  locationId")],
     {"Company": "A company name far too long for Jicoo"}, "Company", "at most 32 characters"),
    ([("transforms: [trim, lower, email, {max_length: 255}]", "transforms: [trim]")],
     {"Email": "ann@"}, "Email", "is not a valid e-mail address"),
])
def test_prepare_contract_problems_name_the_sheet_column(tmp_path, removals, cells, column, fragment):
    values = dict(zip(HEADER.split(","),
                      ["B9", "Workshop", "17/07/2026", "09:00", "", "Ann", "ann@example.com", "", "", "", "", ""],
                      strict=True))
    values.update(cells)
    sheet = write_csv(tmp_path, ",".join(values.values()))
    (row,) = prepare(sheet, loosened(tmp_path, *removals)).rows
    assert row.payload is None
    assert [p.column for p in row.problems] == [column]
    assert fragment in row.problems[0].message


def test_prepare_duplicate_keys_mark_every_copy_invalid(tmp_path):
    sheet = write_csv(
        tmp_path,
        "B1,Workshop,16/07/2026,09:00,,Ann,ann@example.com,,,,,",
        "B2,Workshop,16/07/2026,10:00,,Bo,bo@example.com,,,,,",
        "B1,Workshop,17/07/2026,09:00,,Cy,cy@example.com,,,,,",
        "B1,Workshop,18/07/2026,09:00,,Di,di@example.com,,,,,",
    )
    rows = prepare(sheet, JICOO).rows
    assert [r.payload is None for r in rows] == [True, False, True, True]
    assert [str(p) for p in rows[0].problems] == [
        "Booking Ref: 'B1' is also the key of row 4, 5; each row needs its own key"]
    assert "is also the key of row 2, 5" in rows[2].problems[0].message
    assert "is also the key of row 2, 4" in rows[3].problems[0].message


def test_prepare_empty_key_is_invalid(tmp_path):
    sheet = write_csv(
        tmp_path,
        ",Workshop,16/07/2026,09:00,,Ann,ann@example.com,,,,,",
        " ,Workshop,16/07/2026,10:00,,Bo,bo@example.com,,,,,",
    )
    rows = prepare(sheet, JICOO).rows
    for r in rows:
        assert r.payload is None
        assert [str(p) for p in r.problems] == [
            "Booking Ref: is empty; it identifies the row across runs, so it is required"]


def test_prepare_missing_column_is_an_input_error(tmp_path):
    path = tmp_path / "bookings.csv"
    path.write_text(HEADER.replace("Guest Name", "Guest") + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="lacks the column 'Guest Name' \\(closest: 'Guest'\\)"):
        prepare(path, JICOO)


# --- issue 12: the repeated hour, closed lists of time forms -------------------------------------------------


@pytest.mark.parametrize(("choice", "utc"),
                         [("earlier", "2026-10-25T00:30:00.000Z"), ("later", "2026-10-25T01:30:00.000Z")])
def test_a_mapping_chooses_which_meaning_of_a_repeated_hour(choice, utc):
    spec = {**DATETIME, "datetime": {**DATETIME["datetime"], "ambiguous": choice}}
    m = mapper({"startedAt": spec}, DT_COLUMNS)
    assert m.map_row(["R1", "25/10/2026", "01:30", None]).payload == {"startedAt": utc}
    assert m.map_row(["R1", "25/10/2026", "00:59", None]).payload == {"startedAt": "2026-10-24T23:59:00.000Z"}
    assert m.map_row(["R1", "29/03/2026", "01:30", None]).problems[0].message.endswith("(the clocks go forward then)")


def test_two_rows_in_a_repeated_hour_no_longer_land_on_one_instant():
    m = mapper({"startedAt": DATETIME}, DT_COLUMNS)
    rows = [m.map_row(["R1", "25/10/2026", "01:30", None]), m.map_row(["R2", "25/10/2026", "00:30", "Etc/GMT-1"])]
    assert rows[0].payload == {} and "happens twice" in rows[0].problems[0].message
    assert rows[1].payload == {"startedAt": "2026-10-24T23:30:00.000Z"}


TIME_CELLS = [
    # (time cell, time_format, local time or fragment of the Start Time problem)
    ("9:30", "%H:%M", "09:30"),
    ("09:30:15", "%H:%M", "09:30:15"),
    ("9.30", "%H:%M", "09:30"),
    ("9.3", "%H:%M", "'9.3' could be 09:03 or 09:30"),  # 9.30 typed in a General cell
    ("10.5", "%H:%M", "'10.5' could be 10:05 or 10:50"),
    ("9:3", "%H:%M", "is not a time in the form 17:45"),
    ("9:00 pm", "%H:%M", "21:00"),
    ("3:00 PM", "%I:%M %p", "15:00"),
    ("3:00PM", "%I:%M %p", "15:00"),
    ("12:15 a.m.", "%I:%M %p", "00:15"),
    ("3:00", "%I:%M %p", "'3:00' has no AM or PM, and this column is 12-hour: type 3:00 AM or 3:00 PM"),
    ("12:00", "%I:%M %p", "has no AM or PM"),
    ("15:00", "%I:%M %p", "15:00"),  # past noon: only one meaning
    ("13:00 PM", "%I:%M %p", "is not a time in the form 5:45 PM"),
    ("0930", "%H%M", "09:30"),  # any other format: exactly that form
    ("09:30", "%H%M", "is not a time in the form 1745"),
    (dt.time(9, 30), "%I:%M %p", "09:30"),  # an Excel time cell is never ambiguous
]


@pytest.mark.parametrize(("cell", "time_format", "expected"), TIME_CELLS)
def test_time_cells_are_read_from_a_closed_list_of_forms(cell, time_format, expected):
    spec = {**DATETIME, "datetime": {**DATETIME["datetime"], "time_format": time_format}}
    row = mapper({"startedAt": spec}, DT_COLUMNS).map_row(["R1", "16/01/2026", cell, None])  # London winter: UTC
    if ":" in expected and len(expected) <= 8:
        assert row.problems == []
        assert row.payload["startedAt"][11:11 + len(expected)] == expected
    else:
        assert row.payload == {}
        assert row.problems[0].column == "Start Time" and expected in row.problems[0].message


def test_wrong_mapping_for_the_sheet_says_so(tmp_path):
    csv = tmp_path / "jobs.csv"
    csv.write_text("Job Ref,Customer,Engineer\nJ1,Acme,Ann\n")
    with pytest.raises(InputError) as err:
        prepare(csv, JICOO)
    msg = str(err.value)
    assert ("jobs.csv lacks the columns the mapping needs, 0 of 12 columns found: "
            "is this the right mapping? It is a jicoo mapping") in msg
    assert "\n" not in msg
