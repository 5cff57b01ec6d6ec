"""Write the BigChange sample sheet: ``jobs.xlsx`` (sheet ``Jobs``).

Fake, deterministic data (fixed seed; ``*.example`` e-mails). 48 jobs for a heating firm in
Yorkshire, planned in local UK time from Monday 22 March to Friday 2 April 2027: the clocks go
forward on Sunday 28 March, so 09:00 is 09:00Z before and 08:00Z after. Every name in the sheet
(job types, customers, engineers, contact e-mails, custom fields) is in the BigChange simulator's
default reference data (flows/sandbox/bigchange.py).

What the rows exercise:

* names, not ids: job type "Boiler Service", customer "Acme Ltd", engineer "Sam Patel", with
  stray spaces and odd case here and there;
* planned dates as text (``24/03/2027``) and, every third row, as real date cells; times as text
  and, now and then, as real time cells; durations in minutes, a third of them empty (the job
  type's default applies);
* custom fields "Boiler Make" and "Gate Code", often empty (left out, not sent as null);
* a few jobs with no planned date and no engineer: created, not scheduled;
* problem rows, one problem each:

  ========  ========================================================================
  BC-27005  unknown job type ``Boiler Servise`` (invalid; closest: Boiler Service)
  BC-27011  customer ``Bright Homes Lettings``: two BigChange contacts have that name (invalid)
  BC-27017  unknown engineer ``Sam Patle`` (invalid; closest: Sam Patel)
  BC-27023  Boiler Repair without an order number (BigChange answers 422: rejected)
  BC-27029  Gas Safety Certificate without an order number (422: rejected)
  BC-27034  28/03/2027 01:30 does not exist in UK time, the clocks go forward (invalid)
  BC-27040  a planned date but no engineer (invalid)
  BC-27044  unknown customer ``Acme Limited`` (invalid; closest: Acme Ltd)
  ========  ========================================================================

Run ``python sample_data/bigchange/make_sample.py [--out DIR]``.
"""
from __future__ import annotations

import argparse
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

import xlsxwriter

__all__ = ["COLUMNS", "INVALID_ROWS", "REJECTED_ROWS", "UNSCHEDULED_ROWS", "build_rows", "write_xlsx", "main"]

COLUMNS = [
    "Job Ref",
    "Job Type",
    "Customer",
    "Site Contact Email",
    "Description",
    "Order Number",
    "Duration (mins)",
    "Planned Date",
    "Planned Time",
    "Engineer",
    "Boiler Make",
    "Gate Code",
]

#: Job Ref -> what is wrong (the row is invalid: nothing is sent)
INVALID_ROWS = {
    "BC-27005": "unknown job type",
    "BC-27011": "ambiguous customer",
    "BC-27017": "unknown engineer",
    "BC-27034": "planned time that does not exist (clocks go forward)",
    "BC-27040": "planned date without an engineer",
    "BC-27044": "unknown customer",
}
#: Job Ref -> why BigChange refuses it (422)
REJECTED_ROWS = {
    "BC-27023": "Boiler Repair needs an order number",
    "BC-27029": "Gas Safety Certificate needs an order number",
}
#: created but not scheduled: no planned date, no engineer
UNSCHEDULED_ROWS = ("BC-27008", "BC-27020", "BC-27036", "BC-27047")

ROW_COUNT = 48
SEED = 20270322
FIRST_DAY = date(2027, 3, 22)  # a Monday; the clocks go forward on Sunday 28 March 2027

#: (job type, needs an order number, typical minutes)
JOB_TYPES = [
    ("Boiler Service", False, "60"),
    ("Boiler Service", False, "60"),
    ("Boiler Service", False, "45"),
    ("Boiler Service", False, ""),
    ("Boiler Repair", True, "90"),
    ("Gas Safety Certificate", True, "45"),
    ("Landlord Inspection", False, "30"),
    ("Powerflush", False, "240"),
]
#: customer -> contact person e-mails known at BigChange (may be empty)
CUSTOMERS = {
    "Acme Ltd": ["dana.reeves@acme.example", "facilities@acme.example", ""],
    "Harbour View Flats": ["helen.brook@harbourview.example", ""],
    "Pennine Housing Association": ["repairs@pennine-ha.example"],
    "Oakridge Lettings": ["sophie@oakridge.example", ""],
    "Thistle Property Management": ["maintenance@thistlepm.example"],
    "Kestrel Facilities Ltd": [""],
    "Mrs Joan Whitaker": [""],
    "Mr Ade Okafor": [""],
}
CUSTOMER_WEIGHTS = ["Acme Ltd"] * 5 + [c for c in CUSTOMERS if c != "Acme Ltd"]
ENGINEERS = ["Sam Patel", "Sam Patel", "Priya Shah", "Tom Evans", "Grace Hughes", "Callum MacLeod"]
STARTS = ["08:00", "08:30", "09:00", "10:00", "10:30", "11:00", "13:00", "13:30", "14:00", "15:00", "16:00"]
MAKES = ["Worcester Bosch", "Vaillant", "Ideal", "Baxi", "Viessmann", "", "", ""]
DESCRIPTIONS = {
    "Boiler Service": ["Annual boiler service", "Annual service, combi boiler in kitchen cupboard",
                       "Service and flue check", "Annual service – tenant works nights, ring first"],
    "Boiler Repair": ["No hot water, boiler shows F28", "Pressure keeps dropping", "Boiler lockout after power cut"],
    "Gas Safety Certificate": ["CP12 renewal", "Landlord gas safety record, 3 appliances"],
    "Landlord Inspection": ["Check-out inspection, flat 4", "Mid-tenancy inspection"],
    "Powerflush": ["Powerflush, 9 radiators, cold spots upstairs"],
}


