"""The ledger: each row's state survives the process, and bad ledgers fail with a readable error."""
from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing

import pytest

from flows.errors import LedgerError
from flows.ledger.database import default_ledger_url
from flows.ledger.group_commit import GroupCommit
from flows.ledger.ledger import SENDING, Ledger, open_ledger, payload_hash
from flows.outcomes import Outcome, Status

SCOPE = "jicoo"
K1 = Ledger.key_text(["B1"])
K2 = Ledger.key_text(["B2"])


@pytest.fixture
def ledger(tmp_path):
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as led:
        yield led


def mark_then_record_contract(ledger: Ledger) -> None:
    """A row marked "sending", then settled, on any backend (tests/test_ledger_postgres.py runs it on PostgreSQL)."""
    phash = payload_hash({"name": "Ann"})
    ledger.mark_sending(SCOPE, K1, "run-1", phash)
    entry = ledger.get(SCOPE, K1)
    assert (entry.status, entry.run_id, entry.payload_hash, entry.attempts) == (SENDING, "run-1", phash, 0)
    assert entry.provider_id is None

    ledger.record(SCOPE, K1, Outcome(Status.CREATED, provider_id="bk_1", http_status=201, attempts=2), "run-1", phash)
    entry = ledger.get(SCOPE, K1)
    assert (entry.status, entry.provider_id, entry.http_status, entry.attempts) == ("created", "bk_1", 201, 2)
    assert entry.payload_hash == phash and entry.scope == SCOPE and entry.key == K1
    assert entry.updated_at.endswith("+00:00")


def test_mark_sending_then_record(ledger):
    mark_then_record_contract(ledger)


def test_get_many_and_scopes(ledger):
    ledger.record(SCOPE, K1, Outcome(Status.CREATED, provider_id="a"), "run-1")
    ledger.record(SCOPE, K2, Outcome(Status.REJECTED, "slot no longer available", http_status=409), "run-1")
    ledger.record("bigchange", K1, Outcome(Status.CREATED, provider_id="other"), "run-1")
    found = ledger.get_many(SCOPE, [K1, K2, Ledger.key_text(["B3"])])
    assert set(found) == {K1, K2}
    assert found[K1].provider_id == "a"
    assert (found[K2].status, found[K2].message) == ("rejected", "slot no longer available")
    assert ledger.get_many(SCOPE, []) == {}
    assert [e.key for e in ledger.all(SCOPE)] == [K1, K2]
    assert len(ledger.all()) == 3


def test_get_many_with_more_keys_than_sqlite_allows_in_one_query(ledger):
    keys = [Ledger.key_text([f"B{i}"]) for i in range(1_200)]
    for k in keys[::100]:
        ledger.record(SCOPE, k, Outcome(Status.CREATED), "run-1")
    assert set(ledger.get_many(SCOPE, keys)) == set(keys[::100])


def test_attempts_accumulate_and_provider_id_is_kept(ledger):
    ledger.mark_sending(SCOPE, K1, "run-1", "h")
    ledger.record(SCOPE, K1, Outcome(Status.UNKNOWN, "no answer", attempts=1), "run-1")
    ledger.record(SCOPE, K1, Outcome(Status.CREATED, provider_id="bk_9", attempts=2), "run-2")
    ledger.mark_sending(SCOPE, K1, "run-3", "h")
    ledger.record(SCOPE, K1, Outcome(Status.FAILED, "gave up", attempts=3), "run-3")
    entry = ledger.get(SCOPE, K1)
    assert entry.attempts == 6
    assert entry.provider_id == "bk_9"  # a later record without an id keeps the known one
    assert (entry.status, entry.run_id, entry.payload_hash) == ("failed", "run-3", "h")


@pytest.mark.parametrize("status", [Status.INVALID, Status.SKIPPED])
def test_invalid_and_skipped_rows_are_not_recorded(ledger, status):
    ledger.record(SCOPE, K1, Outcome(status, "not sent"), "run-1")
    assert ledger.get(SCOPE, K1) is None
    ledger.record(SCOPE, K2, Outcome(Status.CREATED, provider_id="x"), "run-1")
    ledger.record(SCOPE, K2, Outcome(status, "already created"), "run-2")
    assert ledger.get(SCOPE, K2).status == "created"  # an earlier state is left as it was


