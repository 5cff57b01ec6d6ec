"""The callback receiver (``booking-import callbacks``) and ``booking-import status``: a call without a
run's token is refused and stores nothing; a Systems X Bridge callback settles its row ``created``,
also when it arrives after the run finished; the password and api_key never reach any file, log
or terminal output."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from flows.cli import main
from flows.http.callbacks import decode_form, receiving, scrub
from flows.ledger.ledger import Ledger, open_ledger
from flows.outcomes import Outcome, Status
from flows.sandbox import DEFAULT_BRIDGE_API_KEY, BridgeSimulator, Faults, SimulatorServer
from flows.workbooks.results import read_results

from .bridge_support import (  # noqa: F401  (fixtures)
    MAPPING,
    SHEET,
    bridge,
    bridge_env,
    file_texts,
    receiver,
    row,
    run_import,
    sample_passwords,
    write_sheet,
)
from .conftest import ROOT, in_threads
from .pg_support import pg_server, pg_url  # noqa: F401 - fixtures

SCOPE = "systemsx_bridge"


def ledger_rows(ledger_url: str) -> Counter:
    with open_ledger(ledger_url) as ledger:
        return Counter(e.status for e in ledger.all(SCOPE))


def callback_body(hash_: str = "H" * 21, ref: str = "PO-1", kind: str = "po") -> dict:
    return {"hash": hash_, "ImportDetail": {"importRequest": {
        "sourceReference": "BRG000001", "bookingReference": ref, "returnUrl": "http://x/systemsx_bridge/tok-abcdef",
        "bookingFields": {"username": "mhale", "password": "Hunter2-secret"}, "api_key": "sx_key_echoed",
        "type": kind}}}


# --- small pieces ----------------------------------------------------------------------------------------

def test_scrub_drops_secret_keys_and_masks_known_values():
    kept = scrub(callback_body(), ["tok-abcdef"])
    request = kept["ImportDetail"]["importRequest"]
    assert "api_key" not in request and request["bookingFields"] == {"username": "mhale"}
    assert request["returnUrl"] == "http://x/systemsx_bridge/••••••"
    assert "Hunter2" not in json.dumps(kept) and "sx_key_echoed" not in json.dumps(kept)


def test_decode_form_nests_bracket_keys():
    pairs = [("hash", "H"), ("ImportDetail[importRequest][bookingFields][username]", "u"),
             ("ImportDetail[importRequest][type]", "po"), ("tags[]", "a"), ("tags[]", "b"), ("plain", "")]
    assert decode_form(pairs) == {"hash": "H", "ImportDetail": {"importRequest": {"bookingFields": {"username": "u"},
                                                                                  "type": "po"}},
                                  "tags": {"0": "a", "1": "b"}, "plain": ""}


def test_a_callback_before_its_row_is_recorded_is_matched_later(ledger_url):
    key = Ledger.key_text(["po", "PO-1"])
    with open_ledger(ledger_url) as ledger:
        assert ledger.record_callback(run_id="r1", scope=SCOPE, provider_id="HASH1", status="created", message="done",
                                      body="{}", reference="PO-1") is None
        ledger.record(SCOPE, key, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
        assert ledger.match_waiting_callbacks(SCOPE) == 1
        assert ledger.get(SCOPE, key).status == "created"
        assert ledger.callbacks(SCOPE)[0]["row_key"] == key
        assert ledger.match_waiting_callbacks(SCOPE) == 0


# --- the receiver refuses what is not a run's callback ----------------------------------------------------

@pytest.fixture
def token_receiver(ledger_url):
    """A receiver plus one run's token registered in its ledger, and an accepted row for hash HASH1."""
    with open_ledger(ledger_url) as ledger:
        ledger.add_callback_token("good-token-123456", run_id="r1", scope=SCOPE, provider=SCOPE)
        ledger.record(SCOPE, Ledger.key_text(["po", "PO-1"]), Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
    with receiving(ledger_url) as url:
        yield url


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/systemsx_bridge/wrong-token-654321", callback_body("HASH1")),
    ("POST", "/systemsx_bridge/", callback_body("HASH1")),
    ("POST", "/jicoo/good-token-123456", callback_body("HASH1")),
    ("GET", "/systemsx_bridge/good-token-123456", None),
    ("POST", "/good-token-123456", callback_body("HASH1")),
], ids=["wrong-token", "no-token", "other-provider", "get", "no-provider"])
def test_a_call_without_a_valid_token_is_refused_and_nothing_is_stored(token_receiver, ledger_url, method, path, body):
    before = Path(ledger_url.removeprefix("sqlite:///")).read_bytes()
    r = httpx.request(method, token_receiver + path, json=body)
    assert r.status_code == 404
    with open_ledger(ledger_url) as ledger:
        assert ledger.callbacks() == []
        assert ledger.get(SCOPE, Ledger.key_text(["po", "PO-1"])).status == "accepted"
    assert b"HASH1" in before


