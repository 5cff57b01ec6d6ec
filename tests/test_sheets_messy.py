"""Issue 12: messy sheets from real back offices, each row with the UTC instant it must be booked at
or "invalid" (and why), checked through `render` (the CLI command) AND through a run against the
Jicoo simulator on loopback (the bookings it stores, and the results workbook read back).

The sheets are generated here: xlsx written with openpyxl with real number formats (000000 refs,
Zip Code 00000, date-time formats at midnight, times typed as numbers in General cells, title rows
above the header), CSVs in cp1252 with a `sep=;` first line and line breaks inside quoted cells,
and UTF-8 with a BOM. Every DST transition of 2026 and 2027 for Europe/London, Europe/Paris,
America/Chicago and America/Denver, both directions, is computed with zoneinfo (not listed by hand).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from flows.cli import main
from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions, send_pending
from flows.sandbox import JicooSimulator
from flows.sandbox.jicoo import EventType
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, served, use_sandbox

UTC = dt.UTC
ZONES = ("Europe/London", "Europe/Paris", "America/Chicago", "America/Denver")
YEARS = (2026, 2027)
MINUTE = dt.timedelta(minutes=1)


# --------------------------------------------------------------------------- expected rows


@dataclass
class Case:
    ref: str
    cells: dict[str, Any]  # column -> cell value (xlsx: native; CSV: text)
    expect: str  # the UTC instant "YYYY-MM-DDTHH:MM:SS.000Z", or "invalid: <fragment of the message>"
    formats: dict[str, str] | None = None  # xlsx: column -> number format
    row: int | None = None  # the row Excel shows, filled in when the sheet is written

    @property
    def email(self) -> str:
        return f"{self.ref.lower()}@example.com"

    @property
    def invalid(self) -> bool:
        return self.expect.startswith("invalid")


def utc_text(instant: dt.datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def transitions(zone: str, year: int) -> list[tuple[dt.datetime, dt.timedelta, dt.timedelta]]:
    """(UTC instant, offset before, offset after) of every change of ``zone``'s UTC offset in ``year``."""
    tz = ZoneInfo(zone)
    out = []
    t = dt.datetime(year, 1, 1, tzinfo=UTC)
    end = dt.datetime(year + 1, 1, 1, tzinfo=UTC)
    before = t.astimezone(tz).utcoffset()
    while t < end:
        n = t + dt.timedelta(hours=1)
        after = n.astimezone(tz).utcoffset()
        if after != before:
            at = next(t + k * MINUTE for k in range(1, 61) if (t + k * MINUTE).astimezone(tz).utcoffset() == after)
            out.append((at, before, after))
        before, t = after, n
    return out


def dst_cases() -> list[tuple[str, dt.datetime, str, str, str]]:
    """(zone, local wall time, expected by default, with ambiguous: earlier, with ambiguous: later)."""
    out = []
    for zone in ZONES:
        for year in YEARS:
            found = transitions(zone, year)
            assert len(found) == 2, (zone, year, found)  # one spring forward, one fall back
            for at, o1, o2 in found:
                wall = (at + o1).replace(tzinfo=None)  # the local time the clocks leave
                if o2 > o1:  # forward: local times in [wall, wall + (o2 - o1)) never happen
                    gap = "invalid: does not exist in " + zone
                    before = utc_text(at - MINUTE)
                    out.append((zone, wall - MINUTE, before, before, before))
                    out.append((zone, wall + (o2 - o1) / 2, gap, gap, gap))
                    out.append((zone, wall + (o2 - o1), utc_text(at), utc_text(at), utc_text(at)))
                else:  # back: local times in [wall - (o1 - o2), wall) happen twice
                    start = wall - (o1 - o2)
                    before = utc_text(at - (o1 - o2) - MINUTE)
                    out.append((zone, start - MINUTE, before, before, before))
                    middle = start + (o1 - o2) / 2
                    earlier = utc_text(middle.replace(tzinfo=UTC) - o1)
                    later = utc_text(middle.replace(tzinfo=UTC) - o2)
                    out.append((zone, middle, f"invalid: happens twice in {zone}", earlier, later))
                    after = utc_text(at + (o1 - o2))
                    out.append((zone, wall, after, after, after))
    return out


