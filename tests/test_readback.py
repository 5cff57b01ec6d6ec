"""Read-backs that can be trusted (issue 11), read like the provider docs: the check before a resend
finds a row wherever an honest server would list it, and says "unsure" (the row stays unknown)
whenever it could not read the whole answer or cannot tell which booking is ours.

Everything runs against the Jicoo simulator on loopback through the real Sender; the "inconvenient"
servers are the simulator with one of its documented readings switched on, or a middleware in front
of its list endpoint (a lost page, a moving total, a lagging index)."""
from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions, send_pending
from flows.http.auth import build_auth
from flows.http.readback import instant, norm, same_instant, the_one
from flows.http.sender import ReadbackError, Sender
from flows.ledger.ledger import open_ledger
from flows.mapping.model import load_mapping
from flows.outcomes import Outcome, Status
from flows.providers.jicoo import find_booking
from flows.sandbox import DEFAULT_API_KEY, EventType, Faults, JicooSimulator, SimulatorServer

from .conftest import MAPPINGS, SAMPLES, use_sandbox

GROUP = EventType("GrpWorkshop01", "Group workshop", 90, capacity=500)
ONE_TO_ONE = EventType("mzgdPJVBb7RE", "Initial consultation", 30)
START = "2027-05-10T09:00:00.000Z"  # as the importer sends it: UTC, milliseconds


def payload(email: str, start: str = START, event: str = GROUP.uid) -> dict[str, Any]:
    return {"eventTypeId": event, "startedAt": start, "timeZone": "Asia/Tokyo", "email": email,
            "name": "Guest", "locationId": "inPerson"}


@contextlib.contextmanager
def serve(sim: JicooSimulator, *middlewares: Any) -> Iterator[str]:
    """The simulator on loopback with extra middlewares in front of its routes (after auth)."""
    app = sim.app()
    app.middlewares.extend(middlewares)
    with SimulatorServer(app) as url:
        yield url


def sender(url: str, attempts: int = 2) -> Sender:
    m = load_mapping(MAPPINGS / "jicoo.yaml")
    auth = build_auth(m.connection.auth, m.provider, {"JICOO_API_KEY": DEFAULT_API_KEY})
    return Sender(base_url=f"{url}/v1", auth=auth, concurrency=4, rate=None, timeout=5, connect_timeout=2,
                  attempts=attempts, backoff=0.01, max_backoff=0.02, max_retry_after=1)


def read_back(url: str, row: dict[str, Any]) -> str | None:
    async def go() -> str | None:
        async with sender(url) as s:
            return await find_booking(s, row)

    return asyncio.run(go())


def book(url: str, rows: list[dict[str, Any]]) -> list[str]:
    """Book straight at the simulator (as another client would); returns the uids."""
    import httpx

    with httpx.Client(base_url=f"{url}/v1", headers={"X-Jicoo-Api-Key": DEFAULT_API_KEY}) as c:
        answers = [c.post("/bookings", json=r) for r in rows]
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    return [a.json()["uid"] for a in answers]


async def old_find_booking(sender: Sender, row: dict) -> str | None:
    """The read-back as it was before issue 11 (kept here to show what it missed)."""
    started = row["startedAt"]
    data = await sender.get_json("/bookings", params={"startedAt": started, "endedAt": started, "perPage": 100})
    for item in data.get("data", []):
        if (item.get("eventTypeId") == row.get("eventTypeId")
                and instant(item.get("startedAt")) == instant(started)
                and str(item.get("email", "")).casefold() == row["email"].casefold()
                and item.get("status") != "cancel"):
            return str(item.get("uid"))
    return None


def old_read_back(url: str, row: dict[str, Any]) -> str | None:
    async def go() -> str | None:
        async with sender(url) as s:
            return await old_find_booking(s, row)

    return asyncio.run(go())


# --- what a match is ------------------------------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("2027-05-10T09:00:00.000Z", "2027-05-10T09:00:00Z"),
    ("2027-05-10T09:00:00Z", "2027-05-10T18:00:00+09:00"),
    ("2027-05-10T09:00:00.000000Z", "2027-05-10T10:00:00+0100"),
    ("2027-05-10T09:00:00.000Z", "2027-05-10T09:00Z"),
    ("2027-05-10T09:00:00Z", "2027-05-10T09:00:00"),  # no offset: UTC, as the docs' "UTC" says
])
def test_instants_compare_as_instants_in_any_precision_or_offset(a, b):
    assert same_instant(a, b) and same_instant(b, a)


@pytest.mark.parametrize("a, b", [
    ("2027-05-10T09:00:00Z", "2027-05-10T09:00:01Z"),
    ("2027-05-10T09:00:00Z", "2027-05-10T09:00:00+09:00"),
    ("2027-05-10T09:00:00Z", "not a time"),
    ("2027-05-10T09:00:00Z", None),
])
def test_different_or_unreadable_instants_are_never_the_same(a, b):
    assert not same_instant(a, b)


