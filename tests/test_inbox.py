"""The inbox (flows/inbox.py, flows/ledger/claims.py) without a scheduler: files across two providers, a
duplicate, a half-written file, a file nobody routes, a run killed mid-file and the run that
finishes it, two runs racing for the same files, the notify hook, and ``serve`` without a server."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from flows.errors import ConfigError
from flows.inbox import InboxConfig, load_routes, mapping_for, process_inbox, run_inbox, send_notification
from flows.ledger.claims import CLAIMED, DONE, FileClaims, file_hash
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, ROOT, SAMPLES, in_threads, served, use_sandbox

DAY = dt.date(2026, 11, 21)
COLUMNS = ["Booking Ref", "Event Type", "Date", "Start Time", "Time Zone", "Guest Name", "Email", "Phone", "Company",
           "Meeting", "Notes", "Language"]


def jicoo_rows(prefix: str, n: int, start: str, first_day: dt.date = dt.date(2028, 3, 1)) -> list[list[str]]:
    """n valid Jicoo rows, one a day at ``start`` (files use different hours, so no slot is taken twice)."""
    return [[f"{prefix}-{i:03d}", "Follow-up call", (first_day + dt.timedelta(days=i)).strftime("%d/%m/%Y"), start,
             "Europe/London", f"Guest {prefix} {i}", f"{prefix.lower()}.{i}@example.org", "", "", "Zoom", "", "en"]
            for i in range(n)]


def write_csv(path: Path, rows: list[list[str]], header: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if not header else "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if header:
            w.writerow(COLUMNS)
        w.writerows(rows)
    return path


def open_slots(sim) -> list[tuple]:
    return [(b["eventTypeId"], b["startedAt"]) for b in sim.bookings if b["status"] == "open"]


@pytest.fixture
def bigchange(monkeypatch):
    from flows.sandbox import SIMULATORS

    if "bigchange" not in SIMULATORS or not (MAPPINGS / "bigchange.yaml").is_file():
        pytest.skip("no BigChange simulator yet")
    with served(SIMULATORS["bigchange"]()) as sim:
        use_sandbox("bigchange", sim.url, monkeypatch)
        yield sim


def make_inbox(root: Path) -> Path:
    """jicoo/ (folder rule), partners/ -> BigChange and uploads/ -> Jicoo (routes.yaml), a duplicate, a stray file."""
    inbox = root / "inbox"
    write_csv(inbox / "jicoo" / "bookings.csv", jicoo_rows("JA", 16, "09:00"))
    shutil.copy(inbox / "jicoo" / "bookings.csv", inbox / "jicoo" / "resent-by-mistake.csv")  # same bytes
    write_csv(inbox / "uploads" / "week47.bookings.csv", jicoo_rows("JW", 8, "11:00"))
    (inbox / "partners").mkdir()
    shutil.copy(SAMPLES / "bigchange" / "jobs.xlsx", inbox / "partners" / "acme-jobs.xlsx")
    write_csv(inbox / "misc" / "notes.csv", jicoo_rows("JX", 2, "12:00"))  # no route, no misc.yaml
    (inbox / "routes.yaml").write_text('"partners/*.xlsx": bigchange\n"uploads/*.bookings.csv": jicoo\n')
    (inbox / "jicoo" / "README.md").write_text("not a sheet: left alone\n")
    return inbox


KILLABLE = """
import asyncio, datetime as dt, sys
from flows.inbox import InboxConfig, process_inbox
cfg = InboxConfig(inbox=sys.argv[1], mappings=sys.argv[2], ledger_url=sys.argv[3], settle_seconds=0.1,
                  lease_seconds=60, rate=0, concurrency=2, day=dt.date.fromisoformat(sys.argv[4]))