def test_the_transitions_are_the_real_ones():
    """A check on the generator itself: 16 transitions, and the well-known 2026 dates are among them."""
    found = {(z, at) for z in ZONES for y in YEARS for at, _, _ in transitions(z, y)}
    assert len(found) == 16
    assert ("Europe/London", dt.datetime(2026, 10, 25, 1, 0, tzinfo=UTC)) in found
    assert ("America/Chicago", dt.datetime(2026, 11, 1, 7, 0, tzinfo=UTC)) in found
    assert ("America/Denver", dt.datetime(2027, 3, 14, 9, 0, tzinfo=UTC)) in found
    assert ("Europe/Paris", dt.datetime(2027, 3, 28, 1, 0, tzinfo=UTC)) in found


# --------------------------------------------------------------------------- writing the sheets

BASE_COLUMNS = ["Ref", "Event", "Date", "Start Time", "Time Zone", "Guest Name", "Email"]


def write_xlsx(path: Path, cases: list[Case], columns: list[str], *, titles: list[str] = (),
               sheet: str = "Bookings") -> Path:
    """Title rows (then a blank row, as exports have) above the header, then one row per case."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    r = 1
    for t in titles:
        ws.cell(row=r, column=1, value=t)
        r += 1
    if titles:
        r += 1  # the blank row
    for j, col in enumerate(columns, start=1):
        ws.cell(row=r, column=j, value=col)
    for c in cases:
        r += 1
        c.row = r
        for j, col in enumerate(columns, start=1):
            cell = ws.cell(row=r, column=j, value=c.cells.get(col))
            fmt = (c.formats or {}).get(col)
            if fmt:
                cell.number_format = fmt
    wb.save(path)
    return path


def csv_field(value: Any) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in ';,"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(path: Path, cases: list[Case], columns: list[str], *, encoding: str, sep: str = ",",
              sep_line: bool = False, newline: str = "\r\n") -> Path:
    lines = ([f"sep={sep}"] if sep_line else []) + [sep.join(columns)]
    for i, c in enumerate(cases):
        lines.append(sep.join(csv_field(c.cells.get(col)) for col in columns))
        c.row = i + 2  # the row Excel shows: the header is row 1 (Excel hides a sep= line)
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def mapping_file(tmp_path: Path, name: str, *, datetime: dict[str, Any], extra: str = "",
                 sheet: str = "Bookings", ambiguous: str | None = None) -> Path:
    spec = dict(datetime)
    if ambiguous:
        spec["ambiguous"] = ambiguous
    text = f"""
provider: jicoo
key: Ref
source: {{sheet: {sheet}}}
connection:
  base_url: https://api.jicoo.com/v1
  auth: {{kind: api_key_header, header: X-Jicoo-Api-Key, secret: JICOO_API_KEY}}
  rate: null
  concurrency: 8
request:
  method: POST
  path: /bookings
  contract: jicoo.CreateBooking
  provider_id: uid
  readback: jicoo.find_booking