def test_identities_compare_without_case_or_spacing():
    assert norm("  Guest@Example.COM ") == norm("guest@example.com")
    assert norm("JOB  001") == norm("job 001") != norm("job 0011")


def test_two_matches_are_unsure_and_a_candidate_showing_no_email_is_unsure():
    items = [{"uid": "a", "startedAt": START, "email": "x@example.com"},
             {"uid": "b", "startedAt": "2027-05-10T18:00:00+09:00", "email": " X@example.com"}]
    with pytest.raises(ReadbackError, match="2 bookings match this row"):
        the_one(items, id_field="uid", instants={"startedAt": START}, same={"email": "x@example.com"})
    blind = [{"uid": "c", "startedAt": START}]  # at our time, but whose is it?
    with pytest.raises(ReadbackError, match="show no email"):
        the_one(blind, id_field="uid", instants={"startedAt": START}, same={"email": "x@example.com"})
    assert the_one(blind, id_field="uid", instants={"startedAt": "2027-05-10T10:00:00Z"},
                   same={"email": "x@example.com"}) is None, "a booking at another time is not ours"


# --- Jicoo's read-back against the simulator -------------------------------------------------------


def test_the_150th_attendee_of_one_workshop_at_one_time_is_found():
    sim = JicooSimulator(event_types=[GROUP])
    with serve(sim) as url:
        uids = book(url, [payload(f"guest{i:03d}@example.com") for i in range(1, 161)])
        assert read_back(url, payload("guest150@example.com")) == uids[149]
        assert read_back(url, payload("GUEST160@Example.com ")) == uids[159]
        assert read_back(url, payload("guest161@example.com")) is None, "read to the end: surely not there"
        assert old_read_back(url, payload("guest150@example.com")) is None, "the old check read one page"
    pages = sim.requests["GET /v1/bookings"]
    assert pages >= 3 * 2, "each check read every page (160 bookings, 100 a page)"


@pytest.mark.parametrize("timestamps", ["seconds", "offset", "millis"])
def test_a_booking_answered_in_another_precision_is_found(timestamps):
    sim = JicooSimulator(event_types=[ONE_TO_ONE], timestamps=timestamps)
    with serve(sim) as url:
        [uid] = book(url, [payload("ana@example.com", event=ONE_TO_ONE.uid)])
        stored = sim.bookings[0]["startedAt"]
        assert stored != START or timestamps == "millis"
        assert read_back(url, payload("ana@example.com", event=ONE_TO_ONE.uid)) == uid


@pytest.mark.parametrize("mode", ["within", "start", "overlap", "text"])
def test_the_window_contains_the_booking_however_the_provider_reads_the_filter(mode):
    """Jicoo documents startedAt/endedAt filters but not how they bound a booking. The old zero-width
    window found it only where the filter bounds the start alone; the new one finds it everywhere."""
    sim = JicooSimulator(event_types=[ONE_TO_ONE], list_filter=mode)
    row = payload("ben@example.com", event=ONE_TO_ONE.uid)
    with serve(sim) as url:
        [uid] = book(url, [row])
        assert read_back(url, row) == uid
        old = old_read_back(url, row)
    assert old == (uid if mode == "start" else None), "the old check misses it on every stricter reading"