asyncio.run(process_inbox(cfg))
"""


def wait_for(predicate, timeout=60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_two_runs_one_killed_mid_file_import_every_file_once(jicoo_sim, jicoo_env, bigchange, tmp_path):
    inbox = make_inbox(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    original = file_hash(inbox / "jicoo" / "bookings.csv")

    # run 1, in its own process, killed with SIGKILL once some rows of the first file are booked
    jicoo_sim.faults = Faults(latency_ms=120)
    p = subprocess.Popen([sys.executable, "-c", KILLABLE, str(inbox), str(MAPPINGS), ledger, DAY.isoformat()],
                         cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(jicoo_sim.bookings) >= 5, timeout=60), p.stderr.read() if p.poll() else "no start"
    finally:
        p.kill()
        p.communicate(timeout=30)
    booked_before = len(jicoo_sim.bookings)
    assert 5 <= booked_before < 16, "killed mid-file"
    assert (inbox / "jicoo" / "bookings.csv").exists(), "not archived by the killed run"
    with FileClaims(Path(ledger), owner="peek") as claims:
        assert claims.get(original).state == CLAIMED and claims.get(original).pid == p.pid

    # run 2 (in this process) while a third file is still being written into the inbox
    jicoo_sim.faults = Faults()
    growing = write_csv(inbox / "jicoo" / "growing.csv", jicoo_rows("JG", 1, "15:00"))
    stop = threading.Event()

    def writer() -> None:
        i = 1
        while not stop.wait(0.05):
            write_csv(growing, jicoo_rows("JG", i + 1, "15:00")[i:], header=False)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        config = InboxConfig(inbox=inbox, mappings=MAPPINGS, ledger_url=ledger, settle_seconds=0.4, rate=0, day=DAY)
        report = asyncio.run(process_inbox(config))
    finally:
        stop.set()
        thread.join()

    states = {f.file: f.state for f in report.files}
    assert states == {"jicoo/bookings.csv": "imported", "jicoo/resent-by-mistake.csv": "duplicate",
                      "jicoo/growing.csv": "incomplete", "misc/notes.csv": "no_mapping",
                      "partners/acme-jobs.xlsx": "imported", "uploads/week47.bookings.csv": "imported"}
    files = {f.file: f for f in report.files}
    resumed = files["jicoo/bookings.csv"]
    assert resumed.message.startswith("resumed") and resumed.provider == "jicoo"
    assert resumed.counts["created"] + resumed.counts["skipped"] == 16, resumed.counts
    assert resumed.counts["skipped"] >= booked_before - 2 and not resumed.counts["unknown"] + resumed.counts["failed"]
    assert files["partners/acme-jobs.xlsx"].provider == "bigchange"
    assert files["partners/acme-jobs.xlsx"].counts["created"] == 40  # 48 jobs: 6 invalid, 2 refused by BigChange
    assert "same content as jicoo/bookings.csv" in files["jicoo/resent-by-mistake.csv"].message
    assert "misc/" in files["misc/notes.csv"].message and "route" in files["misc/notes.csv"].message
    assert not report.ok and report.problems() == [f"misc/notes.csv: no mapping: {files['misc/notes.csv'].message}"]

    # no row booked twice, none dropped; each file archived once, its results beside it
    assert len(jicoo_sim.bookings) == 16 + 8 and len(set(open_slots(jicoo_sim))) == 24
    refs = [j["reference"] for j in bigchange.jobs]
    assert len(refs) == len(set(refs)) == 40
    day = inbox / "archive" / DAY.isoformat()
    assert sorted(p.relative_to(day).as_posix() for p in day.rglob("*") if p.is_file()) == [
        "duplicates/jicoo/resent-by-mistake.csv", "jicoo/bookings.csv", "jicoo/bookings.results.xlsx",
        "partners/acme-jobs.results.xlsx", "partners/acme-jobs.xlsx", "uploads/week47.bookings.csv",
        "uploads/week47.bookings.results.xlsx"]
    assert resumed.results == f"archive/{DAY}/jicoo/bookings.results.xlsx"
    df, _summary = read_results(day / "jicoo" / "bookings.results.xlsx")
    assert len(df) == 16 and set(df["_status"]) <= {"created", "skipped"}
    assert set(df["_provider_id"]) == {b["uid"] for b in jicoo_sim.bookings if b["email"].startswith("ja.")}
    assert sorted(p.relative_to(inbox).as_posix() for p in inbox.rglob("*.csv") if "archive" not in p.parts) == [
        "jicoo/growing.csv", "misc/notes.csv"]
    with FileClaims(Path(ledger), owner="peek") as claims:
        record = claims.get(original)
        assert record.state == DONE and record.claims == 2 and record.archived_to == f"archive/{DAY}/jicoo/bookings.csv"

    # run 3: the finished file is imported, the unrouted one is still reported, nothing else happens
    rows_written = sum(1 for _ in growing.open()) - 1
    again = asyncio.run(process_inbox(InboxConfig(inbox=inbox, mappings=MAPPINGS, ledger_url=ledger,
                                                  settle_seconds=0.1, rate=0, day=DAY)))
    assert {f.file: f.state for f in again.files} == {"jicoo/growing.csv": "imported", "misc/notes.csv": "no_mapping"}
    assert again.files[0].counts["created"] == rows_written
    assert len(jicoo_sim.bookings) == 24 + rows_written and len(set(open_slots(jicoo_sim))) == 24 + rows_written


def two_workers_contract(jicoo_sim, tmp_path: Path, ledger: str) -> None:
    """Two inbox workers at once on one ledger (tests/test_ledger_postgres.py runs it on PostgreSQL): each file is
    imported by exactly one of them, every row booked once, and neither calls the other's file a duplicate."""
    inbox = tmp_path / "inbox"
    for n, hour in enumerate(("09:00", "10:00", "11:00", "12:00")):
        write_csv(inbox / "jicoo" / f"day{n}.csv", jicoo_rows(f"J{n}", 6, hour))
    jicoo_sim.faults = Faults(latency_ms=20)

    async def both():
        configs = [InboxConfig(inbox=inbox, mappings=MAPPINGS, ledger_url=ledger, settle_seconds=0.05, rate=0, day=DAY)
                   for _ in range(2)]
        return await asyncio.gather(*(process_inbox(c, owner=f"worker-{i}") for i, c in enumerate(configs)))

    a, b = asyncio.run(both())
    imported = Counter(f.file for r in (a, b) for f in r.files if f.state == "imported")
    assert imported == {f"jicoo/day{n}.csv": 1 for n in range(4)}
    assert all(f.state in ("imported", "busy") for r in (a, b) for f in r.files)  # never a false duplicate
    assert len(jicoo_sim.bookings) == 24 and len(set(open_slots(jicoo_sim))) == 24
    assert a.ok and b.ok


