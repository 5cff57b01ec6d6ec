"""The ledger and the inbox claims on PostgreSQL (``postgresql://`` ledger URL): the same contract as on
SQLite, for workers on several machines. Runs against a real, throwaway server (tests/pg_support.py);
skipped, with the reason, where PostgreSQL is not installed."""
from __future__ import annotations

import json
import multiprocessing
import threading
import time
from collections import Counter

import pytest

from flows.errors import LedgerError
from flows.ledger.callback_records import CallbackToken
from flows.ledger.claims import FileClaims
from flows.ledger.ledger import SENDING, Ledger, open_ledger
from flows.outcomes import Outcome, Status
from flows.sandbox import Faults

from .conftest import in_threads
from .pg_support import pg_server, pg_url, race_for_claim  # noqa: F401 - fixtures
from .test_inbox import stale_claim_contract, two_workers_contract
from .test_ledger import callback_lookup_contract, group_commit_contract, mark_then_record_contract
from .test_mark_ahead import committed_before_sent_contract, mark_many_and_unmark_contract
from .test_two_runs import claim_race_contract, lease_expiry_contract, row_claims_contract, two_runs_at_once_contract

SCOPE = "jicoo"
K1 = Ledger.key_text(["B1"])
K2 = Ledger.key_text(["B2"])


@pytest.fixture
def ledger(pg_url):
    with open_ledger(pg_url) as led:
        yield led


def test_it_is_really_postgres(ledger):
    assert ledger._db.postgres
    assert ledger._db.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL")


def test_mark_sending_then_record(ledger):
    mark_then_record_contract(ledger)


def test_get_many_all_and_scopes(ledger):
    keys = [Ledger.key_text([f"B{i}"]) for i in range(1200)]  # more than one query's chunk
    ledger.write_many([Ledger._sending_sql(SCOPE, k, "run-1", "h") for k in keys])
    ledger.record("other", K1, Outcome(Status.CREATED, provider_id="x"), "run-1")
    got = ledger.get_many(SCOPE, [*keys, Ledger.key_text(["nope"])])
    assert set(got) == set(keys) and all(e.status == SENDING for e in got.values())
    assert ledger.get("other", K1).provider_id == "x" and ledger.get(SCOPE, Ledger.key_text(["nope"])) is None
    assert [e.key for e in ledger.all(SCOPE)] == keys  # oldest first, insertion order within a timestamp
    assert len(ledger.all()) == 1201


def test_attempts_accumulate_provider_id_is_kept_and_invalid_is_not_recorded(ledger):
    ledger.record(SCOPE, K1, Outcome(Status.ACCEPTED, provider_id="bk_9", attempts=1), "run-1", "h1")
    ledger.record(SCOPE, K1, Outcome(Status.UNKNOWN, message="timeout", attempts=3), "run-2")
    entry = ledger.get(SCOPE, K1)
    assert (entry.status, entry.provider_id, entry.attempts, entry.payload_hash, entry.run_id) == \
        ("unknown", "bk_9", 4, "h1", "run-2")
    ledger.record(SCOPE, K2, Outcome(Status.INVALID, message="bad"), "run-1")
    ledger.record(SCOPE, K2, Outcome(Status.SKIPPED, message="skip"), "run-1")
    assert ledger.get(SCOPE, K2) is None
    ledger.record(SCOPE, K2, Outcome(Status.FAILED, message="x" * 5000), "run-1")
    assert len(ledger.get(SCOPE, K2).message) == 2000


def test_checkpoint_keeps_the_stage(ledger):
    ledger.mark_sending(SCOPE, K1, "run-1", "h")
    ledger.checkpoint(SCOPE, K1, "run-1", provider_id="job-7", stage="created")
    entry = ledger.get(SCOPE, K1)
    assert (entry.status, entry.provider_id, entry.stage) == (SENDING, "job-7", "created")
    ledger.checkpoint(SCOPE, K1, "run-2", provider_id=None, stage="scheduled")
    ledger.record(SCOPE, K1, Outcome(Status.CREATED), "run-2")
    entry = ledger.get(SCOPE, K1)
    assert (entry.status, entry.provider_id, entry.stage, entry.run_id) == ("created", "job-7", "scheduled", "run-2")