def _days() -> list[date]:
    """Working days from FIRST_DAY for two weeks, plus the Saturday and Sunday of the clock change."""
    days = []
    day = FIRST_DAY
    while len(days) < 12:
        if day.weekday() < 5 or day in (date(2027, 3, 27), date(2027, 3, 28)):
            days.append(day)
        day += timedelta(days=1)
    return days


def build_rows() -> list[dict[str, object]]:
    """The rows, as column -> value. ``Planned Date`` is a ``date`` or empty; times are text."""
    rng = random.Random(SEED)
    days = _days()
    rows: list[dict[str, object]] = []
    for i in range(ROW_COUNT):
        ref = f"BC-{27001 + i}"
        job_type, needs_order, minutes = rng.choice(JOB_TYPES)
        customer = rng.choice(CUSTOMER_WEIGHTS)
        email = rng.choice(CUSTOMERS[customer])
        day = days[i * len(days) // ROW_COUNT]
        start = rng.choice(STARTS)
        if rng.random() < 0.35:
            minutes = ""
        order = f"PO-{rng.randrange(40000, 49999)}" if needs_order or rng.random() < 0.2 else ""
        rows.append({
            "Job Ref": ref,
            "Job Type": job_type,
            "Customer": customer,
            "Site Contact Email": email,
            "Description": rng.choice(DESCRIPTIONS[job_type]),
            "Order Number": order,
            "Duration (mins)": minutes,
            "Planned Date": day,
            "Planned Time": start,
            "Engineer": rng.choice(ENGINEERS),
            "Boiler Make": rng.choice(MAKES) if job_type != "Landlord Inspection" else "",
            "Gate Code": f"{rng.randrange(1000, 9999)}#" if rng.random() < 0.2 else "",
        })

    by_ref = {row["Job Ref"]: row for row in rows}

    def retype(ref: str, job_type: str, typed: str | None = None, order: bool = True) -> None:
        row = by_ref[ref]
        needs = next(n for t, n, _ in JOB_TYPES if t == job_type)
        row.update({"Job Type": typed or job_type, "Description": DESCRIPTIONS[job_type][0],
                    "Order Number": row["Order Number"] or (f"PO-{40000 + int(ref[3:]) % 10000}" if needs and order else "")})
        if not order:
            row["Order Number"] = ""

    def recustomer(ref: str, customer: str, typed: str | None = None) -> None:
        by_ref[ref].update({"Customer": typed or customer, "Site Contact Email": CUSTOMERS.get(customer, [""])[0]})

    # the clock change weekend: a Sunday breakdown at 10:00 BST is fine, 01:30 does not exist
    by_ref["BC-27033"].update({"Planned Date": date(2027, 3, 28), "Planned Time": "10:00"})
    by_ref["BC-27034"].update({"Planned Date": date(2027, 3, 28), "Planned Time": "01:30"})
    # a little mess, as typed by people
    retype("BC-27002", "Boiler Service", typed="  boiler service ")
    recustomer("BC-27003", "Acme Ltd", typed="ACME LTD")
    by_ref["BC-27006"]["Engineer"] = "sam  patel"
    for ref in UNSCHEDULED_ROWS:
        by_ref[ref].update({"Planned Date": "", "Planned Time": "", "Engineer": ""})
    # the problem rows
    retype("BC-27005", "Boiler Service", typed="Boiler Servise")
    recustomer("BC-27011", "Bright Homes Lettings")
    by_ref["BC-27017"]["Engineer"] = "Sam Patle"
    retype("BC-27023", "Boiler Repair", order=False)
    retype("BC-27029", "Gas Safety Certificate", order=False)
    by_ref["BC-27040"]["Engineer"] = ""
    recustomer("BC-27044", "Acme Ltd", typed="Acme Limited")
    by_ref["BC-27044"]["Site Contact Email"] = ""
    return rows


def write_xlsx(rows: list[dict[str, object]], path: Path) -> None:
    """Sheet ``Jobs``: every third planned date a real date cell, every fifth time a real time cell."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_numbers": False})
    workbook.set_properties({"title": "BigChange sample jobs", "created": datetime(2027, 3, 1)})
    sheet = workbook.add_worksheet("Jobs")
    bold = workbook.add_format({"bold": True})
    date_cell = workbook.add_format({"num_format": "dd/mm/yyyy"})
    time_cell = workbook.add_format({"num_format": "hh:mm"})
    sheet.write_row(0, 0, COLUMNS, bold)
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(COLUMNS):
            value = row[column]
            if column == "Planned Date" and isinstance(value, date):
                if r % 3 == 1:
                    sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), date_cell)
                else:
                    sheet.write_string(r, c, value.strftime("%d/%m/%Y"))
            elif column == "Planned Time" and value and r % 5 == 2:
                hh, mm = map(int, str(value).split(":"))
                sheet.write_datetime(r, c, time(hh, mm), time_cell)
            elif column == "Duration (mins)" and value and r % 4 == 0:
                sheet.write_number(r, c, int(value))  # some typed as numbers
            else:
                sheet.write_string(r, c, str(value))
    for c, width in enumerate([10, 24, 28, 32, 46, 12, 15, 13, 12, 16, 16, 10]):
        sheet.set_column(c, c, width)
    sheet.freeze_panes(1, 0)
    workbook.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build_rows()
    write_xlsx(rows, args.out / "jobs.xlsx")
    print(f"wrote {len(rows)} jobs ({len(INVALID_ROWS)} invalid, {len(REJECTED_ROWS)} rejected by BigChange, "
          f"{len(UNSCHEDULED_ROWS)} unscheduled) to {args.out / 'jobs.xlsx'}")


if __name__ == "__main__":
    main()
