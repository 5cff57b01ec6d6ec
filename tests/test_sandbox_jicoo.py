"""The Jicoo simulator, read like Jicoo's docs, over a real loopback server; and the sample sheet."""
from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.sandbox import DEFAULT_API_KEY, DEFAULT_EVENT_TYPES, Faults, JicooSimulator, SimulatorServer
from flows.sandbox.faults import FaultInjector

KEY = DEFAULT_API_KEY
CONSULTATION, FOLLOW_UP, WORKSHOP = "mzgdPJVBb7RE", "k3Jd9QpLx2Wa", "T7vNc4RsY8eb"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "jicoo"
COLUMNS = [
    "Booking Ref", "Event Type", "Date", "Start Time", "Time Zone", "Guest Name",
    "Email", "Phone", "Company", "Meeting", "Notes", "Language",
]


def booking(**overrides: object) -> dict[str, object]:
    """The docs' Create Booking example (plus the schema's required ``locationId``)."""
    body: dict[str, object] = {
        "eventTypeId": CONSULTATION,
        "timeZone": "Asia/Tokyo",
        "startedAt": "2027-03-16T02:00:00.000Z",
        "email": "guest@example.com",
        "name": "john doe",
        "location": None,
        "locationId": "zoom",
    }
    body.update(overrides)
    return body