def test_an_unreadable_callback_is_400_and_nothing_is_stored(token_receiver, ledger_url):
    r = httpx.post(token_receiver + "/systemsx_bridge/good-token-123456", json={"no": "hash"})
    assert r.status_code == 400
    with open_ledger(ledger_url) as ledger:
        assert ledger.callbacks() == []


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_a_good_callback_settles_its_row_with_secrets_removed(token_receiver, ledger_url, encoding):
    url = token_receiver + "/hooks/prefix/systemsx_bridge/good-token-123456"  # a proxy's prefix is fine
    body = callback_body("HASH1")
    if encoding == "json":
        r = httpx.post(url, json=body)
    else:
        req = body["ImportDetail"]["importRequest"]
        form = {"hash": "HASH1",
                **{f"ImportDetail[importRequest][{k}]": v for k, v in req.items() if k != "bookingFields"},
                **{f"ImportDetail[importRequest][bookingFields][{k}]": v for k, v in req["bookingFields"].items()}}
        r = httpx.post(url, data=form)
    assert (r.status_code, r.json()) == (200, {"status": "recorded", "matched": True})
    with open_ledger(ledger_url) as ledger:
        entry = ledger.get(SCOPE, Ledger.key_text(["po", "PO-1"]))
        stored = ledger.callbacks()
    assert (entry.status, entry.provider_id) == ("created", "HASH1")
    assert "callback" in entry.message
    assert len(stored) == 1 and (stored[0]["reference"], stored[0]["run_id"]) == ("PO-1", "r1")
    kept = stored[0]["body"]
    assert "Hunter2" not in kept and "sx_key_echoed" not in kept and "api_key" not in kept
    raw = Path(ledger_url.removeprefix("sqlite:///")).read_bytes()
    assert b"Hunter2" not in raw and b"good-token-123456" not in raw


def test_a_callback_saying_the_import_failed_rejects_the_row(token_receiver, ledger_url):
    body = {**callback_body("HASH1"), "errors": ["Portal login failed."]}
    assert httpx.post(token_receiver + "/systemsx_bridge/good-token-123456", json=body).status_code == 200
    with open_ledger(ledger_url) as ledger:
        entry = ledger.get(SCOPE, Ledger.key_text(["po", "PO-1"]))
    assert entry.status == "rejected" and "Portal login failed." in entry.message


# --- replays, other runs' tokens, forgeries, contradictions, floods: refused or harmless ---------------------

RUN1, RUN2 = "r1-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "r2-token-bbbbbbbbbbbbbbbbbbbbbbbbbbbb"  # as long as real ones
PO1, PO2, PO3 = (Ledger.key_text(["po", ref]) for ref in ("PO-1", "PO-2", "PO-3"))


