"""Benchmark inputs, generated into ``bench/data/`` (git-ignored) and reused while unchanged.

* ``jicoo-<N>.csv``: N valid Jicoo rows (the columns of ``sample_data/jicoo``), every row on its
  own slot, so a fresh simulator answers 201 to every one of them and never 409;
* ``jicoo-<N>.payloads.jsonl``: the JSON body of each of those rows, exactly as
  :func:`flows.engine.plan.prepare` builds it, for the bare client loops (they send these bytes);
* ``jicoo-<M>x12.xlsx``: M rows of the same shape as a workbook (sheet ``Bookings``, written with
  XlsxWriter ``constant_memory``), a third of the dates as real date cells, the rest as text.

Slots: ``(event type, start instant in UTC)`` is unique over the whole file. Dates run over
working and weekend days from 2027-01-04 for as many years as the row count needs, starts every
half hour from 08:00 to 17:30 local time, in ``Europe/London`` (explicit or the mapping's
default when the cell is empty) or ``Asia/Tokyo``; the rare rows whose UTC instant would collide
with an earlier row's (London and Tokyo office hours overlap for 90 minutes) are drawn again.

Run on its own: ``python bench/gen_data.py [--rows 10000] [--xlsx-rows 100000]``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib.util
import json
import random
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
MAPPING = ROOT / "mappings" / "jicoo.yaml"
SAMPLE_MAKER = ROOT / "sample_data" / "jicoo" / "make_sample.py"

#: bump when the generated rows change, so stale files are rebuilt
GEN_VERSION = 1
SEED = 20270104
FIRST_DAY = dt.date(2027, 1, 4)
STARTS = [f"{h:02d}:{m:02d}" for h in range(8, 18) for m in (0, 30)]  # 20 half-hour starts
EVENT_TYPES = {  # sheet name -> Jicoo uid (mappings/jicoo.yaml lookup)
    "Initial consultation": "mzgdPJVBb7RE",
    "Follow-up call": "k3Jd9QpLx2Wa",
    "Workshop": "T7vNc4RsY8eb",
}
ZONES = ["Europe/London"] * 14 + [""] * 3 + ["Asia/Tokyo"] * 3  # "" -> the mapping's default, London
MEETINGS = ["In person", "Phone", "Zoom", "Google Meet", "Teams", "Ask the guest"]
LANGUAGES = ["en"] * 6 + ["ja", "English", ""]


def _sample_module():
    """sample_data/jicoo/make_sample.py, for its column order and name lists."""
    spec = importlib.util.spec_from_file_location("_jicoo_make_sample", SAMPLE_MAKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paths(rows: int, xlsx_rows: int) -> dict[str, Path]:
    v = f"v{GEN_VERSION}"
    return {
        "csv": DATA / f"jicoo-{rows}-{v}.csv",
        "payloads": DATA / f"jicoo-{rows}-{v}.payloads.jsonl",
        "xlsx": DATA / f"jicoo-{xlsx_rows}x12-{v}.xlsx",
    }


def build_rows(n: int, *, ref_prefix: str = "BR") -> list[dict[str, object]]:
    """``n`` valid rows as column -> value; ``Date`` is a :class:`datetime.date`."""
    sample = _sample_module()
    rng = random.Random(SEED + n)
    types = list(EVENT_TYPES)
    per_day = len(STARTS) * len(types)
    # at least two years of dates; at most about 80 % of the grid used, leaving spare cells for redraws
    days = max(730, -(-int(n * 1.25) // per_day))
    grid = days * per_day
    zones = {z: ZoneInfo(z) for z in ("Europe/London", "Asia/Tokyo")}
    seen: set[tuple[str, dt.datetime]] = set()
    rows: list[dict[str, object]] = []
    cells = iter(rng.sample(range(grid), grid))  # every grid cell at most once, in random order
    for cell in cells:  # bounded: the grid is finite
        if len(rows) == n:
            break
        day_i, rest = divmod(cell, per_day)
        start_i, type_i = divmod(rest, len(types))
        day = FIRST_DAY + dt.timedelta(days=day_i)
        start = STARTS[start_i]
        event = types[type_i]
        zone = rng.choice(ZONES)
        local = dt.datetime.combine(day, dt.time.fromisoformat(start)).replace(tzinfo=zones[zone or "Europe/London"])
        slot = (event, local.astimezone(dt.UTC))
        if slot in seen:
            continue
        seen.add(slot)
        i = len(rows)
        first, last = rng.choice(sample.FIRST_NAMES), rng.choice(sample.LAST_NAMES)
        local_part = f"{first}.{last}".lower().replace("'", "")
        meeting = rng.choice(MEETINGS)
        phone = f"07700 900{rng.randrange(1000):03d}" if meeting == "Phone" or rng.random() < 0.6 else ""
        rows.append({
            "Booking Ref": f"{ref_prefix}-{i + 1:06d}",
            "Event Type": event,
            "Date": day,
            "Start Time": start,
            "Time Zone": zone,
            "Guest Name": f"{first} {last}",
            "Email": f"{local_part}.{i + 1}@{rng.choice(sample.EMAIL_DOMAINS)}",
            "Phone": phone,
            "Company": rng.choice([*sample.COMPANIES, "", ""]),
            "Meeting": meeting,
            "Notes": rng.choice([*sample.NOTES, "", "", ""]),
            "Language": rng.choice(LANGUAGES),
        })
    if len(rows) < n:  # pragma: no cover - the grid is sized with room to spare
        raise RuntimeError(f"could only place {len(rows)} of {n} rows on distinct slots")
    return rows


def _text(value: object) -> str:
    return value.strftime("%d/%m/%Y") if isinstance(value, dt.date) else str(value)


def write_csv(rows: list[dict[str, object]], path: Path, columns: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([_text(row[c]) for c in columns])
    tmp.replace(path)


def write_xlsx(rows: list[dict[str, object]], path: Path, columns: list[str]) -> None:
    """XlsxWriter in constant_memory mode: rows written in order, flushed as it goes."""
    import xlsxwriter

    tmp = path.with_name(path.stem + ".tmp.xlsx")
    wb = xlsxwriter.Workbook(str(tmp), {"constant_memory": True, "strings_to_formulas": False,
                                        "strings_to_numbers": False, "strings_to_urls": False})
    ws = wb.add_worksheet("Bookings")
    bold = wb.add_format({"bold": True})
    date_fmt = wb.add_format({"num_format": "dd/mm/yyyy"})
    ws.write_row(0, 0, columns, bold)
    date_col = columns.index("Date")
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(columns):
            value = row[column]
            if c == date_col and r % 3 == 1:
                ws.write_datetime(r, c, dt.datetime(value.year, value.month, value.day), date_fmt)
            else:
                text = _text(value)
                if text:
                    ws.write_string(r, c, text)
    wb.close()
    tmp.replace(path)


def write_payloads(csv_path: Path, out: Path) -> int:
    """The engine's own payloads for the CSV, one compact JSON object a line. Returns the count."""
    from flows.engine.plan import prepare

    plan = prepare(csv_path, MAPPING)
    bad = [r for r in plan.rows if r.payload is None]
    if bad:
        raise RuntimeError(f"{len(bad)} generated rows are invalid, e.g. line {bad[0].line}: "
                           + "; ".join(map(str, bad[0].problems)))
    slots = {(r.payload["eventTypeId"], r.payload["startedAt"]) for r in plan.rows}
    if len(slots) != len(plan.rows):
        raise RuntimeError("generated rows share a slot; the simulator would answer 409")
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in plan.rows:
            fh.write(json.dumps(r.payload, ensure_ascii=False, separators=(",", ":")) + "\n")
    tmp.replace(out)
    return len(plan.rows)