def test_long_messages_are_cut(ledger):
    ledger.record(SCOPE, K1, Outcome(Status.REJECTED, "x" * 5000), "run-1")
    assert len(ledger.get(SCOPE, K1).message) == 2000


def test_another_process_sees_committed_rows(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as first:
        first.mark_sending(SCOPE, K1, "run-1", "h")
        # a second connection, as a second process would open it, while the first is still open
        with Ledger(path) as second:
            assert second.get(SCOPE, K1).status == SENDING
            assert second.ledger_id == first.ledger_id
        first.record(SCOPE, K1, Outcome(Status.CREATED, provider_id="bk_1", attempts=1), "run-1")
        with Ledger(path) as third:
            assert third.get(SCOPE, K1).provider_id == "bk_1"


def test_a_killed_writer_loses_nothing_it_committed(tmp_path):
    path = tmp_path / "ledger.sqlite"
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from flows.ledger.ledger import Ledger
        from flows.outcomes import Outcome, Status
        led = Ledger(Path({str(path)!r}))
        led.mark_sending("jicoo", '["B1"]', "run-1", "h")
        led.record("jicoo", '["B1"]', Outcome(Status.CREATED, provider_id="bk_1", attempts=1), "run-1")
        led.mark_sending("jicoo", '["B2"]', "run-1", "h")
        os._exit(9)  # no close, no clean shutdown
    """)
    subprocess.run([sys.executable, "-c", script], check=False, timeout=60)
    with Ledger(path) as led:
        assert led.get(SCOPE, K1).provider_id == "bk_1"
        assert led.get(SCOPE, K2).status == SENDING


def test_wal_mode_is_on(ledger):
    with closing(sqlite3.connect(ledger.path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_ledger_id_is_stable(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as led:
        first = led.ledger_id
    with Ledger(path) as led:
        assert led.ledger_id == first
    assert len(first) == 16 and int(first, 16) >= 0
    with Ledger(tmp_path / "other.sqlite") as other:
        assert other.ledger_id != first


def test_runs_are_recorded(ledger):
    ledger.start_run("run-1", input="bookings.xlsx", mapping="mappings/jicoo.yaml", provider="jicoo")
    ledger.end_run("run-1", results="out/r.xlsx", counts={"created": 3})
    row = ledger._db.execute("SELECT input, provider, results, counts, ended_at FROM runs").fetchone()
    assert row[:4] == ("bookings.xlsx", "jicoo", "out/r.xlsx", '{"created": 3}') and row[4]


@pytest.mark.parametrize(("url", "where"), [
    ("sqlite:///{tmp}/a/b/ledger.sqlite", "a/b/ledger.sqlite"),  # folders are created
    ("{tmp}/plain.sqlite", "plain.sqlite"),
])
def test_ledger_urls(tmp_path, url, where):
    with open_ledger(url.format(tmp=tmp_path)) as led:
        assert led.path == tmp_path / where
        assert led.path.exists()


def test_default_ledger_url(monkeypatch, tmp_path):
    monkeypatch.delenv("BOOKING_IMPORTER_LEDGER", raising=False)
    assert default_ledger_url() == "sqlite:///booking-ledger.sqlite"
    monkeypatch.setenv("BOOKING_IMPORTER_LEDGER", f"sqlite:///{tmp_path / 'env.sqlite'}")
    with open_ledger() as led:
        assert led.path == tmp_path / "env.sqlite"


@pytest.mark.parametrize(("url", "fragment"), [
    ("mysql://db/ledger", "ledger URL 'mysql://db/ledger' is not supported; use sqlite:///"),
    ("sqlite://relative.db", "is not supported"),
])
def test_bad_url(url, fragment):
    with pytest.raises(LedgerError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        open_ledger(url)


def test_corrupt_file(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database, just some bytes\n" * 200)
    with pytest.raises(LedgerError) as info:
        Ledger(path)
    assert f"cannot use the ledger at {path}: file is not a database" in str(info.value)
    assert "remove the damaged file" in str(info.value)


def test_folder_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LedgerError, match="cannot create the ledger's folder"):
        Ledger(tmp_path / "afile" / "sub" / "ledger.sqlite")


def test_a_folder_is_not_a_ledger(tmp_path):
    with pytest.raises(LedgerError, match="cannot use the ledger"):
        Ledger(tmp_path)


def test_payload_hash_ignores_key_order_and_keeps_values_private():
    a = payload_hash({"name": "Ann", "email": "ann@example.com"})
    assert a == payload_hash({"email": "ann@example.com", "name": "Ann"})
    assert a != payload_hash({"email": "ann@example.com", "name": "Anne"})
    assert a.startswith("v2:") and len(a) == 3 + 64 and "Ann" not in a  # "v2:" + SHA-256 hex


def test_key_text_is_json():
    assert Ledger.key_text(("Leeds", "B1")) == '["Leeds", "B1"]'
    assert Ledger.key_text(["東京"]) == '["東京"]'


# --- callbacks find their row by provider id -----------------------------------------------------------

def callback_lookup_contract(ledger: Ledger) -> None:
    """How a callback finds its row, on any backend (tests/test_ledger_postgres.py runs it on PostgreSQL):
    by the provider id of an accepted row; a second callback for the same id (a provider resending it)
    by the first one's row; a row that was never accepted is not found by its id."""
    bridge, k1, k2 = "bridge", Ledger.key_text(["po", "PO-1"]), Ledger.key_text(["po", "PO-2"])
    ledger.record(bridge, k1, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
    ledger.record(bridge, k2, Outcome(Status.CREATED, provider_id="HASH2"), "r1")  # e.g. a synchronous answer
    assert ledger.record_callback(run_id="r1", scope=bridge, provider_id="HASH1", status="created", message="done",
                                  body="{}") == k1
    assert ledger.get(bridge, k1).status == "created"
    # sent again by the provider, saying something else: linked to the same row, which stays as the first settled it
    assert ledger.record_callback(run_id="r1", scope=bridge, provider_id="HASH1", status="rejected", message="again",
                                  body="{}") == k1
    assert (ledger.get(bridge, k1).status, ledger.get(bridge, k1).message) == ("created", "done")
    assert ledger.record_callback(run_id="r1", scope=bridge, provider_id="HASH2", status="rejected", message="no",
                                  body="{}") is None
    assert ledger.get(bridge, k2).status == "created"
    assert ledger.record_callback(run_id="r1", scope="elsewhere", provider_id="HASH1", status="created", message="",
                                  body="{}") is None
    assert [c["row_key"] for c in ledger.callbacks(bridge)] == [k1, k1, None]


def test_a_callback_finds_its_row_by_the_provider_id(ledger):
    callback_lookup_contract(ledger)


def test_only_accepted_rows_are_indexed_by_provider_id(tmp_path):
    """Rows that no callback will look up (every created Jicoo booking) do not pay for an index on each write;
    a ledger written before keeps working and loses its old index."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger._db.execute("CREATE INDEX rows_by_provider_id ON rows (scope, provider_id)")  # as ledgers had it
        ledger.record(SCOPE, K1, Outcome(Status.CREATED, provider_id="uid-1"), "r1")
        ledger.record("bridge", K2, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
    with Ledger(path) as ledger:
        indexes = {r[0]: r[1] for r in ledger._db.execute("SELECT name, sql FROM sqlite_master WHERE type='index'")}
        assert "rows_by_provider_id" not in indexes
        assert "WHERE status = 'accepted'" in indexes["accepted_rows_by_provider_id"]
        assert ledger._db.execute("SELECT count(*) FROM rows INDEXED BY accepted_rows_by_provider_id "
                                  "WHERE status='accepted'").fetchone()[0] == 1
        assert ledger.record_callback(run_id="r1", scope="bridge", provider_id="HASH1", status="created",
                                      message="", body="{}") == K2


# --- grouped writes while a run sends (GroupCommit) ---------------------------------------------------

def group_commit_contract(ledger: Ledger) -> None:
    """What GroupCommit promises on any backend (tests/test_ledger_postgres.py runs it on PostgreSQL)."""
    group = GroupCommit(ledger)

    async def main() -> None:
        async def one(i: int) -> None:
            key = Ledger.key_text([f"G{i}"])
            await group.mark_sending(SCOPE, key, "run-g", "h")
            assert ledger.get(SCOPE, key).status == SENDING  # committed before the "request" leaves
            await asyncio.sleep(0)
            settled = Outcome(Status.CREATED, provider_id=f"p{i}", attempts=1)
            if i % 2:
                await group.record(SCOPE, key, settled, "run-g")  # waits for its commit
            else:
                group.record_soon(SCOPE, key, settled, "run-g")  # committed by the batch, or by confirm()
        await asyncio.gather(*(one(i) for i in range(50)))
        await group.confirm()

    asyncio.run(main())
    entries = ledger.all(SCOPE)
    assert len(entries) == 50 and {e.status for e in entries} == {"created"}
    assert {e.provider_id for e in entries} == {f"p{i}" for i in range(50)}
    assert group.transactions <= 3  # the 50 marks together, then the 50 records
    assert len({e.updated_at for e in entries}) == 1  # a batch has one timestamp


def test_group_commit_commits_each_mark_before_its_caller_goes_on(ledger):
    group_commit_contract(ledger)


def test_a_batch_stays_open_for_a_few_turns_of_the_event_loop(ledger):
    group = GroupCommit(ledger)
    keys = [Ledger.key_text([f"T{i}"]) for i in range(group.turns)]

    async def main() -> None:
        batches = []
        for i, key in enumerate(keys):  # one mark on each turn: all in the first one's batch
            if i:
                await asyncio.sleep(0)
            batches.append(group.mark_sending(SCOPE, key, "run-1", "h"))
        assert all(b is batches[0] for b in batches) and not batches[0].done()
        await batches[0]
        later = group.mark_sending(SCOPE, Ledger.key_text(["later"]), "run-1", "h")
        assert later is not batches[0]
        await later

    asyncio.run(main())
    assert group.turns > 1 and group.transactions == 2
    assert {ledger.get(SCOPE, k).status for k in keys} == {SENDING}


def test_queued_records_are_written_when_the_run_closes(ledger):
    group = GroupCommit(ledger)

    async def main() -> None:
        group.record_soon(SCOPE, K1, Outcome(Status.CREATED, provider_id="bk_1", attempts=1), "run-1", "h")
        group.record_soon(SCOPE, K2, Outcome(Status.INVALID, "bad"), "run-1")  # never recorded
        assert ledger.get(SCOPE, K1) is None  # queued, not yet written
        group.flush_now()  # as ImportRun.close() does after an interrupted run

    asyncio.run(main())
    assert ledger.get(SCOPE, K1).provider_id == "bk_1" and ledger.get(SCOPE, K2) is None


def test_a_failed_batch_reaches_every_waiter_and_confirm(ledger, monkeypatch):
    group = GroupCommit(ledger)

    def broken(statements):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ledger, "write_many", broken)

    async def main() -> list:
        waits = [group.mark_sending(SCOPE, Ledger.key_text([f"F{i}"]), "run-1", "h") for i in range(3)]
        results = await asyncio.gather(*waits, return_exceptions=True)
        with pytest.raises(sqlite3.OperationalError):
            await group.confirm()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)


def test_write_many_keeps_the_order_of_mixed_statements(ledger):
    created = Outcome(Status.CREATED, provider_id="bk_1", attempts=1)
    ledger.write_many([Ledger._sending_sql(SCOPE, K1, "run-1", "h"), Ledger._sending_sql(SCOPE, K2, "run-1", "h"),
                       Ledger._record_sql(SCOPE, K1, created, "run-1", "h"),
                       Ledger._sending_sql(SCOPE, K1, "run-2", "h2")])
    one, two = ledger.get(SCOPE, K1), ledger.get(SCOPE, K2)
    assert (one.status, one.run_id, one.provider_id, one.payload_hash) == (SENDING, "run-2", "bk_1", "h2")
    assert two.status == SENDING


@pytest.mark.parametrize("order, final", [("record, then mark", SENDING), ("mark, then record", "created")])
def test_a_row_with_a_record_and_a_mark_in_one_batch_keeps_their_order(ledger, order, final):
    group = GroupCommit(ledger)
    created = Outcome(Status.CREATED, provider_id="bk_1", attempts=1)

    async def main() -> None:
        group.record_soon(SCOPE, K2, created, "run-1", "h")  # another row's record: grouped with its kind
        if order == "record, then mark":
            group.record_soon(SCOPE, K1, created, "run-1", "h")
            waiting = group.mark_sending(SCOPE, K1, "run-2", "h2")
        else:
            waiting = group.mark_sending(SCOPE, K1, "run-1", "h")
            group.record_soon(SCOPE, K1, created, "run-1", "h")
        await waiting

    asyncio.run(main())
    assert ledger.get(SCOPE, K1).status == final and ledger.get(SCOPE, K2).status == "created"
