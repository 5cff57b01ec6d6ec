"""Two runs at once (issue 11): two `run`s of one sheet against one ledger book every row exactly once.

Each run claims its rows in the ledger before sending them (flows/ledger/claims.py RowClaims); a row another
live run holds is not sent, and the run's workbook names that run. The runs here are real processes
(tests/two_runs_support.py) against a loopback Jicoo simulator. The contracts take a ledger URL, so
tests/test_ledger_postgres.py runs the same ones on PostgreSQL.

Slow on purpose: the two 1,000-row runs (together, and part way) take 5-15 s each on a busy machine
(two interpreters starting, 1,000 bookings); the rest take a second or two. Nothing here asserts a time.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions, send_pending
from flows.ledger.claims import Holder, RowClaims
from flows.ledger.ledger import SENDING, Ledger, open_ledger, payload_hash
from flows.outcomes import Status
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, ROOT, import_now, in_threads
from .test_inbox import jicoo_rows, write_csv

MAPPING = MAPPINGS / "jicoo.yaml"
ROWS = 1000
SCOPE = "jicoo"


def big_sheet(tmp_path: Path, n: int = ROWS, prefix: str = "TR") -> Path:
    return write_csv(tmp_path / f"{prefix.lower()}-{n}.csv", jicoo_rows(prefix, n, "10:00"))


def start_run(tmp_path: Path, name: str, sheet: Path, ledger_url: str, wait: list[Path]) -> subprocess.Popen:
    """`run` of ``sheet`` in its own process; it sends once every file in ``wait`` exists."""
    out, ready = tmp_path / f"{name}.results.xlsx", tmp_path / f"ready-{name}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # JICOO_* come from the jicoo_env fixture
    return subprocess.Popen([sys.executable, "-m", "tests.two_runs_support", str(sheet), str(MAPPING), ledger_url,
                             str(out), str(ready), *map(str, wait)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def wait_for(condition, what: str, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                raise AssertionError(f"a run died while waiting for {what}: {p.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def booked_once(sim, rows: int, *, asked_once: bool = True) -> None:
    """The simulator holds every row exactly once (``asked_once``: and was asked to book each exactly once)."""
    if asked_once:
        assert sim.requests["POST /v1/bookings"] == rows
    emails = Counter(b["email"] for b in sim.bookings)
    assert len(emails) == rows and set(emails.values()) == {1}


def by_ref(path: Path) -> dict[str, tuple[str, str]]:
    df, _ = read_results(path)
    return {str(ref): (status, str(msg) if isinstance(msg, str) else "")
            for ref, status, msg in zip(df["Booking Ref"], df["_status"], df["_message"], strict=True)}


def held_message(other: str) -> re.Pattern:
    return re.compile(rf"^not sent: in flight in run {re.escape(other)} \(started \S+ by [^/]+/\d+\); "
                      r"rerun after it ends$")


def two_runs_at_once_contract(ledger_url: str, sim, tmp_path: Path, *, staggered: bool = False) -> dict[str, dict]:
    """Two real runs of one 1,000-row sheet against one ledger, started together (``staggered``: the second
    once the first has booked a quarter): every row is booked once, both workbooks together account for
    every row, and each row a run did not send names the run that did (or holds it)."""
    sheet = big_sheet(tmp_path)
    ready_a, ready_b, go = tmp_path / "ready-a", tmp_path / "ready-b", tmp_path / "go"
    a = start_run(tmp_path, "a", sheet, ledger_url, [ready_a, ready_b])
    b = start_run(tmp_path, "b", sheet, ledger_url, [ready_a, ready_b, *([go] if staggered else [])])
    if staggered:
        wait_for(lambda: len(sim.bookings) >= ROWS // 4 or a.poll() is not None, "the first run to book a quarter",
                 [a, b])
        go.touch()
    res = {"a": finish(a), "b": finish(b)}
    print({n: (r["counts"]["created"], r["held"]) for n, r in res.items()})  # how the rows were shared (-s shows it)
    booked_once(sim, ROWS)
    books = {name: by_ref(tmp_path / f"{name}.results.xlsx") for name in res}
    for name, r in res.items():
        summary = read_results(tmp_path / f"{name}.results.xlsx")[1]
        assert summary.get("rows another run was sending (not sent)", "0") == str(r["held"])
    run_id = {name: r["run_id"] for name, r in res.items()}
    assert len(books["a"]) == len(books["b"]) == ROWS
    created = Counter()
    for ref in books["a"]:
        sent = [n for n in res if books[n][ref][0] == "created"]
        assert len(sent) == 1, (ref, books["a"][ref], books["b"][ref])  # booked by exactly one of them
        other = "b" if sent[0] == "a" else "a"
        created[sent[0]] += 1
        status, message = books[other][ref]
        assert status == "skipped", (ref, status, message)
        assert (message.startswith(f"already created by run {run_id[sent[0]]} ")
                or held_message(run_id[sent[0]]).match(message)), message
    assert created["a"] + created["b"] == ROWS
    for name, r in res.items():
        assert r["counts"]["created"] == created[name]
        assert r["held"] == sum(1 for s, m in books[name].values() if m.startswith("not sent: in flight"))
        assert r["ok"] is (r["held"] == 0)  # rows left to another run: exit 1, a rerun picks them up
    with open_ledger(ledger_url) as ledger:
        entries = ledger.all(SCOPE)
        assert len(entries) == ROWS and {e.status for e in entries} == {"created"}
        assert {e.run_id for e in entries} <= set(run_id.values())
        assert ledger.claimed() == {}  # both released their claims as they ended
    if staggered:
        assert sum(1 for s, m in books["b"].values() if m.startswith("already created")) >= ROWS // 4 - 50
    return res


def test_two_runs_started_together_book_every_row_once(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    jicoo_sim.faults = Faults(latency_ms=2)
    res = two_runs_at_once_contract(ledger_url, jicoo_sim, tmp_path)
    # the run that left rows to the other one is rerun from its workbook: those rows are found created, none sent
    holder = next((n for n, r in res.items() if r["held"]), None) or "b"
    from flows.engine.rerun import load_rerun

    again = load_rerun(tmp_path / f"{holder}.results.xlsx", ledger_url=ledger_url, out=tmp_path / "rerun.xlsx")
    run = ImportRun(again.plan, RunOptions(ledger_url=again.ledger_url, settled=again.settled, rate=None))
    try:
        asyncio.run(send_pending(run))
    finally:
        run.close()
    assert all(o.ok for o in run.outcomes) and run.counts()["skipped"] == ROWS - len(again.settled)
    assert jicoo_sim.requests["POST /v1/bookings"] == ROWS


def test_a_second_run_started_part_way_sends_nothing_the_first_holds(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    jicoo_sim.faults = Faults(latency_ms=5)
    two_runs_at_once_contract(ledger_url, jicoo_sim, tmp_path, staggered=True)


# --- a run that is gone: its claims are taken over, its `sending` rows checked before anything is resent ----


def lease_expiry_contract(ledger_url: str, sim, tmp_path: Path) -> None:
    """A run on another machine claimed 20 rows, booked row 0 (left ``sending``) and vanished. While its
    lease lasts (the other machine's pid cannot be checked here) a new run sends none of them and names it; once
    the lease ran out, the next run takes them over, finds row 0 at the provider (read-back) instead of resending
    it, and sends the rest."""
    sheet = big_sheet(tmp_path, 20, "LE")
    plan = prepare(sheet, MAPPING)
    keys = [r.ledger_key for r in plan.rows]
    with open_ledger(ledger_url) as ledger:
        gone = RowClaims(ledger, "run-elsewhere", lease_seconds=60)
        gone.host, gone.pid = "another-machine", 4242
        gone.start()
        assert gone.claim(SCOPE, keys).won == set(keys)
        first = plan.rows[0]
        ledger.mark_sending(SCOPE, first.ledger_key, "run-elsewhere", payload_hash(first.payload))
    import httpx

    booked = httpx.post(f"{sim.url}/v1/bookings", json=first.payload, headers={"X-Jicoo-Api-Key": "sk_test_sandbox"})
    assert booked.status_code == 201

    def one_run() -> ImportRun:
        run = import_now(sheet, MAPPING, ledger_url=ledger_url, rate=None)
        return run

    early = one_run()
    assert early.held_elsewhere == 20 and not any(o.ok for o in early.outcomes)
    for o in early.outcomes:
        assert o.status is Status.SKIPPED and o.needs_rerun
        assert held_message("run-elsewhere").match(o.message) and "another-machine/4242" in o.message
    assert sim.requests["POST /v1/bookings"] == 1
    from flows.terminal import summary_lines

    assert ("20 row(s) not sent: another run was sending them (see _message); rerun after it ends"
            in summary_lines(early))

    with open_ledger(ledger_url) as ledger:  # its last heartbeat, with a short lease that then runs out unrenewed
        gone.ledger, gone.lease_seconds = ledger, 0.2
        assert gone.renew()
    time.sleep(0.3)
    late = one_run()
    assert late.taken_over == 20 and late.held_elsewhere == 0
    assert all(o.ok for o in late.outcomes)
    assert late.outcomes[0].status is Status.SKIPPED and "found at the provider" in late.outcomes[0].message
    assert Counter(o.status for o in late.outcomes[1:]) == {Status.CREATED: 19}
    booked_once(sim, 20)
    with open_ledger(ledger_url) as ledger:
        assert ledger.claimed() == {} and {e.status for e in ledger.all(SCOPE)} == {"created"}
        gone.ledger = ledger
        assert not gone.renew()  # the vanished run, were it to wake up, learns its lease is gone


def test_a_run_whose_lease_ran_out_is_taken_over_and_checked_before_resending(jicoo_sim, jicoo_env, ledger_url,
                                                                               tmp_path):
    lease_expiry_contract(ledger_url, jicoo_sim, tmp_path)


def test_a_killed_run_on_this_machine_is_taken_over_at_once(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    """SIGKILL part way: the process is gone, so its claims are taken over without waiting for the lease;
    rows it left ``sending`` are checked with the provider; no row is booked twice."""
    jicoo_sim.faults = Faults(latency_ms=100)  # the 200 rows take the killed run 2.5 s: it is killed after 40
    sheet = big_sheet(tmp_path, 200, "KL")
    ready = tmp_path / "ready-k"
    proc = start_run(tmp_path, "k", sheet, ledger_url, [ready])
    wait_for(lambda: jicoo_sim.requests["POST /v1/bookings"] >= 40, "the run to send 40 rows", [proc])
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with open_ledger(ledger_url) as ledger:
        left = ledger.claimed(SCOPE)
        assert len(left) == 200  # the killed run's claims outlive it ...
        assert any(e.status == SENDING for e in ledger.all(SCOPE))
    jicoo_sim.faults = Faults()
    run = import_now(sheet, MAPPING, ledger_url=ledger_url, rate=None)
    assert run.taken_over > 0 and run.held_elsewhere == 0  # ... until a run on the same machine sees it is gone
    assert all(o.ok for o in run.outcomes), Counter(o.status for o in run.outcomes)
    # a request cut off by the kill before the simulator stored it was checked (absent) and sent again: never a
    # second booking, and at most the killed run's requests in flight (its concurrency, 8) asked twice
    booked_once(jicoo_sim, 200, asked_once=False)
    assert jicoo_sim.requests["POST /v1/bookings"] <= 200 + 8


# --- claims are released when a run ends, however it ends ----------------------------------------------


def test_claims_are_released_after_an_exception(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    sheet = big_sheet(tmp_path, 30, "EX")

    def explode(run):
        if run.done >= 5:
            raise RuntimeError("boom")

    run = ImportRun(prepare(sheet, MAPPING),
                    RunOptions(ledger_url=ledger_url, rate=None, concurrency=2, progress=explode))
    try:
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(send_pending(run))
        with open_ledger(ledger_url) as ledger:
            assert ledger.claimed() == {}  # released by the run's `async with`, before close()
            lease = ledger._db.execute("SELECT lease_until FROM run_leases WHERE run_id=?", (run.run_id,)).fetchone()
            assert lease == (None,)
    finally:
        run.close()
    again = import_now(sheet, MAPPING, ledger_url=ledger_url, rate=None)
    assert again.held_elsewhere == 0 and all(o.ok for o in again.outcomes)
    booked_once(jicoo_sim, 30)


async def cancel_part_way(run: ImportRun, done: int = 8) -> None:
    """Ctrl-C part way through a send: the send is cancelled once ``done`` rows are settled."""
    task = asyncio.create_task(send_pending(run))
    while run.done < done:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_claims_are_released_when_the_run_is_cancelled_and_its_rows_in_flight_are_checked_next_time(
        jicoo_sim, jicoo_env, ledger_url, tmp_path):
    """Ctrl-C (a cancelled send): claims released at once; rows cut off mid-request are checked, not resent blindly."""
    jicoo_sim.faults = Faults(latency_ms=30)
    sheet = big_sheet(tmp_path, 40, "CC")
    run = ImportRun(prepare(sheet, MAPPING), RunOptions(ledger_url=ledger_url, rate=None, concurrency=4))

    try:
        asyncio.run(cancel_part_way(run))
        assert run.interrupted
        with open_ledger(ledger_url) as ledger:
            assert ledger.claimed() == {}
    finally:
        run.close()
    jicoo_sim.faults = Faults()
    again = import_now(sheet, MAPPING, ledger_url=ledger_url, rate=None)
    assert again.held_elsewhere == 0 and all(o.ok for o in again.outcomes)
    booked_once(jicoo_sim, 40, asked_once=False)


def test_claims_taken_but_never_sent_are_released_by_close(jicoo_env, ledger_url, tmp_path):
    run = ImportRun(prepare(big_sheet(tmp_path, 10, "CL"), MAPPING), RunOptions(ledger_url=ledger_url))
    assert len(run.pending()) == 10
    with open_ledger(ledger_url) as ledger:
        assert set(ledger.claimed(SCOPE).values()) == {run.run_id}
    run.close()
    with open_ledger(ledger_url) as ledger:
        assert ledger.claimed() == {}


def test_a_run_that_lost_its_lease_sends_no_further_row(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    """A run stalled past its lease (its rows may have been taken over) stops sending: the rest is skipped."""
    run = ImportRun(prepare(big_sheet(tmp_path, 10, "LL"), MAPPING), RunOptions(ledger_url=ledger_url, rate=None))
    try:
        rows = run.pending()
        run._lost_lease()  # what the heartbeat does when its renewal finds the lease ran out
        asyncio.run(send_pending(run))
    finally:
        run.close()
    assert len(rows) == 10 and jicoo_sim.requests["POST /v1/bookings"] == 0
    assert all(o.status is Status.SKIPPED and o.needs_rerun and "claim" in o.message for o in run.outcomes)


def test_a_run_past_its_own_lease_sends_no_further_row_even_before_its_heartbeat_notices(jicoo_sim, jicoo_env,
                                                                                        ledger_url, tmp_path):
    run = ImportRun(prepare(big_sheet(tmp_path, 10, "LX"), MAPPING), RunOptions(ledger_url=ledger_url, rate=None))
    try:
        run.claims.clock = lambda: time.time() + 3600  # an hour without a renewal getting through
        asyncio.run(send_pending(run))
    finally:
        run.close()
    assert jicoo_sim.requests["POST /v1/bookings"] == 0
    assert all(o.status is Status.SKIPPED and o.needs_rerun for o in run.outcomes)


# --- the claims themselves ----------------------------------------------------------------------------


def row_claims_contract(ledger: Ledger) -> None:
    """Claim, hold, renew, release and take over, on any backend."""
    keys = [Ledger.key_text([f"R{i}"]) for i in range(1200)]  # more than one statement's batch
    a, b = RowClaims(ledger, "run-a", lease_seconds=30), RowClaims(ledger, "run-b", lease_seconds=30)
    a.start()
    b.start()
    got = a.claim(SCOPE, keys[:700])
    assert got.won == set(keys[:700]) and not got.held
    got = b.claim(SCOPE, keys)
    assert got.won == set(keys[700:]) and set(got.held) == set(keys[:700]) and not got.taken_over
    holder = got.held[keys[0]]
    assert (holder.run_id, holder.host, holder.pid) == ("run-a", a.host, a.pid)
    assert a.claim(SCOPE, keys[:10]).won == set(keys[:10])  # claiming again what it holds
    assert a.renew() and b.renew()
    assert a.release() == 700 and a.release() == 0
    assert not a.renew() or a.released  # released: nothing to renew
    got = b.claim(SCOPE, keys[:5])
    assert got.won == set(keys[:5])
    # a run that is gone (its lease ran out) is taken over; of two takers one wins each row
    c = RowClaims(ledger, "run-c", lease_seconds=30)
    c.start()
    ledger._db.execute("UPDATE run_leases SET lease_until=? WHERE run_id='run-b'", (time.time() - 1,))
    assert not b.renew()  # it learns it lost its rows
    d = RowClaims(ledger, "run-d", lease_seconds=30)
    d.start()
    got_c = c.claim(SCOPE, keys[:50])
    got_d = d.claim(SCOPE, keys[:50])
    assert got_c.won == set(keys[:50]) and set(got_c.taken_over) == set(keys[:5])
    assert not got_d.won and {h.run_id for h in got_d.held.values()} == {"run-c"}
    assert set(ledger.claimed(SCOPE).values()) == {"run-b", "run-c"}
    c.release(), d.release()
    assert set(ledger.claimed(SCOPE).values()) == {"run-b"}


def claim_race_contract(url: str, racers: int = 4, keys: int = 2000) -> None:
    """Several runs, each on its own connection, claim the same keys at once in batches of 100 taken in
    different orders: every key is won by exactly one of them, and each of the others names the winner."""
    import random
    import threading

    all_keys = [Ledger.key_text([f"K{i:05d}"]) for i in range(keys)]
    batches = [all_keys[i:i + 100] for i in range(0, keys, 100)]
    start = threading.Barrier(racers)
    won: dict[str, set[str]] = {}
    held: dict[str, dict[str, str]] = {}

    def race(n: int) -> None:
        with open_ledger(url) as ledger:
            claims = RowClaims(ledger, f"run-{n}", lease_seconds=60)
            claims.start()
            order = batches[:]
            random.Random(n).shuffle(order)
            start.wait()
            mine, theirs = set(), {}
            for batch in order:
                got = claims.claim(SCOPE, batch)
                mine |= got.won
                theirs.update({k: h.run_id for k, h in got.held.items()})
            won[claims.run_id], held[claims.run_id] = mine, theirs

    in_threads(race, [(n,) for n in range(racers)])
    owner: dict[str, str] = {}
    for run_id, keys_won in won.items():
        for k in keys_won:
            assert k not in owner, f"{k} won by {owner.get(k)} and {run_id}"
            owner[k] = run_id
    assert set(owner) == set(all_keys)
    for run_id, theirs in held.items():
        assert set(theirs) == set(all_keys) - won[run_id]
        assert all(owner[k] == holder for k, holder in theirs.items())


def test_racing_runs_each_win_a_disjoint_share_of_the_rows(tmp_path):
    claim_race_contract(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def test_row_claims(tmp_path):
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        row_claims_contract(ledger)


def test_a_held_row_names_its_run_host_and_process():
    text = Holder("20261201-120000-abcdef", "box-1", 4242, "2026-12-01T12:00:00.000+00:00", 0.0).describe()
    assert re.fullmatch(r"in flight in run 20261201-120000-abcdef \(started 2026-12-01T\d\d:\d\d:00[+-]\d\d:\d\d by "
                        r"box-1/4242\); rerun after it ends", text)


def test_a_dead_pid_counts_only_on_this_machine_and_in_this_pid_namespace(tmp_path):
    """Same host name but another boot or container (pid namespace): its pid means another process, so only the
    lease can say the run is gone."""
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        me = RowClaims(ledger, "run-me")
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        pid = int(dead.stdout)  # a process that has exited
        later = time.time() + 60
        assert me.is_stale(Holder("run-x", me.host, pid, None, later, me.machine))
        assert not me.is_stale(Holder("run-x", me.host, pid, None, later, "another-boot/4026531836"))
        assert not me.is_stale(Holder("run-x", "another-host", pid, None, later, me.machine))
        assert not me.is_stale(Holder("run-x", me.host, me.pid, None, later, me.machine))  # this process: a live thread
        assert me.is_stale(Holder("run-x", "another-host", pid, None, time.time() - 1, "x"))  # its lease ran out
        assert me.is_stale(Holder("run-x", "another-host", pid, None, None, "x"))  # it ended
