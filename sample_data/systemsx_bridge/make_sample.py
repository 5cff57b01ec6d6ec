"""Write the Systems X Bridge sample sheet: ``bookings.csv`` (UTF-8, comma-separated).

Fake, deterministic data (fixed seed): 36 cruise bookings a travel agency hands to Bridge so it
pulls each one from the cruise line's portal with the customer's portal login. Agencies, agents
and passengers are invented; e-mail addresses use ``example.com``/``example.org``; passwords
are random strings made here.

What the rows exercise:

* the three operator types ``po``, ``msc`` and ``tui``, one written ``MSC`` (the mapping
  lower-cases it) -- keys are (Type, Booking Reference);
* portal logins by username (most rows) and by e-mail address (every third row);
* a non-ASCII passenger name (``Zoë Brontë``) and an agency name with a comma;
* problem rows, one problem each (the importer finds them before sending anything):

  ==============  ===========================================================
  TUI-70310       both Portal Username and Portal Email filled in
  PO-48191120     both Portal Username and Portal Email filled in
  MSC-51200871    neither Portal Username nor Portal Email
  CUN-20001       unknown Type ``cunard`` (Bridge takes po, msc or tui)
  ==============  ===========================================================

Run ``python sample_data/systemsx_bridge/make_sample.py [--out DIR]``.
"""
from __future__ import annotations

import argparse
import csv
import random
import string
from datetime import date, timedelta
from pathlib import Path

__all__ = ["COLUMNS", "PROBLEM_ROWS", "build_rows", "write_csv", "main"]

COLUMNS = [
    "Type",
    "Booking Reference",
    "Organisation",
    "Agent",
    "Lead Passenger",
    "Ship",
    "Sail Date",
    "Portal Username",
    "Portal Email",
    "Portal Password",
]

#: Booking Reference -> what is wrong with it
PROBLEM_ROWS = {
    "TUI-70310": "both username and e-mail address",
    "PO-48191120": "both username and e-mail address",
    "MSC-51200871": "neither username nor e-mail address",
    "CUN-20001": "unknown type",
}

ROW_COUNT = 36
SEED = 20270301

AGENCIES = ["Harbour Lights Travel Ltd", "Bluewater Cruise Centre", "Anchor & Compass Holidays",
            "Seaview Travel, Bristol"]
AGENTS = ["Megan Hale", "Daniel Okafor", "Sophie Lindqvist", "Rory MacLeod", "Aisha Rahman"]
FIRST = ["Oliver", "Amelia", "Harry", "Isla", "Jack", "Ava", "George", "Mia", "Noah", "Grace", "Leo", "Freya",
         "Priya", "Kwame", "Niamh", "Tomasz"]
LAST = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts", "Walker",
        "Patel", "Mensah", "Byrne", "Nowak"]
SHIPS = {"po": ["Iona", "Arvia", "Britannia", "Ventura"], "msc": ["MSC World Europa", "MSC Virtuosa", "MSC Seashore"],
         "tui": ["Marella Explorer", "Marella Voyager", "Marella Discovery"]}
FIRST_SAILING = date(2027, 3, 6)


def _reference(kind: str, rng: random.Random) -> str:
    if kind == "po":
        return f"PO-{rng.randrange(10_000_000, 99_999_999)}"
    if kind == "msc":
        return f"MSC-{rng.randrange(10_000_000, 99_999_999)}"
    return f"TUI-{rng.randrange(10_000, 99_999)}"


def _password(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rng.choices(alphabet, k=10)) + rng.choice("!#%*") + str(rng.randrange(10, 99))


def build_rows() -> list[list[str]]:
    """The sheet's rows (without the header), the same on every call."""
    rng = random.Random(SEED)
    rows: list[list[str]] = []
    kinds = ["po", "msc", "tui"]
    for i in range(ROW_COUNT):
        kind = kinds[i % 3]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if i == 7:
            first, last = "Zoë", "Brontë"
        ref = _reference(kind, rng)
        username = f"{first[0].lower()}{last.lower()}{rng.randrange(10, 99)}".replace("ë", "e").replace("ö", "o")
        email = f"{first.lower()}.{last.lower()}@{rng.choice(['example.com', 'example.org'])}".replace("ë", "e")
        by_email = i % 3 == 1
        row = {
            "Type": kind,
            "Booking Reference": ref,
            "Organisation": AGENCIES[i % len(AGENCIES)],
            "Agent": AGENTS[i % len(AGENTS)],
            "Lead Passenger": f"{first} {last}",
            "Ship": rng.choice(SHIPS[kind]),
            "Sail Date": (FIRST_SAILING + timedelta(days=7 * (i // 2) + i % 2)).isoformat(),
            "Portal Username": "" if by_email else username,
            "Portal Email": email if by_email else "",
            "Portal Password": _password(rng),
        }
        rows.append(row)
    # the problem rows, at fixed places
    rows[5].update({"Type": "tui", "Booking Reference": "TUI-70310", "Portal Username": "hwalker55",
                    "Portal Email": "harry.walker@example.com"})
    rows[12].update({"Type": "po", "Booking Reference": "PO-48191120", "Portal Username": "gpatel12",
                     "Portal Email": "grace.patel@example.org"})
    rows[19].update({"Type": "msc", "Booking Reference": "MSC-51200871", "Portal Username": "", "Portal Email": ""})
    rows[26].update({"Type": "cunard", "Booking Reference": "CUN-20001", "Ship": "Queen Anne"})
    rows[10]["Type"] = "MSC" if rows[10]["Type"] == "msc" else rows[10]["Type"]
    return [[r[c] for c in COLUMNS] for r in rows]


def write_csv(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(build_rows())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="folder to write bookings.csv to")
    args = parser.parse_args(argv)
    print(write_csv(args.out / "bookings.csv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