fields:
  eventTypeId: {{column: Event, required: true}}
  startedAt: {{datetime: {json.dumps(spec)}, required: true}}
  timeZone: {{column: Time Zone, transforms: [trim, {{default: Europe/London}}, iana_zone]}}
  name: {{column: Guest Name, transforms: [trim, collapse_spaces], required: true}}
  email: {{column: Email, transforms: [trim, lower, email], required: true}}
  locationId: {{const: inPerson}}
{extra}"""
    p = tmp_path / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


SEPARATE = {"date": "Date", "time": "Start Time", "format": "%d/%m/%Y", "timezone_column": "Time Zone",
            "timezone": "Europe/London"}


# --------------------------------------------------------------------------- checking: render and a run


def render(sheet: Path, mapping: Path, capsys) -> tuple[int, dict[str, dict], dict[str, str], str]:
    """``booking-import render``: (exit code, key -> printed line, key -> invalid message, stderr)."""
    code = main(["render", str(sheet), "-m", str(mapping)])
    out, err = capsys.readouterr()
    shown = {}
    for line in out.splitlines():
        item = json.loads(line)
        shown[item["key"]] = item
    invalid = {}
    for line in err.splitlines():
        if ": invalid: " in line:
            head, message = line.split(": invalid: ", 1)
            invalid[head.split("(", 1)[1].rstrip(")")] = (int(head.split()[1]), message)
    return code, shown, invalid, err


def check_render(cases: list[Case], sheet: Path, mapping: Path, capsys, expect_of=lambda c: c.expect) -> str:
    code, shown, invalid, err = render(sheet, mapping, capsys)
    assert code == 0, err
    for c in cases:
        expect = expect_of(c)
        if expect.startswith("invalid"):
            assert c.ref in invalid, (c.ref, expect, shown.get(c.ref))
            line, message = invalid[c.ref]
            assert expect.removeprefix("invalid: ") in message, (c.ref, message)
            assert line == c.row, (c.ref, line, c.row)
        else:
            assert c.ref in shown, (c.ref, expect, invalid.get(c.ref))
            assert shown[c.ref]["payload"]["startedAt"] == expect, c.ref
            assert shown[c.ref]["row"] == c.row, (c.ref, shown[c.ref]["row"], c.row)
    assert len(shown) + len(invalid) == len(cases)
    return err


def event_types(cases: list[Case]) -> list[EventType]:
    return [EventType(c.cells["Event"], f"Event {c.ref}", 30) for c in cases]


def check_run(cases: list[Case], sheet: Path, mapping: Path, tmp_path: Path, monkeypatch,
              expect_of=lambda c: c.expect) -> tuple[Any, Any]:
    """Import ``sheet`` into a fresh Jicoo simulator; every valid row booked once at its instant, no invalid
    row sent, and the results workbook says so with the row Excel shows."""
    sim = JicooSimulator(event_types=event_types(cases))
    out = tmp_path / f"{sheet.stem}.results.xlsx"
    with served(sim):
        use_sandbox("jicoo", sim.url, monkeypatch)
        run = ImportRun(prepare(sheet, mapping), RunOptions(ledger_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
                                                             out=out))
        try:
            asyncio.run(send_pending(run))
            run.write_results()
        finally:
            run.close()
    booked = {b["email"]: b for b in sim.bookings}
    df, _ = read_results(out)
    results = {str(r["Email"]).strip().lower(): r for _, r in df.iterrows()}
    for c in cases:
        expect = expect_of(c)
        r = results[c.email]
        assert int(r["_row"]) == c.row, (c.ref, r["_row"], c.row)
        if expect.startswith("invalid"):
            assert c.email not in booked, c.ref
            assert r["_status"] == "invalid" and expect.removeprefix("invalid: ") in r["_message"], (
                c.ref, r["_message"])
        else:
            assert r["_status"] == "created", (c.ref, r["_status"], r["_message"])
            started = dt.datetime.fromisoformat(booked[c.email]["startedAt"].replace("Z", "+00:00"))
            assert started == dt.datetime.fromisoformat(expect.replace("Z", "+00:00")), c.ref
            assert r["_provider_id"] == booked[c.email]["uid"]
    assert len(sim.bookings) == sum(not expect_of(c).startswith("invalid") for c in cases)
    return sim, df


# --------------------------------------------------------------------------- every DST transition


def dst_rows(native: bool) -> list[tuple[Case, str, str]]:
    """Cases for every DST row, with their expectations under ambiguous: earlier and later."""
    rows = []
    for i, (zone, local, default, earlier, later) in enumerate(dst_cases()):
        ref = f"D{i:03d}"
        if native:  # real Excel date and time cells
            cells = {"Date": local.date(), "Start Time": local.time()}
            formats = {"Date": "dd/mm/yyyy", "Start Time": "hh:mm"}
        else:
            cells = {"Date": local.strftime("%d/%m/%Y"), "Start Time": local.strftime("%H:%M")}
            formats = None
        cells.update({"Ref": ref, "Event": f"ev-{ref}", "Time Zone": zone, "Guest Name": f"Guest {ref}",
                      "Email": f"{ref.lower()}@example.com"})
        rows.append((Case(ref, cells, default, formats), earlier, later))
    return rows


def test_every_dst_transition_through_render_with_each_ambiguous_choice(tmp_path, capsys):
    rows = dst_rows(native=True)
    cases = [c for c, _, _ in rows]
    assert len(cases) == 48
    assert sum(c.invalid for c in cases) == 16  # 8 gaps and 8 repeated hours refused by default
    sheet = write_xlsx(tmp_path / "dst.xlsx", cases, BASE_COLUMNS)
    check_render(cases, sheet, mapping_file(tmp_path, "refuse", datetime=SEPARATE), capsys)
    earlier = {c.ref: e for c, e, _ in rows}
    later = {c.ref: lt for c, _, lt in rows}
    check_render(cases, sheet, mapping_file(tmp_path, "earlier", datetime=SEPARATE, ambiguous="earlier"), capsys,
                 expect_of=lambda c: earlier[c.ref])
    check_render(cases, sheet, mapping_file(tmp_path, "later", datetime=SEPARATE, ambiguous="later"), capsys,
                 expect_of=lambda c: later[c.ref])


def test_a_repeated_hour_names_both_instants(tmp_path, capsys):
    case = Case("R1", {"Ref": "R1", "Event": "ev-1", "Date": "25/10/2026", "Start Time": "01:30",
                       "Time Zone": "Europe/London", "Guest Name": "Ann", "Email": "r1@example.com"},
                "invalid: 2026-10-25 01:30 happens twice in Europe/London (the clocks go back then): it is either "
                "2026-10-25T00:30Z (BST) or 2026-10-25T01:30Z (GMT); set `ambiguous: earlier` or `ambiguous: later`")
    other = Case("R2", {"Ref": "R2", "Event": "ev-2", "Date": "01/11/2026", "Start Time": "01:30",
                        "Time Zone": "America/Chicago", "Guest Name": "Bo", "Email": "r2@example.com"},
                 "invalid: it is either 2026-11-01T06:30Z (CDT) or 2026-11-01T07:30Z (CST)")
    sheet = write_csv(tmp_path / "twice.csv", [case, other], BASE_COLUMNS, encoding="utf-8")
    check_render([case, other], sheet, mapping_file(tmp_path, "m", datetime=SEPARATE), capsys)


def test_every_dst_transition_booked_against_jicoo(tmp_path, monkeypatch):
    """Excel date and time cells, refused by default; a UTF-8-BOM CSV of the same rows with `later`."""
    cases = [c for c, _, _ in dst_rows(native=True)]
    sheet = write_xlsx(tmp_path / "dst.xlsx", cases, BASE_COLUMNS)
    check_run(cases, sheet, mapping_file(tmp_path, "refuse", datetime=SEPARATE), tmp_path, monkeypatch)

    rows = dst_rows(native=False)
    later = {c.ref: lt for c, _, lt in rows}
    text_cases = [c for c, _, _ in rows]
    csv_sheet = write_csv(tmp_path / "dst.csv", text_cases, BASE_COLUMNS, encoding="utf-8-sig")
    assert csv_sheet.read_bytes().startswith(b"\xef\xbb\xbf")
    (tmp_path / "ledger.sqlite").unlink()
    sim, _ = check_run(text_cases, csv_sheet, mapping_file(tmp_path, "later", datetime=SEPARATE, ambiguous="later"),
                       tmp_path, monkeypatch, expect_of=lambda c: later[c.ref])
    assert len(sim.bookings) == 48 - 8  # every row but the 8 in a gap


# --------------------------------------------------------------------------- the messy back-office workbook

MESSY_COLUMNS = [*BASE_COLUMNS, "Zip"]
GENERAL = "General"


def messy_cases() -> list[Case]:
    """One row per class of input, from a UK/US clinic's xlsx export."""
    rows: list[tuple[int, Any, Any, str | None, str, dict[str, str]]] = [
        # (ref number, Date cell, Start Time cell, Time Zone cell, expected, extra formats)
        (101, dt.date(2026, 7, 16), dt.time(9, 0), None, "2026-07-16T08:00:00.000Z", {}),  # Excel cells, BST
        (102, "05/03/2026", "14:30", "Europe/Paris", "2026-03-05T13:30:00.000Z", {}),  # day first: 5 March
        (103, "16/07/2026", 9.3, None, "invalid: '9.3' could be 09:03 or 09:30", {"Start Time": GENERAL}),
        (104, "16/07/2026", 10.5, None, "invalid: '10.5' could be 10:05 or 10:50", {"Start Time": GENERAL}),
        (105, "16/07/2026", 10.45, None, "2026-07-16T09:45:00.000Z", {"Start Time": GENERAL}),
        (106, "16/07/2026", "9:3", None, "invalid: '9:3' is not a time in the form 17:45; accepted forms:", {}),
        (107, "16/07/2026", "9:00 PM", None, "2026-07-16T20:00:00.000Z", {}),
        (108, "16/07/2026", "09:00", "Asia/Tokyo", "2026-07-16T00:00:00.000Z", {}),  # zones per row
        (109, "16/07/2026", "09:00", "Mars/Olympus", "invalid: 'Mars/Olympus' is not an IANA time zone", {}),
        (110, "2026-07-16", "09:00", None, "invalid: '2026-07-16' is not a date in the form 31/12/2026", {}),
        (111, "25/10/2026", "01:30", None, "invalid: happens twice in Europe/London", {}),
        (112, "01/11/2026", "01:30", "America/Chicago", "invalid: happens twice in America/Chicago", {}),
        (113, "29/03/2026", "01:30", None, "invalid: 2026-03-29 01:30 does not exist in Europe/London", {}),
        (114, dt.datetime(2026, 7, 16, 0, 0), "17:45:30", None, "2026-07-16T16:45:30.000Z",
         {"Date": "dd/mm/yyyy hh:mm"}),  # a date-time cell at midnight in the date column
        (115, "16/07/2026", "17.45", None, "2026-07-16T16:45:00.000Z", {}),
        (116, "31/02/2026", "09:00", None, "invalid: '31/02/2026' is not a date in the form 31/12/2026", {}),
        (117, "16/07/2026", "25:00", None, "invalid: '25:00' is not a time", {}),
        (118, "16/01/2026", "09:00", " America/Denver ", "2026-01-16T16:00:00.000Z", {}),  # MST, zone trimmed
        (119, "16/07/2026", "09:00", None, "invalid: is also the key of row", {}),  # duplicate key: 120
        (119, "17/07/2026", "09:00", None, "invalid: is also the key of row", {}),
    ]
    cases = []
    for n, (ref, date, time, zone, expect, formats) in enumerate(rows):
        key = f"{ref:06d}"  # what the sheet shows: the Ref column is formatted 000000
        label = f"{key}-{n}"
        cells = {"Ref": ref, "Event": f"ev-{label}", "Date": date, "Start Time": time, "Time Zone": zone,
                 "Guest Name": f"Gäst  {label}", "Email": f"g{label}@example.com", "Zip": 2134 + n}
        case = Case(key, cells, expect, {"Ref": "000000", "Zip": "00000", **formats})
        cases.append(case)
    return cases


