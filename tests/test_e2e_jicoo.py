"""End to end over loopback: the engine against the Jicoo simulator, as a back-office user would
meet it. The sample sheet has 60 rows: 5 deliberate mistakes and one double-booked slot."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from flows.engine.run import ImportRun
from flows.outcomes import Status
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"
INVALID_REFS = {"JB-1007", "JB-1013", "JB-1019", "JB-1026", "JB-1033"}


def run_import(sheet=SHEET, mapping=MAPPING, **options) -> ImportRun:
    return import_now(sheet, mapping, **options)


def statuses(run: ImportRun) -> Counter:
    return Counter(o.status.value for o in run.outcomes)


def by_ref(run: ImportRun) -> dict[str, object]:
    return {r.key[0]: run.outcomes[r.index] for r in run.plan.rows}


def unique_slots(sim) -> bool:
    slots = [(b["eventTypeId"], b["startedAt"]) for b in sim.bookings]
    return len(slots) == len(set(slots))


def test_sample_sheet_books_every_valid_row_once_and_reports_the_rest(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    out = tmp_path / "results.xlsx"
    run = run_import(ledger_url=ledger_url, out=out)

    counts = statuses(run)
    assert counts == {"created": 54, "invalid": 5, "rejected": 1}
    outcomes = by_ref(run)
    assert {ref for ref, o in outcomes.items() if o.status is Status.INVALID} == INVALID_REFS
    rejected = [o for o in outcomes.values() if o.status is Status.REJECTED]
    assert rejected[0].http_status == 409 and "slot no longer available" in rejected[0].message
    assert len(jicoo_sim.bookings) == 54 and unique_slots(jicoo_sim)

    df, summary = read_results(out)
    assert list(df.columns[:12]) == run.plan.sheet.columns
    assert list(df.columns[12:]) == ["_row", "_status", "_provider_id", "_http_status", "_message", "_attempts"]
    created = df[df["_status"] == "created"]
    assert set(created["_provider_id"]) == {b["uid"] for b in jicoo_sim.bookings}
    bad_email = df[df["Booking Ref"] == "JB-1007"].iloc[0]
    assert bad_email["_status"] == "invalid" and "Email" in bad_email["_message"]
    assert int(bad_email["_row"]) == run.plan.rows[[r.key[0] for r in run.plan.rows].index("JB-1007")].line
    assert summary["provider"] == "jicoo"


def test_rerunning_the_same_sheet_books_nothing_twice(jicoo_sim, jicoo_env, ledger_url):
    first = run_import(ledger_url=ledger_url)
    second = run_import(ledger_url=ledger_url)
    assert statuses(second) == {"skipped": 54, "invalid": 5, "rejected": 1}
    for ref, outcome in by_ref(second).items():
        if outcome.status is Status.SKIPPED:
            assert outcome.provider_id == by_ref(first)[ref].provider_id
    assert len(jicoo_sim.bookings) == 54


def test_a_429_storm_is_waited_out_without_losing_or_doubling_rows(jicoo_sim, jicoo_env, ledger_url):
    jicoo_sim.faults = Faults(rate_limit=40)
    run = run_import(ledger_url=ledger_url, concurrency=16, rate=None)
    assert statuses(run)["created"] == 54
    assert jicoo_sim.fault_counts["rate_limited"] > 0
    assert len(jicoo_sim.bookings) == 54 and unique_slots(jicoo_sim)


def test_503s_are_retried_until_they_succeed(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    jicoo_sim.faults = Faults(unavailable_rate=0.3, seed=7)
    mapping = mapping_variant(tmp_path, retry__attempts=10, retry__backoff_seconds=0.01)
    run = run_import(mapping=mapping, ledger_url=ledger_url, rate=None)
    assert statuses(run)["created"] == 54
    assert max(o.attempts for o in run.outcomes) > 1
    assert len(jicoo_sim.bookings) == 54


@pytest.mark.parametrize("fault", [
    Faults(timeout_after_store_rate=0.25, stall_seconds=3, seed=3),
    Faults(drop_after_store_rate=0.25, seed=4),
    Faults(error_after_store_rate=0.25, seed=5),
], ids=["timeout-after-commit", "dropped-connection", "500-after-commit"])
def test_maybe_sent_rows_are_unknown_then_found_not_resent(fault, jicoo_sim, jicoo_env, ledger_url, tmp_path):
    jicoo_sim.faults = fault
    mapping = mapping_variant(tmp_path, connection__timeout_seconds=0.5)
    first = run_import(mapping=mapping, ledger_url=ledger_url, rate=None)
    unknown = [ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN]
    assert unknown, "the fault should have produced unknown rows"
    for ref in unknown:
        assert "check" in by_ref(first)[ref].message
    stored = len(jicoo_sim.bookings)
    assert stored == 54, "the simulator stored every row, including the ones we are unsure of"

    jicoo_sim.faults = Faults()
    second = run_import(mapping=mapping, ledger_url=ledger_url, rate=None)
    for ref in unknown:
        outcome = by_ref(second)[ref]
        assert outcome.status is Status.SKIPPED and outcome.provider_id, (ref, outcome)
        assert "found at the provider" in outcome.message
    assert len(jicoo_sim.bookings) == 54 and unique_slots(jicoo_sim)


def test_refused_credentials_stop_the_run_and_skip_the_rest(jicoo_sim, jicoo_env, ledger_url, monkeypatch):
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_wrong")
    run = run_import(ledger_url=ledger_url, concurrency=4)
    counts = statuses(run)
    assert counts["failed"] >= 1 and counts["skipped"] >= 40
    assert counts["failed"] <= 4, "only requests already in flight may have been answered 401"
    skipped = [o for o in run.outcomes if o.status is Status.SKIPPED]
    assert all("credentials" in o.message for o in skipped)
    assert jicoo_sim.bookings == []
    # the failed and skipped rows are sendable next time, with the right key
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_sandbox")
    again = run_import(ledger_url=ledger_url)
    assert statuses(again)["created"] == 54


def test_secret_never_reaches_results_or_ledger(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    out = tmp_path / "r.xlsx"
    run_import(ledger_url=ledger_url, out=out)
    import zipfile

    with zipfile.ZipFile(out) as z:
        blob = b"".join(z.read(n) for n in z.namelist())
    assert jicoo_env["JICOO_API_KEY"].encode() not in blob
    assert jicoo_env["JICOO_API_KEY"].encode() not in Path(ledger_url.removeprefix("sqlite:///")).read_bytes()


def test_an_unreachable_provider_stops_the_run_instead_of_retrying_every_row(ledger_url, tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("JICOO_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_sandbox")
    mapping = mapping_variant(tmp_path, retry__attempts=2, retry__backoff_seconds=0.01)
    run = run_import(mapping=mapping, ledger_url=ledger_url, concurrency=2, rate=None)
    counts = statuses(run)
    assert counts["failed"] < 20 and counts["skipped"] > 30, counts
    skipped = [o for o in run.outcomes if o.status is Status.SKIPPED]
    assert all("could not be reached" in o.message for o in skipped)


@pytest.mark.parametrize("rows, given, sizes", [
    (60, None, [60]),  # a small sheet: one task
    (1_200, None, [500, 500, 200]),  # at least 500 rows a task
    (10_000, None, [2_000] * 5),  # a big one: at most 5 tasks, each a Prefect task run the send phase pays for
    (10_001, None, [2_001] * 4 + [1_997]),
    (1_200, 250, [250] * 4 + [200]),  # --chunk-size
    (0, None, []),
])
def test_rows_are_sent_in_chunks_of_500_or_a_fifth_of_the_sheet(rows, given, sizes):
    from flows.engine.plan import chunk_size_for, chunked

    chunks = chunked(list(range(rows)), given)
    assert [len(c) for c in chunks] == sizes and [i for c in chunks for i in c] == list(range(rows))
    assert chunk_size_for(rows, given) == (given or max(500, sizes[0] if sizes else 0))