def ensure_csv(rows: int, log=print) -> dict[str, Path]:
    """The CSV of ``rows`` rows and its payloads only (no xlsx); built when missing."""
    DATA.mkdir(parents=True, exist_ok=True)
    p = paths(rows, 0)
    if not p["csv"].is_file() or not p["payloads"].is_file():
        t = time.perf_counter()
        write_csv(build_rows(rows), p["csv"], list(_sample_module().COLUMNS))
        n = write_payloads(p["csv"], p["payloads"])
        log(f"generated {p['csv'].name} and {n} payloads in {time.perf_counter() - t:.1f} s")
    return {"csv": p["csv"], "payloads": p["payloads"]}


def ensure(rows: int, xlsx_rows: int, log=print) -> dict[str, Path]:
    """Build whatever input is missing; return the paths."""
    DATA.mkdir(parents=True, exist_ok=True)
    p = paths(rows, xlsx_rows)
    columns = list(_sample_module().COLUMNS)
    if not p["csv"].is_file() or not p["payloads"].is_file():
        t = time.perf_counter()
        write_csv(build_rows(rows), p["csv"], columns)
        n = write_payloads(p["csv"], p["payloads"])
        log(f"generated {p['csv'].name} and {n} payloads in {time.perf_counter() - t:.1f} s")
    if not p["xlsx"].is_file():
        t = time.perf_counter()
        write_xlsx(build_rows(xlsx_rows, ref_prefix="BX"), p["xlsx"], columns)
        log(f"generated {p['xlsx'].name} ({p['xlsx'].stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--xlsx-rows", type=int, default=100_000)
    args = ap.parse_args(argv)
    for name, path in ensure(args.rows, args.xlsx_rows).items():
        print(f"{name:9} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