def test_marks_written_together_and_taken_back(ledger):
    mark_many_and_unmark_contract(ledger)


def test_every_request_leaves_after_its_rows_mark_is_committed(pg_url, tmp_path):
    committed_before_sent_contract(pg_url, tmp_path)


def test_group_commit_writes_every_row_in_few_transactions(ledger):
    group_commit_contract(ledger)


def test_a_failed_batch_writes_nothing(ledger):
    good = Ledger._sending_sql(SCOPE, K1, "run-1", "h")
    with pytest.raises(Exception, match="no_such_table"):  # psycopg's UndefinedTable names it
        ledger.write_many([good, ("INSERT INTO no_such_table VALUES (?)", (1,))])
    assert ledger.get(SCOPE, K1) is None
    ledger.mark_sending(SCOPE, K1, "run-1", "h")  # the connection is still usable
    assert ledger.get(SCOPE, K1).status == SENDING


def test_runs_are_recorded_and_restarted(ledger):
    ledger.start_run("r1", input="in.xlsx", mapping="m.yaml", provider="jicoo")
    ledger.end_run("r1", results="out.xlsx", counts={"created": 3})
    info = ledger.run_info("r1")
    assert (info["input"], info["provider"], info["results"], json.loads(info["counts"])) == \
        ("in.xlsx", "jicoo", "out.xlsx", {"created": 3}) and info["ended_at"]
    ledger.start_run("r1", input="again.xlsx", mapping="m.yaml", provider="jicoo")  # as SQLite's INSERT OR REPLACE
    info = ledger.run_info("r1")
    assert (info["input"], info["ended_at"], info["results"], info["counts"]) == ("again.xlsx", None, None, None)
    assert ledger.run_info("nope") is None


def test_ledger_id_is_stable_and_shared_by_every_connection(pg_url):
    with open_ledger(pg_url) as a, open_ledger(pg_url) as b:
        assert a.ledger_id == b.ledger_id and len(a.ledger_id) == 16
        int(a.ledger_id, 16)
    with open_ledger(pg_url) as c:
        assert c.ledger_id == a.ledger_id


def test_many_connections_open_a_new_database_at_once(pg_url):
    ids, errors = [], []

    def open_one() -> None:
        try:
            with open_ledger(pg_url) as led, FileClaims(led.path, owner="x"):
                ids.append(led.ledger_id)
        except Exception as exc:
            errors.append(exc)

    in_threads(open_one, [()] * 8)
    assert not errors and len(ids) == 8 and len(set(ids)) == 1


def test_the_password_never_shows_but_still_connects(pg_url):
    url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    with open_ledger(url) as led:
        assert "s3cret" not in str(led.path) and str(led.path) == pg_url
        with open_ledger(str(led.path)) as again:  # what the results workbook names: reopens in this process
            assert again.ledger_id == led.ledger_id
    from flows.ledger.database import _pg_url
    assert _pg_url(pg_url) == url