class Jicoo:
    """A running simulator, its base URL and a client that sends the API key."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.sim = JicooSimulator(faults=faults)
        self.server = SimulatorServer(self.sim)
        self.url = self.server.start()
        self.client = httpx.Client(base_url=self.url, headers={"X-Jicoo-Api-Key": KEY}, timeout=5)

    def close(self) -> None:
        self.client.close()
        self.server.stop()


@pytest.fixture
def jicoo() -> Iterator[Jicoo]:
    j = Jicoo()
    yield j
    j.close()


@pytest.fixture
def faulty() -> Iterator:
    """``faulty(Faults(...))`` -> a running :class:`Jicoo` with those fault knobs."""
    started: list[Jicoo] = []

    def make(faults: Faults) -> Jicoo:
        started.append(Jicoo(faults))
        return started[-1]

    yield make
    for j in started:
        j.close()


def hourly(i: int) -> dict[str, object]:
    """A valid booking on 2027-01-05 at (9 + i):00 UTC: a different slot for each ``i``."""
    return booking(startedAt=f"2027-01-05T{9 + i:02d}:00:00Z")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- Authentication: X-Jicoo-Api-Key -------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-Jicoo-Api-Key": "sk_live_wrong"}], ids=["missing", "unknown"])
def test_a_request_without_a_valid_api_key_is_401(jicoo: Jicoo, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=jicoo.url, headers=headers) as anonymous:
        r = anonymous.post("/v1/bookings", json=booking())
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthorized", "message": "Invalid API key"}}
    assert jicoo.sim.bookings == []
    assert jicoo.sim.requests == {"POST /v1/bookings": 1}


# --- Create Booking: POST /v1/bookings -----------------------------------------------------


def test_create_booking_returns_201_with_the_booking(jicoo: Jicoo) -> None:
    r = jicoo.client.post("/v1/bookings", json=booking(company="Acme", phoneNumber="07700 900123"))
    assert r.status_code == 201
    b = r.json()
    assert len(b["uid"]) == 12 and b["uid"].isalnum()
    assert b["status"] == "open"
    assert b["eventTypeId"] == CONSULTATION
    assert (b["name"], b["email"], b["timeZone"], b["locationId"]) == (
        "john doe", "guest@example.com", "Asia/Tokyo", "zoom"
    )
    assert (b["company"], b["phoneNumber"]) == ("Acme", "07700 900123")
    # answered at seconds, not the milliseconds we send (issue 11: a client must compare instants)
    assert b["startedAt"] == "2027-03-16T02:00:00Z"
    assert b["endedAt"] == "2027-03-16T02:30:00Z"
    assert b["hosts"] and b["createdAt"].endswith("Z") and b["updatedAt"].endswith("Z")
    assert jicoo.client.get(f"/v1/bookings/{b['uid']}").json() == {"data": b}


@pytest.mark.parametrize("event_type", list(DEFAULT_EVENT_TYPES.values()), ids=lambda et: et.name)
def test_endedAt_is_startedAt_plus_the_event_types_duration(jicoo: Jicoo, event_type) -> None:
    body = booking(eventTypeId=event_type.uid, startedAt="2027-01-05T09:30:00Z")
    r = jicoo.client.post("/v1/bookings", json=body)
    assert r.status_code == 201
    b = r.json()
    assert b["startedAt"] == "2027-01-05T09:30:00Z"  # millis optional on the way in, never on the way out
    assert utc(b["endedAt"]) - utc(b["startedAt"]) == timedelta(minutes=event_type.duration)


def test_missing_required_fields_are_400_listing_each(jicoo: Jicoo) -> None:
    r = jicoo.client.post("/v1/bookings", json={"eventTypeId": CONSULTATION, "name": "  ", "email": None})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == ["startedAt", "timeZone", "email", "name", "locationId"]
    assert {d["message"] for d in error["details"]} == {"is required"}
    assert jicoo.sim.bookings == []


@pytest.mark.parametrize("body", [b"[]", b"not json", b'"a string"', b""])
def test_a_body_that_is_not_a_json_object_is_400(jicoo: Jicoo, body: bytes) -> None:
    r = jicoo.client.post("/v1/bookings", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["details"] == [{"field": "body", "message": "must be a JSON object"}]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"email": "not-an-email"}, "email", "is not a valid email address"),
        ({"email": "a" * 250 + "@example.com"}, "email", "must be at most 255 characters"),
        ({"timeZone": "Mars/Olympus"}, "timeZone", "is not an IANA time zone"),
        ({"eventTypeId": "Massage"}, "eventTypeId", "is not a known event type"),
        ({"startedAt": "2027-03-16T11:00:00+09:00"}, "startedAt", "must be an ISO 8601 UTC date-time"),
        ({"startedAt": "2027-02-31T10:00:00Z"}, "startedAt", "must be an ISO 8601 UTC date-time"),
        ({"name": "n" * 65}, "name", "must be at most 64 characters"),
        ({"company": "c" * 33}, "company", "must be at most 32 characters"),
        ({"phoneNumber": "0" * 33}, "phoneNumber", "must be at most 32 characters"),
        ({"message": "m" * 2001}, "message", "must be at most 2000 characters"),
        ({"locationId": "moon"}, "locationId", "must be one of"),
        ({"locale": "fr"}, "locale", "must be ja or en"),
    ],
)
def test_semantic_errors_are_422(jicoo: Jicoo, overrides: dict, field: str, message: str) -> None:
    r = jicoo.client.post("/v1/bookings", json=booking(**overrides))
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unprocessable_entity"
    assert [d["field"] for d in error["details"]] == [field]
    assert error["details"][0]["message"].startswith(message)
    assert jicoo.sim.bookings == []


def test_every_problem_is_listed_at_once(jicoo: Jicoo) -> None:
    r = jicoo.client.post("/v1/bookings", json=booking(email="nope", timeZone="Mars/Olympus", name="n" * 65))
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["timeZone", "email", "name"]


def test_booking_a_taken_slot_is_409(jicoo: Jicoo) -> None:
    assert jicoo.client.post("/v1/bookings", json=booking()).status_code == 201
    # the same instant written without millis, by another guest
    same_instant = booking(startedAt="2027-03-16T02:00:00Z", email="b@example.com")
    again = jicoo.client.post("/v1/bookings", json=same_instant)
    assert again.status_code == 409
    assert again.json() == {"error": {"code": "conflict", "message": "The slot is no longer available"}}
    # another event type at the same time is a different slot
    assert jicoo.client.post("/v1/bookings", json=booking(eventTypeId=WORKSHOP)).status_code == 201
    assert len(jicoo.sim.bookings) == 2


def test_a_cancelled_booking_frees_its_slot(jicoo: Jicoo) -> None:
    uid = jicoo.client.post("/v1/bookings", json=booking()).json()["uid"]
    cancelled = jicoo.client.post(f"/v1/bookings/{uid}/cancel", json={"cancelReason": "moved"})
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancel"
    assert jicoo.client.post("/v1/bookings", json=booking()).status_code == 201


# --- List / Get Booking, List Event Types ------------------------------------------------------


def _book_days(jicoo: Jicoo, days: int) -> list[str]:
    starts = [f"2027-01-{d:02d}T10:00:00Z" for d in range(5, 5 + days)]  # as the simulator answers them
    for i, start in enumerate(starts):
        r = jicoo.client.post("/v1/bookings", json=booking(startedAt=start, email=f"g{i}@example.com"))
        assert r.status_code == 201
    return starts


def test_list_bookings_filters_by_a_range_on_start_and_end(jicoo: Jicoo) -> None:
    starts = _book_days(jicoo, 5)  # 30-minute consultations at 10:00 on five days
    r = jicoo.client.get("/v1/bookings", params={"startedAt": starts[1], "endedAt": starts[3]})
    assert r.status_code == 200
    page = r.json()
    # startedAt bounds a booking's start, endedAt its end: the 3rd day's booking ends after starts[3]
    assert [utc(b["startedAt"]) for b in page["data"]] == [utc(s) for s in starts[1:3]]
    assert (page["totalCount"], page["count"], page["currentPage"]) == (2, 2, 1)
    # a zero-width window at a booking's start finds nothing: it ends later
    zero = jicoo.client.get("/v1/bookings", params={"startedAt": starts[1], "endedAt": starts[1]}).json()
    assert zero["totalCount"] == 0
    later = jicoo.client.get("/v1/bookings", params={"startedAt": starts[1], "endedAt": "2027-01-08T10:30:00Z"}).json()
    assert later["totalCount"] == 3  # ends included


@pytest.mark.parametrize("mode, found", [
    ("within", 0),  # startedAt bounds the start, endedAt the end (the default)
    ("start", 1),  # startedAt..endedAt bounds the start only
    ("overlap", 0),  # half-open overlap: a zero-width window overlaps nothing
    ("text", 0),  # the stored text against the query's text: "...00Z" > "...00.000Z"
])
def test_the_list_filter_modes_answer_a_zero_width_window_differently(mode: str, found: int) -> None:
    sim = JicooSimulator(list_filter=mode)
    with SimulatorServer(sim) as url, httpx.Client(base_url=url, headers={"X-Jicoo-Api-Key": KEY}) as client:
        assert client.post("/v1/bookings", json=booking()).status_code == 201
        t = "2027-03-16T02:00:00.000Z"
        assert client.get("/v1/bookings", params={"startedAt": t, "endedAt": t}).json()["totalCount"] == found
        wide = client.get("/v1/bookings",
                          params={"startedAt": "2027-03-16T01:00:00Z", "endedAt": "2027-03-17T02:00:00Z"})
        assert wide.json()["totalCount"] == 1, "a window around the booking finds it in every mode"


def test_timestamps_can_be_answered_in_the_bookings_own_offset() -> None:
    sim = JicooSimulator(timestamps="offset")
    with SimulatorServer(sim) as url, httpx.Client(base_url=url, headers={"X-Jicoo-Api-Key": KEY}) as client:
        b = client.post("/v1/bookings", json=booking()).json()
    assert (b["startedAt"], b["endedAt"]) == ("2027-03-16T11:00:00+09:00", "2027-03-16T11:30:00+09:00")


def test_an_event_type_with_capacity_holds_that_many_guests_per_start() -> None:
    from flows.sandbox import EventType

    sim = JicooSimulator(event_types=[EventType("GRP", "Group workshop", 60, capacity=3)])
    with SimulatorServer(sim) as url, httpx.Client(base_url=url, headers={"X-Jicoo-Api-Key": KEY}) as client:
        codes = [client.post("/v1/bookings", json=booking(eventTypeId="GRP", email=f"g{i}@example.com")).status_code
                 for i in range(4)]
        assert codes == [201, 201, 201, 409]
        first = client.get("/v1/bookings", params={"perPage": 2}).json()
    assert (first["totalCount"], first["count"]) == (3, 2)


def test_list_bookings_pages_sorts_and_filters_by_status(jicoo: Jicoo) -> None:
    starts = _book_days(jicoo, 5)
    second = jicoo.client.get("/v1/bookings", params={"page": 2, "perPage": 2}).json()
    assert [b["startedAt"] for b in second["data"]] == starts[2:4]
    assert (second["totalCount"], second["count"], second["currentPage"]) == (5, 2, 2)
    newest_first = jicoo.client.get("/v1/bookings", params={"sort": "desc", "order": "createdAt"}).json()
    assert [b["startedAt"] for b in newest_first["data"]] == starts[::-1]
    uid = newest_first["data"][0]["uid"]
    jicoo.client.post(f"/v1/bookings/{uid}/cancel")
    cancelled = jicoo.client.get("/v1/bookings", params={"status": "cancel"}).json()
    assert [b["uid"] for b in cancelled["data"]] == [uid]
    assert jicoo.client.get("/v1/bookings", params={"status": "open"}).json()["totalCount"] == 4


@pytest.mark.parametrize(
    "params",
    [{"perPage": 101}, {"page": 0}, {"page": "x"}, {"status": "gone"}, {"startedAt": "yesterday"}, {"sort": "up"}],
)
def test_list_bookings_rejects_bad_parameters_with_400(jicoo: Jicoo, params: dict) -> None:
    r = jicoo.client.get("/v1/bookings", params=params)
    assert r.status_code == 400
    assert [d["field"] for d in r.json()["error"]["details"]] == list(params)


def test_get_booking_of_an_unknown_uid_is_404(jicoo: Jicoo) -> None:
    r = jicoo.client.get("/v1/bookings/doesnotexist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_list_event_types(jicoo: Jicoo) -> None:
    page = jicoo.client.get("/v1/event_types").json()
    assert {(et["uid"], et["name"], et["duration"]) for et in page["data"]} == {
        (CONSULTATION, "Initial consultation", 30),
        (FOLLOW_UP, "Follow-up call", 15),
        (WORKSHOP, "Workshop", 60),
    }
    assert (page["totalCount"], page["count"], page["currentPage"]) == (3, 3, 1)


# --- Fault knobs ------------------------------------------------------------------------------


def test_above_the_rate_limit_writes_get_429_with_retry_after(faulty) -> None:
    j = faulty(Faults(rate_limit=3))
    answers = [j.client.post("/v1/bookings", json=hourly(i)) for i in range(8)]
    codes = [r.status_code for r in answers]
    assert codes[:3] == [201, 201, 201]
    limited = [r for r in answers if r.status_code == 429]
    assert limited, codes
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert len(j.sim.bookings) == codes.count(201)  # a 429 stores nothing
    assert j.sim.fault_counts["rate_limited"] == len(limited)
    assert j.client.get("/v1/bookings").status_code == 200  # reads are not rate limited


def test_the_rate_window_slides() -> None:
    injector = FaultInjector(Faults(rate_limit=2))
    assert injector.admit(10.0) is None and injector.admit(10.5) is None
    assert injector.admit(10.9) == 1
    assert injector.admit(11.01) is None  # the request at 10.0 left the window


def test_unavailable_is_503_and_stores_nothing(faulty) -> None:
    j = faulty(Faults(unavailable_rate=1))
    r = j.client.post("/v1/bookings", json=booking())
    assert r.status_code == 503
    assert j.sim.bookings == [] and j.sim.fault_counts["unavailable"] == 1


def test_error_after_store_is_500_but_the_booking_exists(faulty) -> None:
    j = faulty(Faults(error_after_store_rate=1))
    r = j.client.post("/v1/bookings", json=booking())
    assert r.status_code == 500
    assert len(j.sim.bookings) == 1
    # a blind retry now collides with the booking that was stored
    assert j.client.post("/v1/bookings", json=booking()).status_code == 409


def test_timeout_after_store_stores_then_stalls_past_the_client_timeout(faulty) -> None:
    j = faulty(Faults(timeout_after_store_rate=1, stall_seconds=1))
    with pytest.raises(httpx.ReadTimeout):
        j.client.post("/v1/bookings", json=booking(), timeout=0.2)
    assert len(j.sim.bookings) == 1
    assert j.sim.fault_counts["timeout_after_store"] == 1


def test_drop_after_store_disconnects_without_a_response_but_stores(faulty) -> None:
    j = faulty(Faults(drop_after_store_rate=1))
    with pytest.raises(httpx.RemoteProtocolError):
        j.client.post("/v1/bookings", json=booking())
    assert len(j.sim.bookings) == 1
    assert j.sim.fault_counts["drop_after_store"] == 1


def test_after_store_faults_leave_refusals_alone(faulty) -> None:
    j = faulty(Faults(error_after_store_rate=1))
    assert j.client.post("/v1/bookings", json=booking(email="nope")).status_code == 422


def test_a_seed_makes_the_faults_reproducible(faulty) -> None:
    def run() -> list[int]:
        j = faulty(Faults(unavailable_rate=0.5, seed=7))
        return [j.client.post("/v1/bookings", json=hourly(i)).status_code for i in range(10)]

    first = run()
    assert first == run() and set(first) == {201, 503}


def test_latency_delays_reads_too(faulty) -> None:
    j = faulty(Faults(latency_ms=150))
    started = time.perf_counter()
    assert j.client.get("/v1/event_types").status_code == 200
    assert time.perf_counter() - started >= 0.15


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"latency-ms": "x"}, "must be a number"),
        ({"lag": 1}, "unknown fault knob"),
        ({"unavailable_rate": 0.7, "drop_after_store_rate": 0.7}, "add up to at most 1"),
        ({"rate_limit": 0}, "rate_limit must be > 0"),
    ],
)
def test_bad_fault_knobs_are_refused(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults.from_dict(data)


def test_fault_knobs_from_cli_style_keys_and_the_environment() -> None:
    cli = {"latency-ms": "20", "rate-limit": "none", "seed": "3"}
    assert Faults.from_dict(cli) == Faults(latency_ms=20, seed=3)
    env = {"SANDBOX_RATE_LIMIT": "50", "SANDBOX_DROP_AFTER_STORE_RATE": "0.1", "SANDBOX_SEED": ""}
    assert Faults.from_env(environ=env) == Faults(rate_limit=50, drop_after_store_rate=0.1)


# --- Sandbox control routes -------------------------------------------------------------------


def test_sandbox_routes_set_faults_show_state_and_reset(jicoo: Jicoo) -> None:
    anonymous = httpx.Client(base_url=jicoo.url)  # control routes need no key
    assert anonymous.post("/_sandbox/faults", json={"unavailable_rate": 1}).status_code == 200
    assert jicoo.client.post("/v1/bookings", json=booking()).status_code == 503
    assert anonymous.post("/_sandbox/faults", json={"nonsense": 1}).status_code == 400
    assert anonymous.post("/_sandbox/faults", json={}).status_code == 200  # all knobs off again
    assert jicoo.client.post("/v1/bookings", json=booking()).status_code == 201
    state = anonymous.get("/_sandbox/state").json()
    assert state["counts"]["bookings"] == 1 and state["counts"]["faults"] == {"unavailable": 1}
    assert state["counts"]["requests"] == {"POST /v1/bookings": 2}
    assert anonymous.post("/_sandbox/reset").status_code == 200
    assert anonymous.get("/_sandbox/state").json()["counts"]["bookings"] == 0
    anonymous.close()


# --- The server itself ------------------------------------------------------------------------


def test_the_server_binds_loopback_and_stops_clean() -> None:
    # how fast it starts is not asserted here (a busy machine is slow at anything): bench/ measures speed
    threads_before = threading.active_count()
    with SimulatorServer(JicooSimulator()) as url:
        assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
        with SimulatorServer(JicooSimulator()) as other:
            assert other != url
    assert threading.active_count() == threads_before


def test_stop_does_not_wait_for_a_stalled_request() -> None:
    sim = JicooSimulator(faults=Faults(timeout_after_store_rate=1, stall_seconds=600))
    server = SimulatorServer(sim)
    url = server.start()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/bookings", json=booking(), headers={"X-Jicoo-Api-Key": KEY}, timeout=0.2)
    started = time.perf_counter()
    server.stop()
    # not a speed bound: waiting for the stall would take 600 s; 60 s leaves room for any busy machine
    assert time.perf_counter() - started < 60
    with pytest.raises(RuntimeError):
        _ = server.url


# --- Sample data ------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_sample_files_have_the_documented_columns_and_rows() -> None:
    raw = (SAMPLE_DIR / "bookings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = _csv_rows(SAMPLE_DIR / "bookings.csv")
    assert list(rows[0]) == COLUMNS and len(rows) >= 56
    sheet = pd.read_excel(
        SAMPLE_DIR / "bookings.xlsx", sheet_name="Bookings", dtype=object, engine="openpyxl"
    )
    assert list(sheet.columns) == COLUMNS and len(sheet) == len(rows)
    dates = sheet["Date"].map(lambda v: v.strftime("%d/%m/%Y") if isinstance(v, datetime) else v)
    assert list(dates) == [r["Date"] for r in rows]  # the same rows, some as real date cells
    assert 0.25 < sheet["Date"].map(lambda v: isinstance(v, datetime)).mean() < 0.4
    phones = sheet["Phone"].dropna()
    assert all(isinstance(p, str) and p.startswith("0") for p in phones)


def test_the_sample_rows_exercise_the_documented_problems() -> None:
    rows = {r["Booking Ref"]: r for r in _csv_rows(SAMPLE_DIR / "bookings.csv")}
    assert rows["JB-1007"]["Email"] == "not-an-email"
    assert rows["JB-1013"]["Guest Name"] == ""
    assert rows["JB-1019"]["Event Type"] == "Massage"
    assert rows["JB-1026"]["Date"] == "31/02/2027"
    assert rows["JB-1033"]["Time Zone"] == "Mars/Olympus"
    assert any(r["Notes"].startswith('=HYPERLINK("http://example.invalid","x")') for r in rows.values())
    assert {"Zoë Brontë", "山田 太郎"} <= {r["Guest Name"] for r in rows.values()}
    names = {et.name: et.uid for et in DEFAULT_EVENT_TYPES.values()}
    slots: dict[tuple[str, datetime], list[str]] = {}
    for ref, r in rows.items():
        try:
            zone = zoneinfo.ZoneInfo(r["Time Zone"] or "Europe/London")
            local = datetime.strptime(f"{r['Date']} {r['Start Time']}", "%d/%m/%Y %H:%M")
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            continue
        if r["Event Type"] in names:
            start = local.replace(tzinfo=zone).astimezone(UTC)
            assert start > datetime(2027, 1, 4, tzinfo=UTC)
            slots.setdefault((names[r["Event Type"]], start), []).append(ref)
    assert [refs for refs in slots.values() if len(refs) > 1] == [["JB-1022", "JB-1045"]]


def test_make_sample_regenerates_identical_csv(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SAMPLE_DIR / "make_sample.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )
    assert "60 rows" in done.stdout
    assert (tmp_path / "bookings.csv").read_bytes() == (SAMPLE_DIR / "bookings.csv").read_bytes()


def test_the_sandbox_command_serves_the_fault_knobs_it_was_given(tmp_path) -> None:
    import re

    log = (tmp_path / "out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "flows", "sandbox", "jicoo", "--port", "0", "--latency-ms", "5",
                             "--latency-jitter-ms", "2"], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"http://127\.0\.0\.1:\d+", (tmp_path / "out").read_text(errors="replace"))
            url = found.group(0) if found else time.sleep(0.05)
        assert url, (tmp_path / "out").read_text()
        faults = httpx.get(f"{url}/_sandbox/state", timeout=10).json()["faults"]
        assert faults["latency_ms"] == 5 and faults["latency_jitter_ms"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