@pytest.fixture(params=["sqlite", "postgres"])
def any_ledger(request, ledger_url):
    """The test's ledger URL: SQLite, then a throwaway PostgreSQL database (tests/pg_support.py)."""
    return ledger_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def two_runs(any_ledger):
    """Two runs of one sheet in one ledger: r1 sent PO-1 (accepted, HASH1) and is still sending PO-3; r2 sent
    PO-2 (accepted, HASH2). A receiver with a short wait for rows not recorded yet; yields (url, events)."""
    ledger_url = any_ledger
    with open_ledger(ledger_url) as ledger:
        ledger.add_callback_token(RUN1, run_id="r1", scope=SCOPE, provider=SCOPE)
        ledger.add_callback_token(RUN2, run_id="r2", scope=SCOPE, provider=SCOPE)
        ledger.record(SCOPE, PO1, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
        ledger.mark_sending(SCOPE, PO3, "r1", "phash")
        ledger.record(SCOPE, PO2, Outcome(Status.ACCEPTED, provider_id="HASH2"), "r2")
    events: list[str] = []
    with receiving(ledger_url, on_event=events.append, match_wait=0.3) as url:
        yield url, events


def failed(hash_: str, ref: str = "PO-1", why: str = "Portal login failed.") -> dict:
    return {**callback_body(hash_, ref), "errors": [why]}


#: Each case: the callbacks posted, in order, as (token, body) -> (HTTP status, "status" of the answer or None);
#: then what the rows and the ledger's callbacks table hold. What Bridge documents: 200 {hash} (accepted), then
#: the "return_url Response" echoing the request (type, bookingReference, returnUrl) [C]; errors, if any [I].
CASES = {
    "a callback settles its row": (
        [((RUN1, callback_body("HASH1")), (200, "recorded"))],
        {PO1: "created"}, 1),
    "the same callback again (a provider's retry or a replay) is not stored again": (
        [((RUN1, callback_body("HASH1")), (200, "recorded")), ((RUN1, callback_body("HASH1")), (200, "duplicate")),
         ((RUN1, callback_body("HASH1")), (200, "duplicate"))],
        {PO1: "created"}, 1),
    "a legitimate late refusal turns an accepted row rejected": (
        [((RUN1, failed("HASH1")), (200, "recorded"))],
        {PO1: "rejected"}, 1),
    "errors after the row was confirmed do not flip it": (
        [((RUN1, callback_body("HASH1")), (200, "recorded")), ((RUN1, failed("HASH1")), (409, None))],
        {PO1: "created"}, 1),
    "a confirmation after a refusal does not flip it either": (
        [((RUN1, failed("HASH1")), (200, "recorded")), ((RUN1, callback_body("HASH1")), (409, None))],
        {PO1: "rejected"}, 1),
    "one run's token cannot settle another run's row": (
        [((RUN1, callback_body("HASH2", "PO-2")), (404, None)), ((RUN2, failed("HASH1")), (404, None))],
        {PO1: "accepted", PO2: "accepted"}, 0),
    "each run's token settles its own row": (
        [((RUN1, callback_body("HASH1")), (200, "recorded")),
         ((RUN2, callback_body("HASH2", "PO-2")), (200, "recorded"))],
        {PO1: "created", PO2: "created"}, 2),
    "a forged hash echoing a row that is not being sent is not stored": (
        [((RUN1, callback_body("FORGED", "PO-9")), (404, None)),
         ((RUN1, callback_body("FORGED", "PO-2")), (404, None))],
        {PO1: "accepted", PO2: "accepted"}, 0),
    "a forged hash echoing nothing is not stored (after a short wait for its row)": (
        [((RUN1, {"hash": "FORGED"}), (404, None)), ((RUN1, {"hash": "FORGED", "errors": ["x"]}), (404, None))],
        {PO1: "accepted"}, 0),
    "the right hash echoing another row's reference is refused": (
        [((RUN1, failed("HASH1", "PO-2")), (409, None))],
        {PO1: "accepted", PO2: "accepted"}, 0),
    "a callback for a row still being sent waits for it, once": (
        [((RUN1, callback_body("HASH3", "PO-3")), (200, "recorded")),
         ((RUN1, callback_body("HASH3", "PO-3")), (200, "duplicate")),
         ((RUN1, failed("HASH3", "PO-3")), (409, None))],
        {PO3: "sending"}, 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_callbacks_are_refused_or_harmless(two_runs, any_ledger, case):
    ledger_url = any_ledger
    url, events = two_runs
    posts, rows, stored = CASES[case]
    for (token, body), (status, word) in posts:
        r = httpx.post(f"{url}/systemsx_bridge/{token}", json=body)
        assert (r.status_code, r.json().get("status")) == (status, word), (body, r.text)
    with open_ledger(ledger_url) as ledger:
        assert {k: ledger.get(SCOPE, k).status for k in rows} == rows
        assert len(ledger.callbacks()) == stored
    assert len(events) == len(posts) and not any("Hunter2" in e for e in events)


def test_the_same_callback_at_two_receivers_at_once_is_stored_once(any_ledger):
    """Two `booking-import callbacks` behind one proxy (or a retry racing the first delivery), one ledger:
    the check and the insert are one exclusive transaction, so one receiver records and the other says duplicate."""
    import threading

    with open_ledger(any_ledger) as ledger:
        ledger.add_callback_token(RUN1, run_id="r1", scope=SCOPE, provider=SCOPE)
        ledger.record(SCOPE, PO1, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
    answers: list[str] = []
    with receiving(any_ledger) as one, receiving(any_ledger) as two:
        start = threading.Barrier(8)

        def post(url: str) -> None:
            start.wait()
            answers.append(httpx.post(f"{url}/systemsx_bridge/{RUN1}", json=callback_body("HASH1")).json()["status"])

        in_threads(post, [(url,) for url in (one, two) * 4])
    assert sorted(answers) == ["duplicate"] * 7 + ["recorded"]
    with open_ledger(any_ledger) as ledger:
        assert len(ledger.callbacks()) == 1 and ledger.get(SCOPE, PO1).status == "created"


def test_a_waiting_callback_settles_its_row_once_the_run_records_the_answer(two_runs, any_ledger):
    ledger_url = any_ledger
    url, _ = two_runs
    assert httpx.post(f"{url}/systemsx_bridge/{RUN1}", json=failed("HASH3", "PO-3")).json() == {
        "status": "recorded", "matched": False}
    with open_ledger(ledger_url) as ledger:
        ledger.record(SCOPE, PO3, Outcome(Status.ACCEPTED, provider_id="HASH3"), "r1")
        assert ledger.match_waiting_callbacks(SCOPE) == 1
        assert ledger.get(SCOPE, PO3).status == "rejected"
    assert httpx.post(f"{url}/systemsx_bridge/{RUN1}", json=failed("HASH3", "PO-3")).json()["status"] == "duplicate"


def test_another_runs_token_echoed_in_a_body_is_masked(two_runs, any_ledger):
    ledger_url = any_ledger
    url, _ = two_runs
    body = callback_body("HASH1")
    body["ImportDetail"]["importRequest"]["returnUrl"] = f"https://hooks.example.com/b/systemsx_bridge/{RUN2}?x=1"
    body["ImportDetail"]["note"] = f"also see https://hooks.example.com/systemsx_bridge/{RUN1}"
    assert httpx.post(f"{url}/systemsx_bridge/{RUN1}", json=body).status_code == 200
    with open_ledger(ledger_url) as ledger:
        (kept,) = [json.loads(c["body"]) for c in ledger.callbacks()]
    assert kept["ImportDetail"]["importRequest"]["returnUrl"] == "https://hooks.example.com/b/systemsx_bridge/••••••?x=1"
    assert kept["ImportDetail"]["note"] == "also see https://hooks.example.com/systemsx_bridge/••••••"
    if ledger_url.startswith("sqlite:///"):
        raw = Path(ledger_url.removeprefix("sqlite:///")).read_bytes()
        assert RUN1.encode() not in raw and RUN2.encode() not in raw


def test_event_lines_show_a_forged_hash_escaped_and_short(two_runs):
    url, events = two_runs
    forged = "EVIL\r\nrefused a call: nothing\x1b[2J" + "Z" * 500
    assert httpx.post(f"{url}/systemsx_bridge/{RUN1}", json={"hash": forged}).status_code == 404
    (line,) = events
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and len(line) < 200
    assert "EVIL\\r\\n" in line and "..." in line


def _ledger_bytes(ledger_url: str) -> int:
    path = Path(ledger_url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_a_flood_of_large_forged_bodies_stores_nothing(two_runs, any_ledger):
    """Measured before this receiver: 50 bodies of 200 KB with a run's token grew the ledger by 11 MB."""
    url, _ = two_runs
    ledger_url = any_ledger
    if not ledger_url.startswith("sqlite:///"):
        pytest.skip("measured on the SQLite file; the PostgreSQL cases above store nothing either")
    before = _ledger_bytes(ledger_url)
    padding = "x" * (200 * 1024)
    with httpx.Client() as client:
        for i in range(50):
            big = {**callback_body(f"FORGED{i}", f"ZZ-{i}"), "padding": padding}
            assert client.post(f"{url}/systemsx_bridge/{RUN1}", json=big).status_code == 413
            chunked = client.post(f"{url}/systemsx_bridge/{RUN1}", content=iter([json.dumps(big).encode()]),
                                  headers={"Content-Type": "application/json"})  # no Content-Length: read, then cut off
            assert chunked.status_code == 413
            if i % 5 == 0:  # under the limit, no row of the run: refused after the short wait for its row
                small = {**callback_body(f"FORGED{i}", f"ZZ-{i}"), "padding": "y" * 60_000}
                assert client.post(f"{url}/systemsx_bridge/{RUN1}", json=small).status_code == 404
    with open_ledger(ledger_url) as ledger:
        assert ledger.callbacks() == []
        assert ledger.get(SCOPE, PO1).status == "accepted"
    assert _ledger_bytes(ledger_url) - before < 64 * 1024


def test_what_is_stored_of_one_callback_is_bounded(ledger_url):
    with open_ledger(ledger_url) as ledger:
        ledger.add_callback_token(RUN1, run_id="r1", scope=SCOPE, provider=SCOPE)
        ledger.record(SCOPE, PO1, Outcome(Status.ACCEPTED, provider_id="HASH1"), "r1")
    with receiving(ledger_url, max_stored=4096) as url:
        body = {**callback_body("HASH1"), "errors": ["E" * 30_000]}
        assert httpx.post(f"{url}/systemsx_bridge/{RUN1}", json=body).status_code == 200
    with open_ledger(ledger_url) as ledger:
        (stored,) = ledger.callbacks()
        entry = ledger.get(SCOPE, PO1)
    assert len(stored["body"]) < 4200 and "characters; the first 4096 kept" in json.loads(stored["body"])["cut"]
    assert len(stored["message"]) <= 2000 and entry.status == "rejected" and len(entry.message) <= 2000


# --- with the simulator -----------------------------------------------------------------------------------

def test_waiting_for_callbacks_turns_accepted_rows_into_created(ledger_url, tmp_path, monkeypatch):
    sim = BridgeSimulator(callback_delay=0.05, callback_encoding="form", seed=1)
    with SimulatorServer(sim) as url, receiving(ledger_url) as hook:
        monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", url)
        monkeypatch.setenv("SYSTEMSX_API_KEY", DEFAULT_BRIDGE_API_KEY)
        run = run_import(ledger_url=ledger_url, callback_url=hook, wait=10, out=tmp_path / "r.xlsx")
    assert Counter(o.status.value for o in run.outcomes) == {"created": 32, "invalid": 4}
    assert run.callbacks_confirmed == 32
    assert {o.provider_id for o in run.outcomes if o.provider_id} == {j.hash for j in sim.jobs}
    df, summary = read_results(tmp_path / "r.xlsx")
    assert (df["_status"] == "created").sum() == 32 and summary["confirmed by callback"] == "32"


def test_callbacks_after_the_run_finished_update_the_ledger_and_status(bridge, bridge_env, receiver, ledger_url,
                                                                       tmp_path, capsys):
    out = tmp_path / "r.xlsx"
    run = run_import(ledger_url=ledger_url, callback_url=receiver, out=out)  # the run ends with its rows accepted
    assert Counter(o.status.value for o in run.outcomes) == {"accepted": 32, "invalid": 4}
    assert ledger_rows(ledger_url) == {"accepted": 32}

    assert bridge.release_callbacks() == 32  # Bridge finishes its imports later
    assert [c["status"] for c in bridge.callbacks] == [200] * 32
    assert ledger_rows(ledger_url) == {"created": 32}

    before = read_results(out)[1]
    refreshed = tmp_path / "refreshed.xlsx"
    code = main(["status", str(out), "--out", str(refreshed)])
    printed = capsys.readouterr().out
    assert code == 1  # the sample's four invalid rows still need attention
    assert "accepted -> created: 32" in printed
    df, summary = read_results(refreshed)
    assert Counter(df["_status"]) == {"created": 32, "invalid": 4}
    created = df[df["_status"] == "created"]
    assert set(created["_provider_id"]) == {j.hash for j in bridge.jobs}
    assert all("callback" in m for m in created["_message"])
    assert summary["run id"] == before["run id"] == run.run_id and summary["started"] == before["started"]
    assert summary["refreshed rows"] == "32" and summary["refreshed"]
    assert set(df.columns) == set(read_results(out)[0].columns)

    # refreshing again changes nothing; in place by default
    assert main(["status", str(refreshed)]) == 1
    assert "changed since the run: none" in capsys.readouterr().out


def test_a_callback_finds_a_row_left_unknown_by_its_type_and_reference(ledger_url, tmp_path, monkeypatch):
    sim = BridgeSimulator(callback_delay=None, faults=Faults(drop_after_store_rate=1.0), seed=2)
    sheet = write_sheet(tmp_path / "s.csv", [row("PO-11"), row("MSC-22", "msc"), row("TUI-33", "TUI")])
    with SimulatorServer(sim) as url, receiving(ledger_url) as hook:
        monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", url)
        monkeypatch.setenv("SYSTEMSX_API_KEY", DEFAULT_BRIDGE_API_KEY)
        first = run_import(sheet, ledger_url=ledger_url, callback_url=hook)
        assert Counter(o.status.value for o in first.outcomes) == {"unknown": 3}
        assert len(sim.jobs) == 3, "Bridge queued them; the answers were lost"
        assert sim.release_callbacks() == 3
        with open_ledger(ledger_url) as ledger:
            entries = {json.loads(e.key)[1]: e for e in ledger.all(SCOPE)}
        assert {e.status for e in entries.values()} == {"created"}
        assert {e.provider_id for e in entries.values()} == {j.hash for j in sim.jobs}
        sim.faults = Faults()
        second = run_import(sheet, ledger_url=ledger_url, callback_url=hook)
    assert Counter(o.status.value for o in second.outcomes) == {"skipped": 3}
    assert len(sim.jobs) == 3


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_bridge_repeating_its_callbacks_and_refusing_one_import_settles_each_row_once(ledger_url, tmp_path, monkeypatch,
                                                                                        encoding):
    """Bridge posts every callback twice (a retrying sender, or a replay) and reports one failed import: one
    stored callback per row, the failed import `rejected` with Bridge's reason, and the repeats answered 200
    duplicate so a retrying sender stops."""
    sim = BridgeSimulator(callback_delay=None, callback_encoding=encoding, seed=3, callback_repeats=2,
                          import_errors={"MSC-22": "Portal login failed: wrong password."})
    sheet = write_sheet(tmp_path / "s.csv", [row("PO-11"), row("MSC-22", "msc"), row("TUI-33", "tui")])
    with SimulatorServer(sim) as url, receiving(ledger_url) as hook:
        monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", url)
        monkeypatch.setenv("SYSTEMSX_API_KEY", DEFAULT_BRIDGE_API_KEY)
        run = run_import(sheet, ledger_url=ledger_url, callback_url=hook)
        assert Counter(o.status.value for o in run.outcomes) == {"accepted": 3}
        assert sim.release_callbacks() == 3
    answers = [(c["status"], json.loads(c["answer"])["status"]) for c in sim.callbacks]
    assert answers == [(200, "recorded"), (200, "duplicate")] * 3
    with open_ledger(ledger_url) as ledger:
        entries = {json.loads(e.key)[1]: e for e in ledger.all(SCOPE)}
        assert len(ledger.callbacks(SCOPE)) == 3
    assert {k: e.status for k, e in entries.items()} == {"PO-11": "created", "MSC-22": "rejected", "TUI-33": "created"}
    assert "Portal login failed: wrong password." in entries["MSC-22"].message


# --- nothing secret anywhere ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_password_and_api_key_never_reach_any_output(bridge, bridge_env, ledger_url, tmp_path, capsys, caplog,
                                                     monkeypatch):
    caplog.set_level(logging.DEBUG)
    ledger = tmp_path / "ledger.sqlite"
    port = _free_port()
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", f"http://127.0.0.1:{port}/public")
    receiver = subprocess.Popen([sys.executable, "-m", "flows", "callbacks", "--port", str(port),
                                 "--ledger", str(ledger)],
                                cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in receiver.stdout.readline()
        out = tmp_path / "results.xlsx"
        run_import(ledger_url=ledger_url, out=out)
        assert main(["render", str(SHEET), "-m", str(MAPPING)]) == 0
        assert main(["validate", str(SHEET), "-m", str(MAPPING), "--out", str(tmp_path / "validate.xlsx")]) == 1
        assert bridge.release_callbacks() == 32
        assert [c["status"] for c in bridge.callbacks] == [200] * 32, "the callbacks command took every callback"
        assert main(["status", str(out), "--out", str(tmp_path / "status.xlsx")]) == 1
    finally:
        receiver.send_signal(signal.SIGINT)
        cb_out, cb_err = receiver.communicate(timeout=20)
    printed = capsys.readouterr()
    assert receiver.returncode == 0 and "32 callbacks recorded (32 matched to rows)" in cb_out
    assert ledger_rows(ledger_url) == {"created": 32}

    outputs = {**file_texts(tmp_path), "stdout": printed.out.encode(), "stderr": printed.err.encode(),
               "logs": caplog.text.encode(), "callbacks stdout": cb_out.encode(), "callbacks stderr": cb_err.encode()}
    assert {"results.xlsx", "status.xlsx", "validate.xlsx", "ledger.sqlite"} <= set(outputs), sorted(outputs)
    assert b"BRG000032" in outputs["ledger.sqlite"], "the callbacks themselves are in the scanned ledger"
    secrets = [*sample_passwords(), DEFAULT_BRIDGE_API_KEY]
    assert len(secrets) == 37
    leaks = [(name, s) for name, data in outputs.items() for s in secrets if s.encode() in data]
    assert leaks == []
    # the workbooks show the mask where the passwords were
    assert b"\xe2\x80\xa2" * 6 in outputs["results.xlsx"] and b"\xe2\x80\xa2" * 6 in outputs["status.xlsx"]


@pytest.mark.prefect
def test_the_run_command_waits_for_callbacks_in_process(bridge, bridge_env, tmp_path, monkeypatch):
    """No Prefect server configured: the engine directly. tests/test_prefect_record.py runs the same command
    recorded on a Prefect server (one server for that module, instead of a harness started for this test)."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    bridge.callback_delay = 0.05
    out = tmp_path / "r.xlsx"
    code = main(["run", str(SHEET), "-m", str(MAPPING), "--ledger", str(tmp_path / "l.sqlite"), "--rate", "0",
                 "--out", str(out), "--wait-callbacks", "10", "--quiet"])
    assert code == 1  # four invalid rows
    df, summary = read_results(out)
    assert Counter(df["_status"]) == {"created": 32, "invalid": 4}
    assert summary["confirmed by callback"] == "32"


def test_status_on_a_missing_workbook_or_ledger_exits_2_with_one_line(bridge, bridge_env, receiver, ledger_url,
                                                                      tmp_path, capsys):
    assert main(["status", str(tmp_path / "nope.xlsx")]) == 2
    assert "not found" in capsys.readouterr().err
    out = tmp_path / "r.xlsx"
    run_import(write_sheet(tmp_path / "s.csv", [row("PO-1")]), ledger_url=ledger_url, callback_url=receiver, out=out)
    assert main(["status", str(out), "--ledger", str(tmp_path / "elsewhere" / "none.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "--ledger" in err and "Traceback" not in err
    assert not (tmp_path / "elsewhere").exists(), "a mistyped ledger is not created"