def test_a_500_mid_pagination_is_unsure_never_absent():
    sim = JicooSimulator(event_types=[GROUP])

    @web.middleware
    async def lose_page_2(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/v1/bookings" and request.query.get("page") == "2":
            return web.json_response({"error": {"code": "internal_error", "message": "boom"}}, status=500)
        return await handler(request)

    with serve(sim, lose_page_2) as url:
        book(url, [payload(f"guest{i:03d}@example.com") for i in range(1, 151)])
        with pytest.raises(ReadbackError, match="500"):  # on page 1, but page 2 could hold a second match
            read_back(url, payload("guest050@example.com"))
        with pytest.raises(ReadbackError, match="500"):
            read_back(url, payload("guest150@example.com"))
        with pytest.raises(ReadbackError):
            read_back(url, payload("nobody@example.com"))


def test_a_total_that_keeps_moving_or_a_short_list_is_unsure():
    sim = JicooSimulator(event_types=[GROUP])
    calls = collections.Counter()

    @web.middleware
    async def moving_total(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "GET" and request.path == "/v1/bookings":
            import json

            calls["n"] += 1
            body = json.loads(response.body)
            body["totalCount"] += calls["n"]  # another writer adds one booking per page read
            return web.json_response(body)
        return response

    with serve(sim, moving_total) as url:
        book(url, [payload(f"guest{i:03d}@example.com") for i in range(1, 151)])
        with pytest.raises(ReadbackError, match="total moved"):
            read_back(url, payload("guest150@example.com"))


def test_a_server_that_ignores_the_page_parameter_is_unsure_not_read_whole():
    sim = JicooSimulator(event_types=[GROUP])

    @web.middleware
    async def always_page_1(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/v1/bookings":
            query = {k: v for k, v in request.query.items() if k != "page"}
            return await handler(request.clone(rel_url=request.rel_url.with_query(query)))
        return await handler(request)

    with serve(sim, always_page_1) as url:
        book(url, [payload(f"guest{i:03d}@example.com") for i in range(1, 151)])
        with pytest.raises(ReadbackError, match="repeated items"):
            read_back(url, payload("guest150@example.com"))


def test_two_bookings_of_one_guest_at_one_time_are_unsure():
    sim = JicooSimulator(event_types=[GROUP])
    with serve(sim) as url:
        book(url, [payload("twice@example.com"), payload("twice@example.com")])
        with pytest.raises(ReadbackError, match="cannot tell which"):
            read_back(url, payload("twice@example.com"))


# --- the engine: unknown rows, 409s -----------------------------------------------------------------

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"


def run_sample(ledger_url: str, **options: Any) -> ImportRun:
    run = ImportRun(prepare(SHEET, MAPPINGS / "jicoo.yaml"), RunOptions(ledger_url=ledger_url, rate=None, **options))
    try:
        asyncio.run(send_pending(run))
    finally:
        run.close()
    return run


def by_ref(run: ImportRun) -> dict[str, Outcome]:
    return {r.key[0]: run.outcomes[r.index] for r in run.plan.rows}


def test_a_409_for_an_unknown_row_triggers_the_read_back_and_finds_it(ledger_url, monkeypatch):
    """The first check reads a lagging index (the booking is not listed yet), so the row is resent;
    Jicoo answers 409, and the check after the 409 finds it: created with its uid, never rejected."""
    sim = JicooSimulator(faults=Faults(drop_after_store_rate=0.3, seed=11))
    seen: set[str] = set()

    @web.middleware
    async def lagging_index(request: web.Request, handler: Any) -> web.StreamResponse:
        if (request.method == "GET" and request.path == "/v1/bookings" and sim.lagging
                and request.query_string not in seen):
            seen.add(request.query_string)
            return web.json_response({"data": [], "totalCount": 0, "count": 0, "currentPage": 1})
        return await handler(request)

    sim.lagging = False
    with serve(sim, lagging_index) as url:
        use_sandbox("jicoo", url, monkeypatch)
        first = run_sample(ledger_url)
        unknown = [ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN]
        assert unknown and len(sim.bookings) == 54
        sim.faults = Faults()
        sim.lagging = True
        second = run_sample(ledger_url)
    for ref in unknown:
        o = by_ref(second)[ref]
        assert o.status is Status.CREATED and o.http_status == 409, (ref, o)
        assert o.provider_id in {b["uid"] for b in sim.bookings} and "found it" in o.message
    assert len(sim.bookings) == 54
    ledger = open_ledger(ledger_url)
    try:
        entries = ledger.get_many("jicoo", [r.ledger_key for r in second.plan.rows if r.key[0] in unknown])
    finally:
        ledger.close()
    assert {e.status for e in entries.values()} == {"created"}


def test_a_409_for_an_unknown_row_that_the_check_cannot_find_stays_unknown(ledger_url, monkeypatch):
    """An earlier run left a row unknown; someone else took its slot meanwhile. The check finds no booking
    of this guest, the resend gets 409: the row is unknown (look at the provider), not rejected."""
    sim = JicooSimulator()
    with serve(sim) as url:
        use_sandbox("jicoo", url, monkeypatch)
        plan = prepare(SHEET, MAPPINGS / "jicoo.yaml")
        row = plan.valid[0]
        ledger = open_ledger(ledger_url)
        try:
            ledger.start_run("earlier", input="x", mapping="y", provider="jicoo")
            ledger.record("jicoo", row.ledger_key, Outcome(Status.UNKNOWN, "dropped"), "earlier")
        finally:
            ledger.close()
        other = dict(row.payload, email="someone.else@example.com", name="Someone Else")
        book(url, [other])
        run = run_sample(ledger_url)
    o = by_ref(run)[row.key[0]]
    assert o.status is Status.UNKNOWN and o.http_status == 409, o
    assert "did not find it" in o.message and "look at the provider" in o.message
    assert sum(1 for b in sim.bookings if b["email"] == row.payload["email"]) == 0


def test_a_409_for_a_row_never_sent_before_stays_a_rejection(ledger_url, monkeypatch):
    sim = JicooSimulator()
    with serve(sim) as url:
        use_sandbox("jicoo", url, monkeypatch)
        run = run_sample(ledger_url)
    rejected = [o for o in run.outcomes if o.status is Status.REJECTED]
    assert len(rejected) == 1 and rejected[0].http_status == 409  # the sample's double-booked slot
    assert sim.requests["GET /v1/bookings"] == 0, "a fresh conflict needs no check"
