"""Chaos (issue 11): 2,000 rows against a Jicoo simulator that is both faulty and inconvenient, a run
killed with SIGKILL part way, then runs until every row is settled. The promise checked: no booking
twice, none lost, and a results workbook that agrees with what the provider holds, row by row.

The simulator: 5% of writes 503, 2% 429 (no Retry-After), 1% stored then stalled past the client's
timeout, 1% stored then the connection dropped, 2% of reads 500; its list filter bounds a booking's
start *and* end, it answers timestamps in the booking's own offset at seconds, pages by 10 unless
asked for more. Most rows are attendees of four workshops (300 a start: a resend would book a second
seat, and a read-back must page), the rest one-to-one consultations (one per slot: a resend gets 409).

The killed run is the plain engine in a subprocess (``python -m flows run`` starts a Prefect server,
which is tests/test_prefect_flow.py's business); the runs after it are the same engine in-process.
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import openpyxl

from flows.engine.run import ImportRun
from flows.outcomes import Status
from flows.sandbox import EventType, Faults, JicooSimulator

from .conftest import ROOT, import_now, mapping_variant, served, use_sandbox

ROWS = 2_000
WORKSHOPS = 4  # starts, 300 attendees each
PER_WORKSHOP = 300
FAULTS = Faults(unavailable_rate=0.05, rate_limited_rate=0.02, timeout_after_store_rate=0.01,
                drop_after_store_rate=0.01, read_error_rate=0.02, stall_seconds=3, seed=2026)
EVENT_TYPES = [
    EventType("mzgdPJVBb7RE", "Initial consultation", 30),
    EventType("k3Jd9QpLx2Wa", "Follow-up call", 15),
    EventType("T7vNc4RsY8eb", "Workshop", 60, capacity=1_000),
]
COLUMNS = ["Booking Ref", "Event Type", "Date", "Start Time", "Time Zone", "Guest Name", "Email", "Phone",
           "Company", "Meeting", "Notes", "Language"]


def write_sheet(path: Path) -> dict[str, str]:
    """The sheet; returns each row's reference -> its guest's e-mail (unique per row)."""
    day0 = dt.date(2027, 3, 1)
    rows, emails = [], {}
    for i in range(ROWS):
        ref = f"CH-{i:05d}"
        email = f"guest{i:05d}@example.org"
        if i < WORKSHOPS * PER_WORKSHOP:  # four workshops, a week apart, 10:00 London
            event, day, clock = "Workshop", day0 + dt.timedelta(days=7 * (i // PER_WORKSHOP)), "10:00"
        else:  # one-to-one, each its own half-hour slot, 09:00-16:30 on weekdays after the workshops
            k = i - WORKSHOPS * PER_WORKSHOP
            day = day0 + dt.timedelta(days=35 + k // 16)
            minutes = 9 * 60 + 30 * (k % 16)
            event, clock = "Initial consultation", f"{minutes // 60:02d}:{minutes % 60:02d}"
        rows.append([ref, event, day.strftime("%d/%m/%Y"), clock, "Europe/London", f"Guest {i}", email, "",
                     "", "Zoom", "", "en"])
        emails[ref] = email
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return emails


RUNNER = textwrap.dedent("""
    import asyncio, sys
    from flows.engine.plan import prepare
    from flows.engine.run import RunOptions, run_import
    sheet, mapping, ledger, out = sys.argv[1:5]
    asyncio.run(run_import(prepare(sheet, mapping), RunOptions(ledger_url=ledger, out=out, rate=300.0, concurrency=16)))
""")


def run_once(sheet: Path, mapping: Path, ledger: str, out: Path) -> ImportRun:
    return import_now(sheet, mapping, ledger_url=ledger, out=out, rate=None, concurrency=16)


def settled(run: ImportRun) -> bool:
    return all(o is not None and o.status in (Status.CREATED, Status.SKIPPED) and o.provider_id for o in run.outcomes)


def test_chaos_sigkill_then_runs_until_settled_books_every_row_exactly_once(tmp_path, monkeypatch):
    started = time.monotonic()
    sheet = tmp_path / "chaos.csv"
    emails = write_sheet(sheet)
    mapping = mapping_variant(tmp_path, connection__timeout_seconds=1, connection__concurrency=16,
                              retry__attempts=8, retry__backoff_seconds=0.02, retry__max_backoff_seconds=0.2)
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    sim = JicooSimulator(faults=FAULTS, event_types=EVENT_TYPES, timestamps="offset", list_filter="within")

    with served(sim):
        env = {**os.environ, **use_sandbox("jicoo", sim.url, monkeypatch), "PYTHONPATH": str(ROOT)}
        runner = tmp_path / "runner.py"
        runner.write_text(RUNNER)
        killed = subprocess.Popen([sys.executable, str(runner), str(sheet), str(mapping), ledger,
                                   str(tmp_path / "killed.xlsx")], cwd=tmp_path, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(sim.bookings) < ROWS // 4 and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        killed.send_signal(signal.SIGKILL)
        _, err = killed.communicate(timeout=30)
        at_kill = len(sim.bookings)
        assert killed.returncode == -signal.SIGKILL, f"the run ended before it was killed: {err.decode()[-2000:]}"
        assert 0 < at_kill < ROWS, at_kill

        runs = []
        for n in range(1, 9):  # faults stay on: every run makes new unknowns of the rows it still sends
            runs.append(run_once(sheet, mapping, ledger, tmp_path / f"run{n}.xlsx"))
            if settled(runs[-1]):
                break
        last = runs[-1]
        bookings = sim.bookings
        counts = dict(sim.fault_counts)

    # every kind of fault happened, and the runs after the kill had unknown rows to check
    for kind in ("unavailable", "rate_limited", "timeout_after_store", "drop_after_store", "read_error"):
        assert counts.get(kind, 0) > 0, (kind, counts)
    assert any(o.status is Status.UNKNOWN for r in runs[:-1] for o in r.outcomes) or len(runs) == 1

    # the provider: each row's guest exactly once (0 duplicates), every row there (0 lost)
    open_bookings = [b for b in bookings if b["status"] == "open"]
    per_email = collections.Counter(b["email"] for b in open_bookings)
    duplicates = {e: c for e, c in per_email.items() if c > 1}
    assert not duplicates, f"{len(duplicates)} guests booked twice, e.g. {list(duplicates.items())[:5]}"
    lost = set(emails.values()) - set(per_email)
    assert not lost, f"{len(lost)} rows never booked, e.g. {sorted(lost)[:5]}"
    assert len(open_bookings) == ROWS
    assert settled(last), collections.Counter(o.status.value for o in last.outcomes)

    # the final workbook agrees with the provider, row by row
    uid_of = {b["email"]: b["uid"] for b in open_bookings}
    wb = openpyxl.load_workbook(last.results_path, read_only=True)
    rows = list(wb["Results"].iter_rows(values_only=True))
    wb.close()
    head = list(rows[0])
    ref_at, status_at, id_at = head.index("Booking Ref"), head.index("_status"), head.index("_provider_id")
    assert len(rows) - 1 == ROWS
    for cells in rows[1:]:
        ref = cells[ref_at]
        assert cells[status_at] in ("created", "skipped"), cells
        assert cells[id_at] == uid_of[emails[ref]], (ref, cells[id_at], uid_of[emails[ref]])
    print(f"chaos: killed at {at_kill} bookings, {len(runs)} runs after it, faults {counts}, "
          f"{time.monotonic() - started:.1f} s")