def test_two_runs_at_once_import_each_file_exactly_once(jicoo_sim, jicoo_env, tmp_path):
    two_workers_contract(jicoo_sim, tmp_path, str(tmp_path / "ledger.sqlite"))


def stale_claim_contract(db: Path | str, start: float) -> None:
    """Leases on any backend (tests/test_ledger_postgres.py runs it on PostgreSQL): a live claim holds, a lapsed
    one is taken over, a finished one is a duplicate, a released one is claimable again."""
    now = [start]
    a = FileClaims(db, owner="run-a", lease_seconds=60, clock=lambda: now[0])
    b = FileClaims(db, owner="run-b", lease_seconds=60, clock=lambda: now[0])
    assert a.claim("h1", "x.csv")[0]
    won, record = b.claim("h1", "x.csv")
    assert not won and record.owner == "run-a"  # a live claim (same process, lease running)
    now[0] += 30
    assert a.renew("h1")
    now[0] += 61  # run-a stopped renewing: the lease ran out
    assert b.is_stale(b.get("h1"))
    won, record = b.claim("h1", "x.csv")
    assert won and record.owner == "run-b" and record.claims == 2
    assert not a.renew("h1") and not a.finish("h1", results=None, archived_to=None, counts={})
    assert b.finish("h1", results="r.xlsx", archived_to="x.csv", counts={"created": 1})
    assert not a.claim("h1", "copy.csv")[0]  # done: a duplicate from now on
    assert b.claim("h2", "y.csv")[0] and b.release("h2", "credentials refused")
    assert a.claim("h2", "y.csv")[0]  # released: claimable again
    a.close(), b.close()


def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(tmp_path):
    stale_claim_contract(tmp_path / "l.sqlite", 1000.0)


def test_only_one_of_many_racing_claims_wins(tmp_path):
    db = tmp_path / "l.sqlite"
    FileClaims(db, owner="init").close()
    winners = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        with FileClaims(db, owner=f"w{i}") as c:
            barrier.wait()
            if c.claim("same-content", "f.csv")[0]:
                winners.append(i)

    in_threads(race, [(i,) for i in range(8)])
    assert len(winners) == 1


@pytest.mark.parametrize("rel, routes, expected", [
    ("jicoo/a.xlsx", {}, "jicoo.yaml"),
    ("jicoo/2026/11/a.csv", {}, "jicoo.yaml"),
    ("servicemobility_followups/f.xlsx", {}, "servicemobility_followups.yaml"),
    ("partners/acme.csv", {"partners/*.csv": "jicoo"}, "jicoo.yaml"),
    ("jicoo/odd.csv", {"jicoo/odd.csv": "bigchange"}, "bigchange.yaml"),  # a route beats the folder
    ("top.xlsx", {"*.xlsx": "bigchange"}, "bigchange.yaml"),
    ("top.xlsx", {}, None),
    ("nosuch/a.xlsx", {}, None),
    ("partners/a.csv", {"partners/*.csv": "missing"}, None),
], ids=["folder", "nested-folder", "folder-with-underscore", "route-by-name", "route-beats-folder", "root-route",
        "root-without-route", "folder-without-mapping", "route-to-missing"])