def test_messy_workbook_through_render_and_a_jicoo_run(tmp_path, capsys, monkeypatch):
    cases = messy_cases()
    sheet = write_xlsx(tmp_path / "clinic.xlsx", cases, MESSY_COLUMNS,
                       titles=["Clinic bookings export", "Generated 01/12/2026 by FrontDesk 4.2"])
    mapping = mapping_file(tmp_path, "clinic", datetime=SEPARATE, extra="  company: {column: Zip}\n")

    code = main(["render", str(sheet), "-m", str(mapping)])
    out, err = capsys.readouterr()
    assert code == 0, err
    # the header was found below the title rows, and said so
    assert "note:" in err and "the header is row 4" in err and "source.header_row" in err
    printed = [json.loads(line) for line in out.splitlines()]
    by_email = {p["payload"]["email"]: p for p in printed}
    invalid_lines = [line for line in err.splitlines() if ": invalid: " in line]
    for c in cases:
        email = c.cells["Email"]
        if c.invalid:
            line = next((x for x in invalid_lines if x.startswith(f"row {c.row} ")), None)
            assert line is not None and c.expect.removeprefix("invalid: ") in line, (c.ref, c.row, line)
            assert f"({c.ref})" in line  # the key is what the sheet shows: 000119, not 119
        else:
            p = by_email[email]
            assert p["payload"]["startedAt"] == c.expect and p["row"] == c.row and p["key"] == c.ref
            assert p["payload"]["company"] == f"{c.cells['Zip']:05d}"  # Zip Code 02134, not 2134
    assert len(printed) + len(invalid_lines) == len(cases)

    # the same workbook imported into Jicoo
    sim = JicooSimulator(event_types=[EventType(c.cells["Event"], c.ref, 30) for c in cases])
    out_path = tmp_path / "clinic.results.xlsx"
    with served(sim):
        use_sandbox("jicoo", sim.url, monkeypatch)
        run = ImportRun(prepare(sheet, mapping), RunOptions(ledger_url=f"sqlite:///{tmp_path / 'l.sqlite'}",
                                                             out=out_path))
        try:
            asyncio.run(send_pending(run))
            run.write_results()
        finally:
            run.close()
        keys = {r.key for r in run.plan.rows}
    booked = {b["email"]: b for b in sim.bookings}
    df, _ = read_results(out_path)
    assert ("000101",) in keys and ("101",) not in keys  # the ledger key is what the sheet shows
    for c in cases:
        email = c.cells["Email"]
        r = df[df["Email"] == email].iloc[0]
        assert int(r["_row"]) == c.row
        if c.invalid:
            assert email not in booked and r["_status"] == "invalid"
            assert c.expect.removeprefix("invalid: ") in r["_message"], (c.ref, r["_message"])
        else:
            assert r["_status"] == "created", (c.ref, r["_message"])
            # the simulator answers at seconds, as a less convenient provider would: compare instants
            assert dt.datetime.fromisoformat(booked[email]["startedAt"]) == dt.datetime.fromisoformat(c.expect)
            assert booked[email]["company"] == f"{c.cells['Zip']:05d}"
            assert str(r["Ref"]) == c.ref  # the results workbook shows the ref as the sheet did
    assert len(sim.bookings) == sum(not c.invalid for c in cases) == 8


