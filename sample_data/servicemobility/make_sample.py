"""Write the ServiceMobility sample sheets: ``workorders.xlsx`` and ``followups.xlsx``.

Fake, deterministic data (fixed seed; ``example.*`` e-mails, 555-01xx phone numbers, invented
streets) for a gas and water utility's back office near Chicago. Dates are typed month first
(``03/09/2027``), times local to America/Chicago unless a follow-up row's Time Zone says
otherwise; the US clocks go forward on Sunday 14 March 2027, so the second week is UTC-5, the
first UTC-6. ZIP codes and phone numbers are text cells; every third date is a real date cell.

``workorders.xlsx`` (sheet ``Work Orders``, 36 rows, WO-270301 ...): new work orders, upserted by
their own number. Most carry a technician, a planned date and start (dispatched); some have
neither. One contact per row, with a mobile and/or a home phone (either may be empty). Problem
rows, one problem each:

=========  ===========================================================
WO-270307  invalid e-mail ``dana.at.example.com``
WO-270313  unknown Job Type ``Tree trimming``
WO-270319  02:30 on 14 March 2027 does not exist in Chicago (clocks go forward)
WO-270326  Duration ``ninety``
WO-270331  empty Account No
=========  ===========================================================

``followups.xlsx`` (sheet ``Follow-ups``, 36 rows, FV-0001 ...): follow-up visits off the
simulator's closed-incomplete work orders (WO-260101 ...), each with a preferred window. The
simulator's calendar (flows/sandbox/servicemobility.py) has three technicians, slots of two
hours from 08:00 to 17:00 on weekdays from 8 to 19 March 2027. Rows whose window holds no open
slot, and rows with mistakes:

=======  ============================================================================
FV-0005  invalid: Window To (08:00) before Window From (12:00)
FV-0009  rejected: a Saturday, no technician works
FV-0012  invalid: e-mail ``pat.moreno@``
FV-0017  rejected: 17:00-20:00, after the last slot
FV-0021  rejected: Original Order WO-269999 does not exist (ServiceMobility's 500 text)
FV-0024  rejected: 5 April 2027, beyond the calendar
FV-0027  invalid: unknown Visit Type ``Gardening``
FV-0030  rejected: 09:00-11:00, two-hour slots overlap it but none fits inside
FV-0033  invalid: empty Address Line 1
=======  ============================================================================

Run ``python sample_data/servicemobility/make_sample.py [--out DIR]``.
"""
from __future__ import annotations

import argparse
import random
from datetime import date, datetime
from pathlib import Path

import xlsxwriter

__all__ = ["WORK_ORDER_COLUMNS", "FOLLOWUP_COLUMNS", "WORK_ORDER_PROBLEMS", "FOLLOWUP_INVALID", "FOLLOWUP_REJECTED",
           "build_work_orders", "build_followups", "write_xlsx", "main"]

SEED = 20270308
ROWS = 36
ADDRESS_COLUMNS = ["Account No", "Premise ID", "Customer Name", "Address Line 1", "Address Line 2", "City", "State",
                   "ZIP", "Contact First Name", "Contact Last Name", "Contact Email", "Mobile Phone", "Home Phone"]
WORK_ORDER_COLUMNS = ["Work Order", "Job Type", "Description", "PO Number", *ADDRESS_COLUMNS, "Technician",
                      "Planned Date", "Planned Start", "Duration (min)", "Access Notes"]
FOLLOWUP_COLUMNS = ["Visit Ref", "Original Order", "Visit Type", *ADDRESS_COLUMNS, "Technician", "Preferred Date",
                    "Window From", "Window To", "Time Zone", "Access Notes"]

WORK_ORDER_PROBLEMS = {
    "WO-270307": "invalid e-mail",
    "WO-270313": "unknown job type",
    "WO-270319": "a time that does not exist (clocks go forward)",
    "WO-270326": "duration not a number",
    "WO-270331": "empty account number",
}
FOLLOWUP_INVALID = {
    "FV-0005": "window ends before it starts",
    "FV-0012": "invalid e-mail",
    "FV-0027": "unknown visit type",
    "FV-0033": "empty address",
}
FOLLOWUP_REJECTED = {
    "FV-0009": "Saturday: no open slot",
    "FV-0017": "evening: no open slot",
    "FV-0021": "original work order does not exist",
    "FV-0024": "beyond the calendar",
    "FV-0030": "slots overlap the window but none fits inside",
}