def test_routing(rel, routes, expected, tmp_path):
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    for name in ("jicoo", "bigchange", "servicemobility_followups"):
        (mappings / f"{name}.yaml").write_text("provider: x\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "routes.yaml").write_text("".join(f'"{k}": {v}\n' for k, v in routes.items()))
    found, why = mapping_for(rel, load_routes(inbox, mappings), mappings)
    assert (found.name if found else None) == expected, why
    if expected is None:
        assert "route" in why or "does not exist" in why


def test_a_route_may_name_a_mapping_file_and_a_broken_routes_file_says_how(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(MAPPINGS / "jicoo.yaml", tmp_path / "special.yaml")
    (inbox / "routes.yaml").write_text('"*.csv": ../special.yaml\n')
    found, _ = mapping_for("a.csv", load_routes(inbox, MAPPINGS), MAPPINGS)
    assert found == (tmp_path / "special.yaml").resolve()
    (inbox / "routes.yaml").write_text("- just a list\n")
    with pytest.raises(ConfigError, match="glob: mapping"):
        load_routes(inbox, MAPPINGS)


def test_a_whole_file_problem_leaves_the_file_and_fails_the_run(jicoo_sim, jicoo_env, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    write_csv(inbox / "jicoo" / "a.csv", jicoo_rows("JE", 3, "09:00"))
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_wrong")
    config = InboxConfig(inbox=inbox, mappings=MAPPINGS, ledger_url=str(tmp_path / "l.sqlite"), settle_seconds=0,
                         day=DAY)
    report = asyncio.run(process_inbox(config))
    f = report.files[0]
    assert f.state == "imported" and f.counts["failed"] + f.counts["skipped"] == 3  # refused mid-run: rows say so
    assert not report.ok and "failed" in report.problems()[0]

    (inbox / "jicoo" / "b.csv").write_text("no,columns\n1,2\n")  # not what the mapping reads: a whole-file problem
    report = asyncio.run(process_inbox(config))
    f = next(f for f in report.files if f.file == "jicoo/b.csv")
    assert f.state == "error" and "column" in f.message and (inbox / "jicoo" / "b.csv").exists()
    assert not report.ok


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_notify_gets_the_summary_by_command_or_webhook(jicoo_sim, jicoo_env, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    write_csv(inbox / "jicoo" / "a.csv", jicoo_rows("JN", 3, "09:00"))
    write_csv(inbox / "stray.csv", jicoo_rows("JS", 1, "10:00"))
    got = tmp_path / "got.json"
    config = InboxConfig(inbox=inbox, mappings=MAPPINGS, ledger_url=str(tmp_path / "l.sqlite"), settle_seconds=0,
                         day=DAY)
    report = asyncio.run(run_inbox(config, notify=f"cat > {got}"))
    summary = json.loads(got.read_text())
    assert summary["ok"] is False and summary["totals"]["created"] == 3
    assert {f["file"]: f["state"] for f in summary["files"]} == {"jicoo/a.csv": "imported", "stray.csv": "no_mapping"}
    assert summary == json.loads(json.dumps(report.to_dict()))

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks/T0K3N"
        monkeypatch.setenv("INBOX_WEBHOOK", url)
        assert send_notification("env:INBOX_WEBHOOK", report.to_dict()) is None
        path, ctype, body = _Hook.received[-1]
        assert path == "/hooks/T0K3N" and ctype == "application/json" and body["totals"]["created"] == 3
    finally:
        server.shutdown()
        server.server_close()
    problem = send_notification(f"http://127.0.0.1:{server.server_port}/hooks/T0K3N", {"x": 1}, timeout=2)
    assert problem and "could not be reached" in problem and "T0K3N" not in problem  # the token stays out of logs
    problem = send_notification("exit 3", {"x": 1})
    assert problem == "the notify command 'exit' exited with 3"
    report.notify_error = problem
    assert "notify: the notify command" in report.problems()[-1]


def _serve(env_extra: dict, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_HOME": str(tmp_path / "prefect-home"), **env_extra})
    (tmp_path / "inbox").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "flows", "serve", "--inbox", str(tmp_path / "inbox"),
                             "--mappings", str(MAPPINGS)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_serve_without_a_reachable_server_says_how_to_start_one(tmp_path):
    unset = _serve({}, tmp_path / "a")  # both at once: each starts Python and imports Prefect
    closed = _serve({"PREFECT_API_URL": "http://127.0.0.1:9/api"}, tmp_path / "b")
    for p, fragment in ((unset, "PREFECT_API_URL is not set"), (closed, "no Prefect server answers at")):
        _out, err = p.communicate(timeout=90)
        assert p.returncode == 2, err
        assert fragment in err and "prefect server start" in err
        assert "prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api" in err
        assert "Traceback" not in err