# --------------------------------------------------------------------------- a combined date-time column

COMBINED = {"date": "Starts", "format": "%d/%m/%Y %H:%M", "timezone_column": "Time Zone", "timezone": "Europe/London"}
COMBINED_COLUMNS = ["Ref", "Event", "Starts", "Time Zone", "Guest Name", "Email"]


def combined_cases() -> list[Case]:
    rows = [
        (dt.datetime(2026, 11, 21, 0, 0), "dd/mm/yyyy hh:mm", "2026-11-21T00:00:00.000Z"),  # midnight: accepted
        (dt.datetime(2026, 7, 1, 0, 0), "yyyy-mm-dd hh:mm:ss", "2026-06-30T23:00:00.000Z"),
        (dt.datetime(2026, 11, 21, 9, 30), "dd/mm/yyyy hh:mm", "2026-11-21T09:30:00.000Z"),
        (dt.datetime(2026, 11, 21, 0, 0), "dd/mm/yyyy", "invalid: is a date without a time"),  # shows no time
        ("21/11/2026 09:30", None, "2026-11-21T09:30:00.000Z"),
        ("21/11/2026", None, "invalid: '21/11/2026' is not a date and time in the form 31/12/2026 17:45"),
        ("21/11/2026 9:5", None, "invalid: is not a date and time"),
        (dt.datetime(2026, 10, 25, 1, 30), "dd/mm/yyyy hh:mm", "invalid: happens twice in Europe/London"),
    ]
    cases = []
    for i, (value, fmt, expect) in enumerate(rows):
        ref = f"C{i}"
        cells = {"Ref": ref, "Event": f"ev-{ref}", "Starts": value, "Guest Name": f"Guest {ref}",
                 "Email": f"{ref.lower()}@example.com"}
        cases.append(Case(ref, cells, expect, {"Starts": fmt} if fmt else None))
    return cases


