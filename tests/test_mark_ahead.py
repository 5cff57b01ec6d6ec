"""The ledger's "sending" marks written ahead in batches (flows/engine/sendqueue.py): still committed before
each row's request leaves, taken back when a row is not sent after all, and after a killed run the rows
marked but never sent are checked with the provider, not resent blindly. tests/test_ledger_postgres.py runs
the contracts here on PostgreSQL."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions
from flows.engine.sendqueue import SendQueue, mark_window
from flows.ledger.group_commit import GroupCommit
from flows.ledger.ledger import SENDING, Ledger, open_ledger, payload_hash, same_payload
from flows.outcomes import Outcome, Status
from flows.sandbox import Faults, JicooSimulator
from flows.sandbox.demo import sandbox_env

from .conftest import ROOT, import_now, mapping_variant, served
from .test_two_runs import MAPPING, SCOPE, big_sheet, booked_once, cancel_part_way


class WatchingJicoo(JicooSimulator):
    """A Jicoo simulator that, as each booking arrives, reads the row's record in the ledger through a
    connection of its own: what another process would see at that moment."""

    def __init__(self, ledger_url: str, keys: dict[str, str], **kw: Any) -> None:
        super().__init__(**kw)
        self.ledger_url = ledger_url
        self.keys = keys  # e-mail -> ledger key
        self.seen: list[tuple[str | None, str | None]] = []  # (status, run id) as each booking arrived
        self._ledger: Ledger | None = None

    async def _create_booking(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self._ledger is None:
            self._ledger = open_ledger(self.ledger_url)
        entry = self._ledger.get(SCOPE, self.keys[body["email"]])
        self.seen.append((entry.status, entry.run_id) if entry is not None else (None, None))
        return await super()._create_booking(request)

    def close_ledger(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


def committed_before_sent_contract(ledger_url: str, tmp_path: Path, rows: int = 60) -> None:
    """Every request finds its row marked "sending" by its run in the ledger, committed; fewer transactions
    than rows; every row booked once."""
    plan = prepare(big_sheet(tmp_path, rows, "MA"), MAPPING)
    keys = {r.body["email"]: r.ledger_key for r in plan.rows}
    with served(WatchingJicoo(ledger_url, keys)) as sim:
        try:
            run = import_now(plan, ledger_url=ledger_url, rate=None, concurrency=4, env=sandbox_env("jicoo", sim.url))
        finally:
            sim.close_ledger()
        assert sim.seen == [(SENDING, run.run_id)] * rows
        booked_once(sim, rows)
    assert all(o.status is Status.CREATED for o in run.outcomes)
    with open_ledger(ledger_url) as ledger:
        assert {e.status for e in ledger.all(SCOPE)} == {"created"}


def test_every_request_leaves_after_its_rows_mark_is_committed(ledger_url, tmp_path):
    committed_before_sent_contract(ledger_url, tmp_path)


def mark_many_and_unmark_contract(ledger: Ledger) -> None:
    """Marks written together in one transaction; a mark taken back leaves the row as it was before: no record
    for a new row, the earlier record (status, run, hash, time) for one that had one."""
    new, old, sent = (Ledger.key_text([k]) for k in ("N1", "O1", "S1"))
    ledger.record(SCOPE, old, Outcome(Status.FAILED, "503 earlier", attempts=3), "run-0", "h-old")
    before = ledger.get(SCOPE, old)
    group = GroupCommit(ledger)

    async def main() -> None:
        committed = group.mark_many([(SCOPE, k, "run-1", f"h-{k}") for k in (new, old, sent)])
        await committed
        assert group.transactions == 1
        assert {ledger.get(SCOPE, k).status for k in (new, old, sent)} == {SENDING}
        group.unmark_soon(SCOPE, new, "run-1", None)
        group.unmark_soon(SCOPE, old, "run-1", before)
        group.record_soon(SCOPE, sent, Outcome(Status.CREATED, provider_id="bk_1", attempts=1), "run-1", "h-s")
        await group.confirm()

    asyncio.run(main())
    assert ledger.get(SCOPE, new) is None
    assert ledger.get(SCOPE, old) == before
    assert ledger.get(SCOPE, sent).status == "created"
    # a mark of another run (it took the row over meanwhile) is never taken back
    ledger.mark_sending(SCOPE, new, "run-2", "h")
    ledger.write_many([Ledger._unmark_sql(SCOPE, new, "run-1", None)])
    assert ledger.get(SCOPE, new).run_id == "run-2"


def test_marks_written_together_and_taken_back(ledger):
    mark_many_and_unmark_contract(ledger)


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(str(tmp_path / "unit.sqlite")) as led:
        yield led


def test_settled_records_wait_for_the_next_marks_or_a_moment(ledger):
    """A record opens no transaction of its own: it rides with the next marks, or goes after record_delay."""
    group = GroupCommit(ledger, record_delay=0.01)
    k1, k2 = Ledger.key_text(["R1"]), Ledger.key_text(["R2"])

    async def main() -> None:
        group.record_soon(SCOPE, k1, Outcome(Status.CREATED, provider_id="a", attempts=1), "run-1")
        await group.mark_many([(SCOPE, k2, "run-1", "h")])  # carries the record
        assert group.transactions == 1 and ledger.get(SCOPE, k1).status == "created"
        group.record_soon(SCOPE, k2, Outcome(Status.CREATED, provider_id="b", attempts=1), "run-1")
        while ledger.get(SCOPE, k2).status != "created":  # no marks follow: written a moment later anyway
            await asyncio.sleep(0.005)
        assert group.transactions == 2

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_queue_marks_a_window_ahead_in_one_transaction_and_only_rows_that_need_no_check(ledger, tmp_path):
    plan = prepare(big_sheet(tmp_path, 40, "SQ"), MAPPING)
    rows = plan.rows
    skip = {rows[1].index}  # e.g. a row an earlier run left "sending": checked first, marked on its own
    group, marked = GroupCommit(ledger), {}
    queue = SendQueue(rows, group, marked, scope=SCOPE, run_id="run-1", window=10,
                      before=lambda r, key: (r.index not in skip, None))

    async def main() -> list:
        got = []
        while (item := queue.pop()) is not None:
            row, premark = item
            if premark is not None:
                await premark.committed
                assert ledger.get(SCOPE, row.ledger_key).status == SENDING
                assert premark.phash == payload_hash(row.body)
            got.append((row.index, premark is not None))
        return got

    got = asyncio.run(main())
    assert [i for i, _ in got] == [r.index for r in rows]
    assert [i for i, pre in got if not pre] == sorted(skip)
    assert not marked and ledger.get(SCOPE, rows[1].ledger_key) is None
    assert group.transactions < len(rows) // 4  # ~window / 2 rows a transaction


def test_the_window(monkeypatch):
    assert mark_window(8, None) == 32 and mark_window(64, None) == 128
    assert mark_window(8, 10.0) == 3 and mark_window(8, 1.0) == 1  # a published rate: a quarter second of it


def test_rows_not_sent_after_all_are_not_left_sending(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    """Ctrl-C part way: only the rows whose requests may have left stay "sending" (they are unknown); the rows
    marked ahead and never sent are taken back; the next run books every row once."""
    jicoo_sim.faults = Faults(latency_ms=30)
    sheet = big_sheet(tmp_path, 60, "UM")
    run = ImportRun(prepare(sheet, MAPPING), RunOptions(ledger_url=ledger_url, rate=None, concurrency=4))

    try:
        asyncio.run(cancel_part_way(run))
    finally:
        run.close()
    keys = {r.index: r.ledger_key for r in run.plan.rows}
    unknown = {keys[i] for i, o in enumerate(run.outcomes) if o is not None and o.status is Status.UNKNOWN}
    not_sent = {keys[i] for i, o in enumerate(run.outcomes) if o is not None and o.status is Status.SKIPPED}
    with open_ledger(ledger_url) as ledger:
        entries = {e.key: e.status for e in ledger.all(SCOPE)}
    assert not_sent and {k for k, s in entries.items() if s == SENDING} == unknown
    assert not (not_sent & set(entries))
    jicoo_sim.faults = Faults()
    again = import_now(sheet, MAPPING, ledger_url=ledger_url, rate=None)
    assert all(o.ok for o in again.outcomes)
    booked_once(jicoo_sim, 60, asked_once=False)


KILLED_AFTER_MARKING = textwrap.dedent("""
    import asyncio, os, sys
    from flows.engine.plan import prepare
    from flows.engine.run import ImportRun, RunOptions
    from flows.engine.sendqueue import SendQueue
    sheet, mapping, ledger = sys.argv[1:4]
    run = ImportRun(prepare(sheet, mapping), RunOptions(ledger_url=ledger, rate=None, concurrency=2))
    rows = run.pending()

    async def main():
        queue = SendQueue(rows, run._writer, run._premarked, scope=run.plan.mapping.scope, run_id=run.run_id,
                          window=8, before=run._markable)
        row, premark = queue.pop()
        await premark.committed  # the first marks are committed: the process dies before any request leaves
        os._exit(9)

    asyncio.run(main())
