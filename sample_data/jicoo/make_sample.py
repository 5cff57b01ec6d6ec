"""Write the Jicoo sample sheet: ``bookings.xlsx`` (sheet ``Bookings``) and ``bookings.csv``.

Fake, deterministic data (fixed seed; ``example.*`` emails, Ofcom drama phone numbers). Both
files hold the same 60 rows, bookings on working days from 2027-01-05, half-hour starts between
09:00 and 16:00, at most one per morning and one per afternoon, so good rows never collide.

What the rows exercise:

* day-first dates (``05/01/2027``) as text, and in the xlsx a third of them as real date cells;
* times as ``HH:MM`` text; time zones ``Europe/London``, ``Asia/Tokyo`` and empty (-> London);
* UK phone numbers with a leading zero kept as text; empty phones, companies, notes, languages;
* non-ASCII names (``Zoë Brontë``, ``山田 太郎``), a note with quotes and a comma, one with a
  line break, and one starting with ``=HYPERLINK(`` (formula neutralisation in the results);
* problem rows, one problem each:

  ========  ===========================================================
  JB-1007   invalid email ``not-an-email``
  JB-1013   empty Guest Name
  JB-1019   unknown Event Type ``Massage``
  JB-1026   impossible date ``31/02/2027``
  JB-1033   unknown time zone ``Mars/Olympus``
  JB-1045   same Event Type, Date, Start Time, Time Zone as JB-1022:
            both valid, so Jicoo answers 409 to whichever arrives second
  ========  ===========================================================

Run ``python sample_data/jicoo/make_sample.py [--out DIR]``.
"""
from __future__ import annotations

import argparse
import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import xlsxwriter

__all__ = ["COLUMNS", "PROBLEM_ROWS", "CONFLICT_PAIR", "build_rows", "write_csv", "write_xlsx", "main"]

COLUMNS = [
    "Booking Ref",
    "Event Type",
    "Date",
    "Start Time",
    "Time Zone",
    "Guest Name",
    "Email",
    "Phone",
    "Company",
    "Meeting",
    "Notes",
    "Language",
]

#: Booking Ref -> what is wrong with it
PROBLEM_ROWS = {
    "JB-1007": "invalid email",
    "JB-1013": "empty guest name",
    "JB-1019": "unknown event type",
    "JB-1026": "impossible date",
    "JB-1033": "unknown time zone",
}
#: the second row books the first one's slot
CONFLICT_PAIR = ("JB-1022", "JB-1045")
HYPERLINK_ROW = "JB-1050"

ROW_COUNT = 60
SEED = 20270105
FIRST_DAY = date(2027, 1, 5)

EVENT_TYPES = ["Initial consultation"] * 5 + ["Follow-up call"] * 3 + ["Workshop"] * 2
MEETINGS = ["In person", "Phone", "Zoom", "Google Meet", "Teams"]
MORNING = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
AFTERNOON = ["13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00"]

FIRST_NAMES = [
    "Oliver", "Amelia", "Harry", "Isla", "Jack", "Ava", "George", "Mia", "Noah", "Grace",
    "Leo", "Freya", "Arthur", "Lily", "Oscar", "Ella", "Theo", "Ivy", "Alfie", "Evie",
    "Priya", "Arjun", "Fatima", "Kwame", "Chloe", "Callum", "Niamh", "Rhys", "Eilidh", "Tomasz",
]
LAST_NAMES = [
    "Smith", "Patel", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas",
    "Roberts", "Walker", "Wright", "Khan", "Hughes", "Edwards", "Green", "Hall", "Wood",
    "Clarke", "Mensah", "Kowalski", "Campbell", "MacLeod", "Price", "O'Neill",
]
#: (display name, email local part) for guests booking in Tokyo time
JAPANESE_GUESTS = [
    ("山田 太郎", "taro.yamada"),
    ("佐藤 花子", "hanako.sato"),
    ("鈴木 一郎", "ichiro.suzuki"),
    ("Hiroshi Tanaka", "hiroshi.tanaka"),
    ("高橋 美咲", "misaki.takahashi"),
    ("Yuki Nakamura", "yuki.nakamura"),
    ("Kenji Watanabe", "kenji.watanabe"),
    ("小林 愛子", "aiko.kobayashi"),
]
#: fixed rows for the non-ASCII names (ref -> (name, email local part))
SPECIAL_GUESTS = {
    "JB-1004": ("Zoë Brontë", "zoe.bronte"),
    "JB-1038": ("Siobhán Ní Bhriain", "siobhan.nibhriain"),
    "JB-1052": ("José Álvarez", "jose.alvarez"),
}
COMPANIES = [
    "Northwind Logistics Ltd", "Brightwater Dental", "Harbour & Finch LLP", "Oakridge Lettings",
    "Pennine Solar Co", "Kestrel Analytics", "Blue Fern Studio", "Thistle Bakery",
    "Meridian Freight", "Copperleaf Accountancy", "Greyfriars Physio", "Lantern Works",
]
JAPANESE_COMPANIES = ["Sakura Trading KK", "株式会社みどり商事", "Kaizen Works", ""]
NOTES = [
    "Prefers mornings",
    "Please call on arrival",
    "Bringing a colleague",
    "Wheelchair access needed",
    "Follow-up from the January review",
    'Asked about the "premium" plan, call back if running late',
    "Parking details please",
    "Discuss renewal options",
    "First-time client",
    "Gate code 4512\nRing twice",
    "Needs an interpreter",
]
JAPANESE_NOTES = ["資料を事前に送ってください", "英語での対応を希望", ""]
EMAIL_DOMAINS = ["example.com", "example.org", "example.net"]
HYPERLINK_NOTE = '=HYPERLINK("http://example.invalid","x") click for directions'