def test_combined_date_time_column_through_render_and_a_jicoo_run(tmp_path, capsys, monkeypatch):
    cases = combined_cases()
    sheet = write_xlsx(tmp_path / "combined.xlsx", cases, COMBINED_COLUMNS)
    mapping = mapping_file(tmp_path, "combined", datetime=COMBINED)
    check_render(cases, sheet, mapping, capsys)
    check_run(cases, sheet, mapping, tmp_path, monkeypatch)


# --------------------------------------------------------------------------- cp1252 CSV with sep=; and line breaks

TWELVE = dict(SEPARATE, format="%m/%d/%Y", time_format="%I:%M %p", timezone="America/Chicago")
NOTE_COLUMNS = [*BASE_COLUMNS, "Notes"]


def twelve_hour_cases() -> list[Case]:
    rows = [
        ("11/21/2026", "3:00 PM", "2026-11-21T21:00:00.000Z", "José: first visit"),
        ("11/21/2026", "3:00", "invalid: '3:00' has no AM or PM, and this column is 12-hour: type 3:00 AM or 3:00 PM",
         "line one\r\nline two"),  # a line break inside a quoted cell (Excel: Alt+Enter)
        ("11/21/2026", "15:00", "2026-11-21T21:00:00.000Z", "after the break: Excel row 4"),
        ("11/21/2026", "12:30 AM", "2026-11-21T06:30:00.000Z", "Mac note\rwith a bare CR"),
        ("11/21/2026", "12:30 p.m.", "2026-11-21T18:30:00.000Z", "Müller, Zoë"),
        ("21/11/2026", "9:00 AM", "invalid: '21/11/2026' is not a date in the form 12/31/2026", "day first by mistake"),
        ("11/01/2026", "1:30 AM", "invalid: happens twice in America/Chicago", "fall back"),
        ("03/08/2026", "2:30 AM", "invalid: does not exist in America/Chicago", "spring forward"),
        ("11/22/2026", "9.3", "invalid: '9.3' could be 09:03 or 09:30", "number"),
    ]
    cases = []
    for i, (date, time, expect, note) in enumerate(rows):
        ref = f"T{i}"
        cells = {"Ref": ref, "Event": f"ev-{ref}", "Date": date, "Start Time": time, "Time Zone": "America/Chicago",
                 "Guest Name": f"Renée {ref}", "Email": f"{ref.lower()}@example.com", "Notes": note}
        cases.append(Case(ref, cells, expect))
    return cases