""")


@pytest.mark.parametrize("readback", [True, False])
def test_a_run_killed_after_marking_ahead_leaves_those_rows_checked_not_resent(jicoo_sim, jicoo_env, ledger_url,
                                                                               tmp_path, readback):
    """A crash between the marks and the requests: the rows marked are "sending" to the next run, which checks
    them with the provider before sending (the mapping's readback) or, with no way to check, leaves them
    unknown; nothing is booked twice."""
    sheet = big_sheet(tmp_path, 20, "KM")
    mapping = MAPPING if readback else mapping_variant(tmp_path, request__readback=None)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", KILLED_AFTER_MARKING, str(sheet), str(mapping), ledger_url],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    with open_ledger(ledger_url) as ledger:
        marked = {e.key for e in ledger.all(SCOPE) if e.status == SENDING}
    assert len(marked) == 8 and jicoo_sim.requests["POST /v1/bookings"] == 0
    again = import_now(sheet, mapping, ledger_url=ledger_url, rate=None)
    keys = {r.index: r.ledger_key for r in again.plan.rows}
    by_key = {keys[i]: o for i, o in enumerate(again.outcomes) if o is not None}
    if readback:
        assert all(o.status is Status.CREATED for o in again.outcomes)
        assert jicoo_sim.requests["GET /v1/bookings"] >= 1  # the marked rows were looked for first
        booked_once(jicoo_sim, 20)
    else:
        assert {k for k, o in by_key.items() if o.status is Status.UNKNOWN} == marked
        assert all(o.status is Status.CREATED for k, o in by_key.items() if k not in marked)
        assert jicoo_sim.requests["POST /v1/bookings"] == 20 - len(marked)


def test_payload_hashes_of_either_version_compare():
    """The hashes written before "v2:" (the standard encoder) still say whether a row's values changed."""
    import hashlib
    import json

    payload = {"name": "Zoë", "email": "z@example.org", "n": 3, "tags": ["a", "b"], "none": None}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    legacy = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert same_payload(legacy, payload) and same_payload(payload_hash(payload), payload)
    assert payload_hash(payload).startswith("v2:") and payload_hash(payload) == payload_hash(dict(reversed(
        payload.items())))
    changed = {**payload, "name": "Zoe"}
    assert not same_payload(legacy, changed) and not same_payload(payload_hash(payload), changed)
    assert payload_hash({"big": 2**70}).startswith("v2:")  # beyond orjson: the standard encoder's text


class RecordingJicoo(JicooSimulator):
    """A Jicoo simulator that keeps each booking request's JSON body as it arrived."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.bodies: list[dict[str, Any]] = []

    async def _create_booking(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return await super()._create_booking(request)


def test_the_payload_hashed_is_the_one_sent_even_after_an_edit(ledger_url, tmp_path):
    """The queue builds each row's payload once, hashes it and hands that same dict to the request: a payload
    changed in the plan before the run (read, then edited) is what is hashed and what the provider gets."""
    plan = prepare(big_sheet(tmp_path, 40, "PH"), MAPPING)
    edited = plan.rows[7].payload
    assert edited is not None
    edited["name"] = "Edited Before Sending"
    with served(RecordingJicoo()) as sim:
        run = import_now(plan, ledger_url=ledger_url, rate=None, concurrency=4, env=sandbox_env("jicoo", sim.url))
        booked_once(sim, 40)
    assert all(o.status is Status.CREATED for o in run.outcomes)
    sent = {b["email"]: b for b in sim.bodies}
    assert sent[edited["email"]]["name"] == "Edited Before Sending"
    with open_ledger(ledger_url) as ledger:
        for r in plan.rows:  # each row's fingerprint is that of the very body the provider got
            entry = ledger.get(SCOPE, r.ledger_key)
            assert entry is not None and same_payload(entry.payload_hash, sent[r.body["email"]]), r.line


def test_each_rows_key_is_worked_out_once_for_the_ledger_and_once_for_the_queue(jicoo_sim, jicoo_env, ledger_url,
                                                                                 tmp_path, monkeypatch):
    """A row's ledger key is text made from its key cells (about 1 µs); at 0 ms latency making it ten times a row,
    as the run once did, was 4 % of the send. pending() makes it once for the ledger and claims, the queue once
    for the mark and the worker."""
    plan = prepare(big_sheet(tmp_path, 50, "KO"), MAPPING)
    made = 0
    key_text = Ledger.key_text

    def counting(key):
        nonlocal made
        made += 1
        return key_text(key)

    monkeypatch.setattr(Ledger, "key_text", staticmethod(counting))
    run = import_now(plan, ledger_url=ledger_url, rate=None, concurrency=4)
    assert all(o.status is Status.CREATED for o in run.outcomes)
    assert made <= 2 * 50, made