def _phone(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return f"07700 900{rng.randrange(1000):03d}"
    if kind < 0.8:
        return f"020 7946 0{rng.randrange(1000):03d}"
    return f"0161 496 0{rng.randrange(1000):03d}"


def _slots() -> list[tuple[date, str]]:
    """Two slots per working day (one morning, one afternoon), in date order."""
    slots, day = [], FIRST_DAY
    rng = random.Random(SEED + 1)
    while len(slots) < ROW_COUNT * 2:
        if day.weekday() < 5:
            slots.append((day, rng.choice(MORNING)))
            slots.append((day, rng.choice(AFTERNOON)))
        day += timedelta(days=1)
    return slots


def build_rows() -> list[dict[str, object]]:
    """The rows, as column -> value. ``Date`` is a ``date`` (or the impossible text)."""
    rng = random.Random(SEED)
    slots = sorted(rng.sample(_slots(), ROW_COUNT))
    refs = [f"JB-{1001 + i}" for i in range(ROW_COUNT)]
    tokyo = {"JB-1010", "JB-1016", "JB-1024", "JB-1031", "JB-1040", "JB-1047", "JB-1055", "JB-1058"}
    no_zone = {"JB-1003", "JB-1029", "JB-1042", "JB-1057"}
    japanese = iter(JAPANESE_GUESTS)
    used_names: set[str] = set()
    rows: list[dict[str, object]] = []
    for ref, (day, start) in zip(refs, slots):
        if ref in tokyo:
            name, local = next(japanese)
            zone, language = "Asia/Tokyo", rng.choice(["ja", "ja", "ja", "en"])
            company = rng.choice(JAPANESE_COMPANIES)
            note = rng.choice(JAPANESE_NOTES)
        else:
            if ref in SPECIAL_GUESTS:
                name, local = SPECIAL_GUESTS[ref]
            else:
                while True:
                    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                    name = f"{first} {last}"
                    if name not in used_names:
                        break
                local = f"{first}.{last}".lower().replace("'", "")
            zone = "" if ref in no_zone else "Europe/London"
            language = rng.choice(["en"] * 5 + [""])
            company = rng.choice(COMPANIES + ["", ""])
            note = rng.choice(NOTES + ["", "", ""])
        used_names.add(name)
        meeting = rng.choice(MEETINGS)
        phone = _phone(rng) if meeting == "Phone" or rng.random() < 0.7 else ""
        rows.append(
            {
                "Booking Ref": ref,
                "Event Type": rng.choice(EVENT_TYPES),
                "Date": day,
                "Start Time": start,
                "Time Zone": zone,
                "Guest Name": name,
                "Email": f"{local}@{rng.choice(EMAIL_DOMAINS)}",
                "Phone": phone,
                "Company": company,
                "Meeting": meeting,
                "Notes": note,
                "Language": language,
            }
        )

    by_ref = {row["Booking Ref"]: row for row in rows}
    by_ref["JB-1007"]["Email"] = "not-an-email"
    by_ref["JB-1013"]["Guest Name"] = ""
    by_ref["JB-1019"]["Event Type"] = "Massage"
    by_ref["JB-1026"]["Date"] = "31/02/2027"
    by_ref["JB-1033"]["Time Zone"] = "Mars/Olympus"
    first, second = (by_ref[ref] for ref in CONFLICT_PAIR)
    first["Time Zone"] = "Europe/London"
    for column in ("Event Type", "Date", "Start Time", "Time Zone"):
        second[column] = first[column]
    by_ref[HYPERLINK_ROW]["Notes"] = HYPERLINK_NOTE
    return rows


def _text(value: object) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else str(value)


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    """UTF-8 with BOM, comma-delimited, every value as text (dates day-first)."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_text(row[c]) for c in COLUMNS])


def write_xlsx(rows: list[dict[str, object]], path: Path) -> None:
    """Sheet ``Bookings``; every cell text except every third Date, which is a real date cell."""
    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_numbers": False})
    workbook.set_properties({"title": "Jicoo sample bookings", "created": datetime(2026, 11, 1)})
    sheet = workbook.add_worksheet("Bookings")
    bold = workbook.add_format({"bold": True})
    date_cell = workbook.add_format({"num_format": "dd/mm/yyyy"})
    sheet.write_row(0, 0, COLUMNS, bold)
    date_col = COLUMNS.index("Date")
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(COLUMNS):
            value = row[column]
            if c == date_col and isinstance(value, date) and r % 3 == 1:
                sheet.write_datetime(r, c, datetime(value.year, value.month, value.day), date_cell)
            else:
                sheet.write_string(r, c, _text(value))
    for c, width in enumerate([11, 20, 11, 10, 15, 20, 30, 15, 24, 12, 40, 9]):
        sheet.set_column(c, c, width)
    sheet.freeze_panes(1, 0)
    workbook.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = build_rows()
    write_xlsx(rows, args.out / "bookings.xlsx")
    write_csv(rows, args.out / "bookings.csv")
    print(
        f"wrote {len(rows)} rows ({len(PROBLEM_ROWS)} problem rows, conflict pair "
        f"{' + '.join(CONFLICT_PAIR)}) to {args.out / 'bookings.xlsx'} and bookings.csv"
    )


if __name__ == "__main__":
    main()