def test_cp1252_csv_with_sep_line_12_hour_times_and_line_breaks(tmp_path, capsys, monkeypatch):
    cases = twelve_hour_cases()
    sheet = write_csv(tmp_path / "chicago.csv", cases, NOTE_COLUMNS, encoding="cp1252", sep=";", sep_line=True)
    assert sheet.read_bytes()[:7] == b"sep=;\r\n" and "é".encode("cp1252") in sheet.read_bytes()
    mapping = mapping_file(tmp_path, "chicago", datetime=TWELVE, extra="  message: {column: Notes}\n")
    assert [c.row for c in cases][:4] == [2, 3, 4, 5]  # the rows Excel shows, line breaks or not
    check_render(cases, sheet, mapping, capsys)
    sim, _df = check_run(cases, sheet, mapping, tmp_path, monkeypatch)
    notes = {b["email"]: b["message"] for b in sim.bookings}
    assert notes["t3@example.com"] == "Mac note\rwith a bare CR"  # one cell, not two rows
    assert notes["t0@example.com"] == "José: first visit"


# --------------------------------------------------------------------------- decimal commas (render)

INTEGER_CASES = [
    # (cell, bare integer, {integer: ','}, {integer: '.'})
    ("45", 45, 45, 45),
    ("90,0", "invalid: has a decimal comma", 90, "invalid: is not a whole number"),
    ("1,5", "invalid: has a decimal comma", "invalid: is not a whole number", "invalid: is not a whole number"),
    ("1,500", "invalid: '1,500' could be 1500 or 1.5", "invalid: is not a whole number", 1500),
    ("1.500", "invalid: '1.500' could be 1.5 or 1500", 1500, "invalid: is not a whole number"),
    ("12,345,678", 12345678, "invalid: is not a whole number", 12345678),
    ("1 234", 1234, 1234, 1234),
    ("45.0", 45, "invalid: is not a whole number", 45),
]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_decimal_commas_through_render(tmp_path, capsys, variant):
    transform = ["integer", {"integer": ","}, {"integer": "."}][variant]
    text = f"""
provider: seats
key: Ref
connection:
  base_url: https://seats.invalid
  auth: {{kind: none}}
request: {{path: /seats}}
fields:
  ref: {{column: Ref}}
  seats: {{column: Seats, transforms: [{json.dumps(transform)}]}}
"""
    mapping = tmp_path / "seats.yaml"
    mapping.write_text(text)
    sheet = tmp_path / "seats.csv"
    sheet.write_bytes(("Ref;Seats\r\n" + "".join(f"S{i};{c[0]}\r\n" for i, c in enumerate(INTEGER_CASES)))
                      .encode("cp1252"))
    code = main(["render", str(sheet), "-m", str(mapping)])
    out, err = capsys.readouterr()
    assert code == 0, err
    shown = {json.loads(x)["key"]: json.loads(x)["payload"]["seats"] for x in out.splitlines()}
    for i, case in enumerate(INTEGER_CASES):
        expect = case[1 + variant]
        if isinstance(expect, str):
            line = next(x for x in err.splitlines() if x.startswith(f"row {i + 2} (S{i})"))
            assert expect.removeprefix("invalid: ") in line, (case, line)
        else:
            assert shown[f"S{i}"] == expect, case