JOB_TYPES = ["Meter exchange"] * 4 + ["Leak investigation"] * 3 + ["Service line repair"] * 2 + ["Reconnection"]
DESCRIPTIONS = {
    "Meter exchange": ["Replace AMR gas meter, end of life", "Water meter swap to ultrasonic", "Meter reads zero, replace"],
    "Leak investigation": ["Customer reports smell of gas by the side door", "Damp patch over service line",
                           "Leak survey follow-up, grade 3"],
    "Service line repair": ["Repair corroded service riser", "Curb stop seized, replace"],
    "Reconnection": ["Reconnect after account settled", "Turn on for new tenant"],
}
TECHS = ["jlopez", "mchen", "rpatel"]
FIRST = ["Maria", "James", "Aisha", "Robert", "Linh", "Carlos", "Emily", "DeShawn", "Priya", "Michael", "Sofia",
         "Tomasz", "Grace", "Kevin", "Yolanda", "Ahmed", "Hannah", "Luis", "Nora", "Samuel"]
LAST = ["Garcia", "Johnson", "Nguyen", "Kowalski", "Williams", "Hernandez", "O'Brien", "Patel", "Brown", "Okafor",
        "Schmidt", "Rivera", "Kim", "Murphy", "Novak", "Jackson", "Lopez", "Walsh"]
STREETS = ["N Damen Ave", "W Belmont Ave", "S Oak Park Ave", "Chicago Ave", "W Ogden Ave", "Lake St", "N Kedzie Ave",
           "Ridge Ave", "W Cermak Rd", "Washington St", "Main St", "Davis St"]
CITIES = [("Chicago", "60614"), ("Chicago", "60647"), ("Evanston", "60201"), ("Oak Park", "60302"),
          ("Naperville", "60540"), ("Skokie", "60076"), ("Cicero", "60804"), ("Berwyn", "60402")]
DOMAINS = ["example.com", "example.net", "example.org"]
NOTES = ["Dog in yard, call ahead", "Meter in basement, side entrance", "Gate code 4412", "Ring twice",
         "Park in alley", "Customer works nights: afternoons only"]
#: working days of the simulator's calendar (8-19 March 2027)
WORKDAYS = [date(2027, 3, d) for d in (8, 9, 10, 11, 12, 15, 16, 17, 18, 19)]


def _phone(rng: random.Random) -> str:
    return f"({rng.choice(['312', '773', '708', '847', '630'])}) 555-01{rng.randint(0, 99):02d}"


def _party(rng: random.Random, i: int) -> dict[str, object]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city, zip_code = rng.choice(CITIES)
    mobile = _phone(rng) if rng.random() < 0.8 else ""
    home = _phone(rng) if rng.random() < 0.45 or not mobile else ""
    return {
        "Account No": f"ACC-{70001 + i}",
        "Premise ID": f"PR-{550100 + 7 * i}",
        "Customer Name": f"{first} {last}",
        "Address Line 1": f"{rng.randint(100, 9899)} {rng.choice(STREETS)}",
        "Address Line 2": rng.choice(["", "", "", f"Apt {rng.randint(1, 40)}", "Rear unit"]),
        "City": city,
        "State": "IL",
        "ZIP": zip_code,
        "Contact First Name": first,
        "Contact Last Name": last,
        "Contact Email": f"{first}.{last}".lower().replace("'", "") + f"@{rng.choice(DOMAINS)}",
        "Mobile Phone": mobile,
        "Home Phone": home,
        "Access Notes": rng.choice(NOTES + ["", "", ""]),
    }


def build_work_orders() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    rows = []
    for i in range(ROWS):
        job = rng.choice(JOB_TYPES)
        row = {"Work Order": f"WO-{270301 + i}", "Job Type": job, "Description": rng.choice(DESCRIPTIONS[job]),
               "PO Number": rng.choice(["", "", f"PO-{88000 + i}"]), **_party(rng, i)}
        if i % 6 == 5:  # not yet planned: created, not dispatched
            row.update({"Technician": "", "Planned Date": "", "Planned Start": "", "Duration (min)": ""})
        else:
            day = WORKDAYS[i % len(WORKDAYS)]
            start = rng.choice(["08:00", "09:30", "10:00", "1:00 PM", "13:30", "15:00"])
            row.update({"Technician": rng.choice(TECHS), "Planned Date": day, "Planned Start": start,
                        "Duration (min)": rng.choice(["60", "90", "120"])})
        rows.append(row)
    by_key = {r["Work Order"]: r for r in rows}
    by_key["WO-270307"]["Contact Email"] = "dana.at.example.com"
    by_key["WO-270313"]["Job Type"] = "Tree trimming"
    by_key["WO-270319"].update({"Planned Date": date(2027, 3, 14), "Planned Start": "02:30", "Technician": "mchen"})
    by_key["WO-270326"].update({"Duration (min)": "ninety", "Technician": "rpatel", "Planned Date": date(2027, 3, 16),
                                "Planned Start": "10:00"})
    by_key["WO-270331"]["Account No"] = ""
    return rows