def test_an_unreachable_server_is_a_ledger_error_without_the_password():
    with pytest.raises(LedgerError, match=r"cannot connect to the ledger at postgresql://u@127\.0\.0\.1:1/db") as err:
        open_ledger("postgresql://u:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(err.value)


def test_callbacks_tables(ledger):
    ledger.add_callback_token("tok-1", run_id="r1", scope="bridge", provider="systemsx_bridge")
    assert ledger.callback_token("tok-1") == CallbackToken("r1", "bridge", "systemsx_bridge")
    ledger.add_callback_token("tok-1", run_id="r2", scope="bridge", provider="systemsx_bridge")  # replaced
    assert ledger.callback_token("tok-1").run_id == "r2" and ledger.callback_token("other") is None
    assert "tok-1" not in json.dumps(ledger._db.execute("SELECT * FROM callback_tokens").fetchall())

    key = Ledger.key_text(["T1", "Ann"])
    # a callback for a row not yet recorded waits ...
    assert ledger.record_callback(run_id="r2", scope="bridge", provider_id="bx-1", status="created",
                                  message="done", body="{}") is None
    ledger.record("bridge", key, Outcome(Status.ACCEPTED, provider_id="bx-1"), "r2")
    assert ledger.match_waiting_callbacks("bridge") == 1  # ... and is matched later
    assert ledger.get("bridge", key).status == "created"
    assert ledger.match_waiting_callbacks() == 0
    # matched by key values when the row is unknown and has no provider id
    key2 = Ledger.key_text(["T2", "Bob"])
    ledger.record("bridge", key2, Outcome(Status.UNKNOWN, message="timeout"), "r2")
    assert ledger.record_callback(run_id="r2", scope="bridge", provider_id="bx-2", status="rejected", message="no",
                                  body='{"a": 1}', reference="ref", match_key=["bob", "t2"]) == key2
    assert (ledger.get("bridge", key2).status, ledger.get("bridge", key2).provider_id) == ("rejected", "bx-2")
    stored = ledger.callbacks("bridge")
    assert [c["provider_id"] for c in stored] == ["bx-1", "bx-2"] and [c["row_key"] for c in stored] == [key, key2]
    assert stored[0]["id"] < stored[1]["id"] and ledger.callbacks("elsewhere") == []


def test_a_callback_finds_its_row_by_the_provider_id(ledger):
    callback_lookup_contract(ledger)


# --- inbox claims -------------------------------------------------------------------------------------


def test_claims_on_postgres_are_the_ledgers_database(pg_url):
    with open_ledger(pg_url) as led, FileClaims(led.path, owner="run-a") as claims:
        assert claims._db.postgres and claims.path == pg_url
        won, record = claims.claim("h1", "x.csv", "m.yaml")
        assert won and (record.owner, record.state, record.claims, record.mapping) == ("run-a", "claimed", 1, "m.yaml")
        assert isinstance(record.lease_until, float) and abs(record.lease_until - time.time() - 120) < 5
        assert claims.finish("h1", results="r.xlsx", archived_to="a/x.csv", counts={"created": 2})
        assert claims.get("h1").count_map == {"created": 2} and [r.content_hash for r in claims.all()] == ["h1"]


def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(pg_url):
    # epoch seconds: must survive the database exactly (the takeover compares it)
    stale_claim_contract(pg_url, 1_700_000_000.123)


def test_a_dead_pid_counts_only_for_claims_made_on_this_host(pg_url):
    dead = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    dead.start(), dead.join()
    with FileClaims(pg_url, owner="other-machine") as far, FileClaims(pg_url, owner="here") as me:
        far.host, far.pid = "another-host.example", dead.pid  # a live worker elsewhere whose pid is free here
        assert far.claim("h1", "x.csv")[0]
        assert not me.is_stale(me.get("h1")) and not me.claim("h1", "x.csv")[0]
        far.host = me.host  # the same claim made on this host by a process that is gone: stale at once
        assert far.claim("h2", "y.csv")[0]
        assert me.is_stale(me.get("h2")) and me.claim("h2", "y.csv")[0]


def test_only_one_of_many_threads_and_processes_racing_wins(pg_url):
    FileClaims(pg_url, owner="init").close()  # tables exist
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start_at = time.time() + 4.0  # after the spawned interpreters are up
    procs = [ctx.Process(target=race_for_claim, args=(pg_url, f"p{i}", "same-content", start_at, results))
             for i in range(2)]
    for p in procs:
        p.start()

    def thread_race(i: int) -> None:
        with FileClaims(pg_url, owner=f"t{i}") as c:
            time.sleep(max(0.0, start_at - time.time()))
            results.put((f"t{i}", c.claim("same-content", "f.csv")[0]))

    in_threads(thread_race, [(i,) for i in range(8)])
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    outcome = dict(results.get(timeout=10) for _ in range(10))
    assert len(outcome) == 10 and sum(outcome.values()) == 1
    with FileClaims(pg_url, owner="peek") as c:
        record = c.get("same-content")
    assert outcome[record.owner] and record.claims == 1


def test_only_one_of_many_racing_takeovers_wins(pg_url):
    now = [1000.0]
    old = FileClaims(pg_url, owner="old", lease_seconds=10, clock=lambda: now[0])
    old.host = "gone-machine"
    assert old.claim("h", "f.csv")[0]
    now[0] += 60
    takers = [FileClaims(pg_url, owner=f"t{i}", lease_seconds=10, clock=lambda: now[0]) for i in range(8)]
    barrier, won = threading.Barrier(8), []

    def take(c: FileClaims) -> None:
        barrier.wait()
        if c.claim("h", "f.csv")[0]:
            won.append(c.owner)

    in_threads(take, [(c,) for c in takers])
    assert len(won) == 1 and takers[0].get("h").owner == won[0] and takers[0].get("h").claims == 2
    for c in [old, *takers]:
        c.close()


# --- end to end -----------------------------------------------------------------------------------------


def test_jicoo_sample_twice_with_a_postgres_ledger_books_each_row_once(jicoo_sim, jicoo_env, pg_url, tmp_path):
    from .test_e2e_jicoo import run_import, statuses, unique_slots

    first = run_import(ledger_url=pg_url, out=tmp_path / "first.xlsx")
    assert statuses(first) == {"created": 54, "invalid": 5, "rejected": 1}
    second = run_import(ledger_url=pg_url, out=tmp_path / "second.xlsx")
    assert statuses(second) == {"skipped": 54, "invalid": 5, "rejected": 1}
    assert len(jicoo_sim.bookings) == 54 and unique_slots(jicoo_sim)
    with open_ledger(pg_url) as led:
        assert Counter(e.status for e in led.all()) == {"created": 54, "rejected": 1}
        assert led.run_info(first.run_id)["ended_at"] and led.run_info(second.run_id)["ended_at"]


def test_two_inbox_workers_sharing_a_postgres_ledger_import_each_file_exactly_once(jicoo_sim, jicoo_env, pg_url,
                                                                                   tmp_path):
    url = pg_url.replace("postgres@", "postgres:pw@")  # the inbox hands the claims the URL without it
    two_workers_contract(jicoo_sim, tmp_path, url)
    with FileClaims(pg_url, owner="peek") as claims:
        assert sorted(r.state for r in claims.all()) == ["done"] * 4


def test_rerun_and_status_find_a_postgres_ledger_from_the_workbook(jicoo_sim, jicoo_env, pg_url, tmp_path, monkeypatch):
    from flows.workbooks.refresh import refresh_results

    from .test_rerun import first_run, rerun

    monkeypatch.delenv("BOOKING_IMPORTER_LEDGER", raising=False)
    results = tmp_path / "first.xlsx"
    first_run(results, pg_url)
    again = rerun(results, out=tmp_path / "again.xlsx")  # no --ledger: the Summary names the Postgres ledger
    counts = Counter(o.status.value for o in again.outcomes)
    assert counts["created"] + counts["skipped"] == 54 and len(jicoo_sim.bookings) == 54
    refresh_results(results, out=tmp_path / "refreshed.xlsx")  # status: no "ledger not found"


# --- two runs at once: row claims (tests/test_two_runs.py has the contracts) ------------------------------


def test_row_claims(ledger):
    row_claims_contract(ledger)


def test_racing_runs_each_win_a_disjoint_share_of_the_rows(pg_url):
    claim_race_contract(pg_url)


def test_two_runs_started_together_book_every_row_once(jicoo_sim, jicoo_env, pg_url, tmp_path):
    jicoo_sim.faults = Faults(latency_ms=2)
    two_runs_at_once_contract(pg_url, jicoo_sim, tmp_path)


def test_a_run_whose_lease_ran_out_is_taken_over_and_checked_before_resending(jicoo_sim, jicoo_env, pg_url, tmp_path):
    lease_expiry_contract(pg_url, jicoo_sim, tmp_path)