# --------------------------------------------------------------------------- mistakes in the mapping, not the data


@pytest.mark.parametrize(("spec", "expected"), [
    ({"format": "dd/mm/yyyy"}, "format 'dd/mm/yyyy' has no % directives, so no sheet value could ever match it; "
                               "did you mean '%d/%m/%Y'?"),
    ({"format": "%d/%m/yyyy"}, "mixes % directives with 'yyyy'"),
    ({"format": "%d/%m"}, "lacks a day, month or year"),
    ({"time_format": "hh:mm"}, "did you mean '%H:%M'?"),
    ({"time_format": "%I:%M"}, "%I (12-hour) needs %p"),
    ({"time_format": "hh:mm AM/PM"}, "did you mean '%I:%M %p'?"),
    ({"ambiguous": "first"}, "ambiguous"),
])
def test_format_mistakes_are_refused_when_the_mapping_loads(tmp_path, capsys, spec, expected):
    case = Case("A1", {"Ref": "A1", "Event": "e", "Date": "16/07/2026", "Start Time": "09:00", "Guest Name": "A",
                       "Email": "a@example.com"}, "")
    sheet = write_csv(tmp_path / "s.csv", [case], BASE_COLUMNS, encoding="utf-8")
    mapping = mapping_file(tmp_path, "bad", datetime={**SEPARATE, **spec})
    code = main(["render", str(sheet), "-m", str(mapping)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert expected in err and "line " in err


def test_combined_format_without_a_time_is_refused_when_the_mapping_loads(tmp_path, capsys):
    mapping = mapping_file(tmp_path, "bad", datetime={**COMBINED, "format": "%d/%m/%Y"})
    sheet = write_csv(tmp_path / "s.csv", [], COMBINED_COLUMNS, encoding="utf-8")
    assert main(["render", str(sheet), "-m", str(mapping)]) == 2
    assert "has no time (%H:%M)" in capsys.readouterr().err


def test_the_wrong_providers_mapping_says_so(tmp_path, capsys):
    cases = [c for c, _, _ in dst_rows(native=True)][:3]
    xlsx = write_xlsx(tmp_path / "bookings.xlsx", cases, BASE_COLUMNS)
    assert main(["render", str(xlsx), "-m", str(MAPPINGS / "bigchange.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bookings.xlsx: 0 of " in err and " columns found: is this the right mapping?" in err and '"Jobs"' in err
    assert len(err.strip().splitlines()) == 1

    csv_sheet = write_csv(tmp_path / "bookings.csv", cases, BASE_COLUMNS, encoding="utf-8")
    assert main(["render", str(csv_sheet), "-m", str(MAPPINGS / "bigchange.yaml")]) == 2
    err = capsys.readouterr().err
    assert "0 of " in err and "columns found: is this the right mapping?" in err


def test_a_header_row_named_in_the_mapping(tmp_path, capsys):
    cases = [c for c, _, _ in dst_rows(native=False)][:4]
    # a title that is a column name
    sheet = write_xlsx(tmp_path / "t.xlsx", cases, BASE_COLUMNS, titles=["Ref", "Week 47"])
    mapping = mapping_file(tmp_path, "m", datetime=SEPARATE)
    text = mapping.read_text().replace("source: {sheet: Bookings}", "source: {sheet: Bookings, header_row: 4}")
    mapping.write_text(text)
    check_render(cases, sheet, mapping, capsys)
    mapping.write_text(text.replace("header_row: 4", "header_row: 3"))
    assert main(["render", str(sheet), "-m", str(mapping)]) == 2
    assert "row 3, named as the header row (source.header_row), is blank" in capsys.readouterr().err