#: (day index in WORKDAYS, from, to) per good follow-up row, in order; chosen so demand fits the calendar
_WINDOWS = [
    (0, "08:00", "12:00"), (0, "13:00", "17:00"), (1, "08:00", "17:00"), (1, "10:00", "12:00"),
    (2, "08:00", "12:00"), (2, "1:00 PM", "5:00 PM"), (3, "08:00", "12:00"), (3, "08:00", "12:00"),
    (4, "13:00", "17:00"), (5, "08:00", "17:00"), (5, "08:00", "10:00"), (5, "08:00", "12:00"),
    (6, "13:00", "17:00"), (6, "08:00", "12:00"), (7, "10:00", "15:00"), (7, "08:00", "17:00"),
    (8, "08:00", "12:00"), (8, "13:00", "17:00"), (9, "08:00", "12:00"), (9, "08:00", "17:00"),
    (0, "10:00", "17:00"), (3, "13:00", "17:00"), (4, "08:00", "12:00"), (6, "08:00", "17:00"),
    (7, "13:00", "17:00"), (8, "08:00", "17:00"), (2, "08:00", "17:00"),
]


def build_followups() -> list[dict[str, object]]:
    rng = random.Random(SEED + 1)
    windows = iter(_WINDOWS)
    rows = []
    special = {**FOLLOWUP_INVALID, **FOLLOWUP_REJECTED}
    for i in range(ROWS):
        ref = f"FV-{i + 1:04d}"
        visit = rng.choice(JOB_TYPES)
        day_i, start, end = next(windows) if ref not in special else (i % len(WORKDAYS), "08:00", "12:00")
        row = {"Visit Ref": ref, "Original Order": f"WO-{260101 + i}", "Visit Type": visit, **_party(rng, 100 + i),
               "Technician": rng.choice(TECHS), "Preferred Date": WORKDAYS[day_i], "Window From": start,
               "Window To": end, "Time Zone": rng.choice(["", "", "", "America/Chicago"])}
        rows.append(row)
    by_key = {r["Visit Ref"]: r for r in rows}
    by_key["FV-0005"].update({"Window From": "12:00", "Window To": "08:00"})
    by_key["FV-0009"].update({"Preferred Date": date(2027, 3, 13)})
    by_key["FV-0012"]["Contact Email"] = "pat.moreno@"
    by_key["FV-0017"].update({"Preferred Date": date(2027, 3, 10), "Window From": "17:00", "Window To": "20:00"})
    by_key["FV-0021"]["Original Order"] = "WO-269999"
    by_key["FV-0024"].update({"Preferred Date": date(2027, 4, 5)})
    by_key["FV-0027"]["Visit Type"] = "Gardening"
    by_key["FV-0030"].update({"Preferred Date": date(2027, 3, 16), "Window From": "09:00", "Window To": "11:00"})
    by_key["FV-0033"]["Address Line 1"] = ""
    # two customers out west: their window is written in Mountain time (07:00 Denver = 08:00 Chicago)
    for ref in ("FV-0014", "FV-0035"):
        by_key[ref].update({"Time Zone": "America/Denver", "Window From": "07:00", "Window To": "11:00"})
    return rows


def _text(value: object) -> str:
    return value.strftime("%m/%d/%Y") if isinstance(value, date) else str(value)


def write_xlsx(rows: list[dict[str, object]], columns: list[str], path: Path, sheet_name: str, title: str,
               date_columns: tuple[str, ...]) -> None:
    """Every cell text, except every third date, which is a real date cell."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_numbers": False})
    workbook.set_properties({"title": title, "created": datetime(2027, 2, 1)})
    sheet = workbook.add_worksheet(sheet_name)
    bold = workbook.add_format({"bold": True})
    date_cell = workbook.add_format({"num_format": "mm/dd/yyyy"})
    sheet.write_row(0, 0, columns, bold)
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(columns):
            value = row[column]
            if column in date_columns and isinstance(value, date) and r % 3 == 1:
                sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), date_cell)
            else:
                sheet.write_string(r, c, _text(value))
    for c, column in enumerate(columns):
        sheet.set_column(c, c, max(10, min(34, len(column) + 4)))
    sheet.freeze_panes(1, 1)
    workbook.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work_orders, followups = build_work_orders(), build_followups()
    write_xlsx(work_orders, WORK_ORDER_COLUMNS, args.out / "workorders.xlsx", "Work Orders",
               "ServiceMobility sample work orders", ("Planned Date",))
    write_xlsx(followups, FOLLOWUP_COLUMNS, args.out / "followups.xlsx", "Follow-ups",
               "ServiceMobility sample follow-up visits", ("Preferred Date",))
    print(f"wrote {len(work_orders)} work orders ({len(WORK_ORDER_PROBLEMS)} problem rows) and {len(followups)} "
          f"follow-ups ({len(FOLLOWUP_INVALID)} invalid, {len(FOLLOWUP_REJECTED)} without a bookable slot) to {args.out}")


if __name__ == "__main__":
    main()
