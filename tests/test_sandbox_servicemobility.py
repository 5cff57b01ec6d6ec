"""The ServiceMobility simulator, read like ServicePower's docs, over a real loopback server; and the sample sheets."""
from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.sandbox import Faults, ServiceMobilitySimulator, SimulatorServer
from flows.sandbox.servicemobility import (
    DEFAULT_ORIGINAL_ORDERS,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    make_jwt,
    read_jwt,
)

API = "/seiapi/v3/trans"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_data" / "servicemobility"
ORIGINAL = DEFAULT_ORIGINAL_ORDERS[0]


class SM:
    """A running simulator, its URL, and a client already logged in."""

    def __init__(self, **kwargs) -> None:
        self.sim = ServiceMobilitySimulator(**kwargs)
        self.server = SimulatorServer(self.sim)
        self.url = self.server.start()
        self.anon = httpx.Client(base_url=self.url, timeout=5)
        token = self.anon.post("/createjwt",
                               json={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}).json()["token"]
        self.client = httpx.Client(base_url=self.url, timeout=5, headers={"x-access-token": token})

    def search(self, start: str, end: str, **body) -> httpx.Response:
        return self.client.post(f"{API}/Appointments/OpenSlots", json=search_body(start, end, **body))

    def book(self, slot: dict, original: str = ORIGINAL, **body) -> httpx.Response:
        return self.client.post(f"{API}/WorkOrder/{original}/Followup", json=book_body(slot, original, **body))

    def close(self) -> None:
        self.client.close()
        self.anon.close()
        self.server.stop()


def search_body(start: str, end: str, **overrides) -> dict:
    body = {"Account": {"AccountNum": "ACC-70001"}, "OrderType": "1001", "OriginalOrderNum": ORIGINAL,
            "Location": {"Address": {"AddrLine1": "1 Main St", "City": "Chicago"}},
            "TimeConstraints": [{"Type": "Available", "Period": {"Start": start, "End": end}}]}
    body.update(overrides)
    return body


def book_body(slot: dict, original: str = ORIGINAL, **overrides) -> dict:
    body = {**search_body("x", "y"), "OriginalOrderNum": original, "TimeConstraints": [slot]}
    body.update(overrides)
    return body


@pytest.fixture
def sm() -> Iterator[SM]:
    s = SM()
    yield s
    s.close()


# --- login and tokens ----------------------------------------------------------------------------------


def _claims(token: str) -> tuple[dict, dict]:
    head, body, _ = token.split(".")
    dec = lambda t: json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)))  # noqa: E731
    return dec(head), dec(body)


def test_createjwt_issues_an_hs256_token_with_iat_and_exp(sm):
    r = sm.anon.post("/createjwt", json={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD})
    assert r.status_code == 200
    token = r.json()["token"]
    header, claims = _claims(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert claims["sub"] == DEFAULT_USERNAME and claims["exp"] - claims["iat"] == pytest.approx(3600, abs=0.01)
    # the signature is HMAC-SHA256 over "header.claims" with the simulator's key
    signing, sig = token.rsplit(".", 1)
    expected = base64.urlsafe_b64encode(
        hmac.new(sm.sim._secret, signing.encode(), hashlib.sha256).digest()).rstrip(b"=")
    assert sig.encode() == expected
    assert read_jwt(token, sm.sim._secret)[0] == claims
    assert sm.sim.logins == 2  # the fixture's login and this one


@pytest.mark.parametrize("body", [{"username": DEFAULT_USERNAME, "password": "wrong"},
                                  {"username": "nobody", "password": "x"}, {"username": DEFAULT_USERNAME}])
def test_createjwt_refuses_bad_credentials_with_invalid_logon(sm, body):
    r = sm.anon.post("/createjwt", json=body)
    assert r.status_code == 401 and r.text == "Invalid Logon"
    assert sm.sim.login_failures == 1


def test_createjwt_with_a_body_that_is_not_json_is_a_500_with_text(sm):
    r = sm.anon.post("/createjwt", content=b"username=x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 500 and "username" in r.text and r.headers["Content-Type"].startswith("text/plain")


def test_every_api_call_needs_a_valid_unexpired_token(sm):
    path = f"{API}/WorkOrder/{ORIGINAL}"
    assert sm.client.get(path).status_code == 200
    missing = sm.anon.get(path)
    assert missing.status_code == 401 and "x-access-token" in missing.text
    forged = make_jwt({"sub": DEFAULT_USERNAME, "exp": time.time() + 60}, b"not the key")
    assert (sm.anon.get(path, headers={"x-access-token": forged}).text
            == "Invalid Logon: the token's signature is not valid")
    expired = sm.sim.token(lifetime=-1)
    assert sm.anon.get(path, headers={"x-access-token": expired}).text == "Invalid Logon: the token has expired"
    assert sm.sim.tokens_refused == 3


def test_short_lived_tokens_expire():
    """A 0.3 s token works until its lifetime has passed on the simulator's clock, then is refused. The clock
    is the test's: it used to sleep 0.35 s, and a busy machine made the token expire before its first use."""
    now = [1_800_000_000.0]
    s = SM(token_lifetime=0.3, clock=lambda: now[0])
    try:
        path = f"{API}/WorkOrder/{ORIGINAL}"
        assert s.client.get(path).status_code == 200
        now[0] += 0.29
        assert s.client.get(path).status_code == 200  # still within its lifetime
        now[0] += 0.02
        r = s.client.get(path)
        assert r.status_code == 401 and r.text == "Invalid Logon: the token has expired"
        assert s.sim.tokens_refused == 1
        # a new login gets a token that lives 0.3 s from the simulator's now
        s.client.headers["x-access-token"] = s.anon.post(
            "/createjwt", json={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}).json()["token"]
        assert s.client.get(path).status_code == 200
        assert _claims(s.client.headers["x-access-token"])[1]["exp"] == pytest.approx(now[0] + 0.3, abs=0.001)
    finally:
        s.close()


def test_revoked_tokens_are_refused(sm):
    sm.sim.revoke_tokens()
    assert sm.client.get(f"{API}/WorkOrder/{ORIGINAL}").status_code == 401


# --- appointment search -----------------------------------------------------------------------------------


def test_open_slots_are_the_calendar_in_utc_earliest_first(sm):
    # Tuesday 9 March 2027, Chicago is UTC-6: 08:00-12:00 local is 14:00-18:00Z; three technicians, two slots each
    r = sm.search("2027-03-09T14:00:00.000Z", "2027-03-09T18:00:00.000Z")
    assert r.status_code == 200
    body = r.json()
    assert body["StatusMsg"] == ""
    slots = body["TimeConstraints"]
    assert [s["Period"]["Start"] for s in slots] == ["2027-03-09T14:00:00.000Z"] * 3 + ["2027-03-09T16:00:00.000Z"] * 3
    assert slots[0] == {"ID": "jlopez-20270309-0800", "Desc": "Julia Lopez", "Type": "Appointment",
                        "Period": {"Start": "2027-03-09T14:00:00.000Z", "End": "2027-03-09T16:00:00.000Z"}}
    # after the clocks go forward (14 March) 08:00 Chicago is 13:00Z
    later = sm.search("2027-03-16T13:00:00.000Z", "2027-03-16T15:00:00.000Z").json()["TimeConstraints"]
    assert {s["Period"]["Start"] for s in later} == {"2027-03-16T13:00:00.000Z"}


def test_open_slots_offer_overlapping_slots_and_honour_unavailable_periods(sm):
    # 09:00-11:00 local: the 08-10 and 10-12 slots overlap it without fitting inside; they are offered
    overlapping = sm.search("2027-03-09T15:00:00.000Z", "2027-03-09T17:00:00.000Z").json()["TimeConstraints"]
    assert len(overlapping) == 6
    body = search_body("2027-03-09T14:00:00.000Z", "2027-03-09T18:00:00.000Z")
    body["TimeConstraints"].append({"Type": "Unavailable", "Period": {"Start": "2027-03-09T14:00:00.000Z",
                                                                      "End": "2027-03-09T16:00:00.000Z"}})
    rest = sm.client.post(f"{API}/Appointments/OpenSlots", json=body).json()["TimeConstraints"]
    assert {s["Period"]["Start"] for s in rest} == {"2027-03-09T16:00:00.000Z"}


def test_open_slots_on_a_saturday_are_none(sm):
    body = sm.search("2027-03-13T14:00:00.000Z", "2027-03-13T18:00:00.000Z").json()
    assert body == {"StatusMsg": "No open appointment slots in the requested period", "TimeConstraints": []}


@pytest.mark.parametrize(("change", "text"), [
    ({"TimeConstraints": []}, "TimeConstraints is required"),
    ({"TimeConstraints": [{"Period": {"Start": "2027-03-09 14:00", "End": "2027-03-09T18:00:00.000Z"}}]},
     "TimeConstraints[0].Period.Start '2027-03-09 14:00' is not a UTC date-time"),
    ({"OrderType": "9999"}, "OrderType '9999' is not a Work Order Type"),
    ({"Account": {}}, "Account is required"),
])
def test_a_bad_search_is_a_500_with_a_descriptive_text(sm, change, text):
    r = sm.client.post(f"{API}/Appointments/OpenSlots", json=search_body("2027-03-09T14:00:00.000Z",
                                                                          "2027-03-09T18:00:00.000Z", **change))
    assert r.status_code == 500 and text in r.text


# --- follow-up booking -----------------------------------------------------------------------------------------


def first_slot(sm: SM) -> dict:
    return sm.search("2027-03-09T14:00:00.000Z", "2027-03-09T18:00:00.000Z").json()["TimeConstraints"][0]


def test_booking_a_slot_returns_an_order_num_and_the_slot_leaves_the_calendar(sm):
    slot = first_slot(sm)
    r = sm.book(slot)
    assert r.status_code == 200 and r.json() == {"OrderNum": f"{ORIGINAL}-F1", "OrderedParts": []}
    assert first_slot(sm)["ID"] != slot["ID"]
    followup = sm.sim.followups[0]
    assert followup["OriginalOrderNum"] == ORIGINAL and followup["SlotID"] == slot["ID"]
    assert (followup["Dispatch"]["UserName"] == "jlopez"
            and followup["Dispatch"]["PlannedStartDate"] == slot["Period"]["Start"])
    stored = sm.client.get(f"{API}/WorkOrder/{ORIGINAL}-F1").json()
    assert stored["Dispatch"]["DispatchStatus"] == 3
    # the same slot again: ServiceMobility's free-text 500
    again = sm.book(slot)
    assert again.status_code == 500 and again.text == "Slot no longer available"
    assert again.headers["Content-Type"].startswith("text/plain")
    assert len(sm.sim.followups) == 1


def test_a_slot_without_id_is_matched_by_its_period(sm):
    slot = first_slot(sm)
    del slot["ID"]
    assert sm.book(slot).status_code == 200
    assert sm.book(slot).json()["OrderNum"] == f"{ORIGINAL}-F2"  # another technician is free then
    assert sm.sim.followups[1]["SlotID"].startswith("mchen-")


@pytest.mark.parametrize(("change", "text"), [
    ({"original": "WO-269999"}, "Work Order WO-269999 does not exist"),
    ({"OriginalOrderNum": "WO-260102"}, f"OriginalOrderNum 'WO-260102' does not match Work Order {ORIGINAL}"),
    ({"Location": {"Name": "no address"}}, "Location.Address is required"),
    ({"slot": {"ID": "nobody-20270309-0800",
               "Period": {"Start": "2027-03-09T14:00:00.000Z", "End": "2027-03-09T16:00:00.000Z"}}},
     "Appointment slot nobody-20270309-0800 does not exist"),
    ({"slot": {"ID": "jlopez-20270309-0800",
               "Period": {"Start": "2027-03-09T15:00:00.000Z", "End": "2027-03-09T16:00:00.000Z"}}},
     "not the period requested"),
])
def test_a_refused_booking_is_a_500_with_a_descriptive_text_and_books_nothing(sm, change, text):
    slot = change.pop("slot", first_slot(sm))
    original = change.pop("original", ORIGINAL)
    r = sm.book(slot, original, **change)
    assert r.status_code == 500 and text in r.text
    assert sm.sim.followups == []


def test_race_knobs_take_the_slot_before_the_booking_lands(sm):
    slot = first_slot(sm)
    assert sm.sim.take_slot(slot["ID"]) is True and sm.sim.take_slot(slot["ID"]) is False
    assert sm.book(slot).text == "Slot no longer available"
    nxt = first_slot(sm)
    sm.sim.steal_next(1)
    assert sm.book(nxt).text == "Slot no longer available"
    seen = []
    sm.sim.before_book = lambda sim, original, body: seen.append((original, body["TimeConstraints"][0]["ID"]))
    third = first_slot(sm)
    assert sm.book(third).status_code == 200
    assert seen == [(ORIGINAL, third["ID"])]
    assert [s["BookedBy"] for s in sm.sim.slots() if s["ID"] in (slot["ID"], nxt["ID"])] == ["another client"] * 2


def test_fail_bookings_answers_500_after_or_without_booking(sm):
    sm.sim.fail_bookings(1, "Internal error", book=False)
    slot = first_slot(sm)
    assert sm.book(slot).text == "Internal error"
    assert first_slot(sm)["ID"] == slot["ID"] and sm.sim.followups == []
    sm.sim.fail_bookings(1, "Internal error")
    assert sm.book(slot).text == "Internal error"
    assert first_slot(sm)["ID"] != slot["ID"] and len(sm.sim.followups) == 1


# --- work orders --------------------------------------------------------------------------------------------------


def work_order(**overrides) -> dict:
    body = {"WorkOrderNum": "WO-1", "OrderType": "1002", "Account": {"AccountNum": "ACC-70001"},
            "Dispatch": {"PlannedStartDate": "2027-03-09T14:00:00.000Z", "PlannedDur": 90, "UserName": "jlopez"}}
    body.update(overrides)
    return body


#: Book Job Object [C]: "Only AccountNum means a managed account; the system expands it and errors if it does not
#: exist. Any extra property means an ad-hoc account: not verified, not created, passed straight through."
#: Errors are a 500 with "a descriptive reason" [C]. (account, status, reason or None)
ACCOUNTS = [
    ({"AccountNum": "ACC-70001"}, 201, None),
    ({"AccountNum": "ACC-79999"}, 500, "Account ACC-79999 does not exist."),
    ({"AccountNum": "ACC-79999", "Name": "Walk-in customer"}, 201, None),  # ad-hoc: passed through unverified
    ({"Name": "Walk-in customer"}, 201, None),
    ({}, 500, "Account is required (an AccountNum, or an ad-hoc account with a Name)"),
]


@pytest.mark.parametrize(("account", "status", "reason"), ACCOUNTS)
def test_a_managed_account_must_exist_and_the_refusal_is_a_500_with_its_reason(sm, account, status, reason):
    r = sm.client.put(f"{API}/WorkOrder/WO-1", json=work_order(Account=account))
    assert r.status_code == status
    if reason is not None:
        assert r.headers["content-type"].startswith("text/plain") and r.text == reason
        assert sm.sim.work_orders.get("WO-1") is None and not sm.sim.put_counts, "nothing stored"
        booked = sm.book(first_slot(sm), Account=account)
        assert (booked.status_code, booked.text) == (500, reason) and sm.sim.followups == []


def test_a_tenant_without_an_account_list_takes_every_account():
    s = SM(accounts=None)
    try:
        assert s.client.put(f"{API}/WorkOrder/WO-1",
                            json=work_order(Account={"AccountNum": "ANY-1"})).status_code == 201
    finally:
        s.close()


def test_put_inserts_then_updates_by_the_callers_number(sm):
    first = sm.client.put(f"{API}/WorkOrder/WO-1", json=work_order())
    assert first.status_code == 201 and first.headers["Location"] == f"{API}/WorkOrder/WO-1"
    assert first.json()["Dispatch"]["DispatchStatus"] == 3
    second = sm.client.put(f"{API}/WorkOrder/WO-1", json=work_order(Desc="changed"))
    assert second.status_code == 200 and second.json()["Desc"] == "changed"
    assert sm.sim.put_counts == {"WO-1": 2} and len(sm.sim.bookings) == 1
    assert sm.client.get(f"{API}/WorkOrder/WO-1").json()["Desc"] == "changed"
    undispatched = sm.client.put(f"{API}/WorkOrder/WO-2",
                                 json=work_order(WorkOrderNum="WO-2", Dispatch={"UserName": "mchen"}))
    assert undispatched.json()["Dispatch"]["DispatchStatus"] == 2


def test_get_of_an_unknown_work_order_is_404(sm):
    r = sm.client.get(f"{API}/WorkOrder/NOPE")
    assert r.status_code == 404 and r.text == "Work Order NOPE was not found"


@pytest.mark.parametrize(("change", "text"), [
    ({"WorkOrderNum": "WO-2"}, "WorkOrderNum 'WO-2' in the body does not match WO-1 in the URL"),
    ({"OrderType": None}, "OrderType is required"),
    ({"Dispatch": {"PlannedStartDate": "03/09/2027 08:00"}},
     "Dispatch.PlannedStartDate '03/09/2027 08:00' is not a UTC"),
    ({"Dispatch": {"PlannedDur": "90"}}, "Dispatch.PlannedDur '90' must be a whole number of minutes"),
])
def test_a_bad_work_order_is_a_500_with_text_and_stores_nothing(sm, change, text):
    r = sm.client.put(f"{API}/WorkOrder/WO-1", json=work_order(**change))
    assert r.status_code == 500 and text in r.text
    assert sm.sim.put_counts == {}


# --- faults and control routes --------------------------------------------------------------------------------------


def test_faults_hit_the_api_but_never_the_login():
    s = SM(faults=Faults(unavailable_rate=1.0))
    try:
        r = s.anon.post("/createjwt", json={"username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD})
        assert r.status_code == 200
        assert s.client.put(f"{API}/WorkOrder/WO-1", json=work_order()).status_code == 503
        assert s.sim.put_counts == {}
        s.sim.faults = Faults(error_after_store_rate=1.0)
        assert s.client.put(f"{API}/WorkOrder/WO-1", json=work_order()).status_code == 500
        assert s.sim.put_counts == {"WO-1": 1}, "stored, then the 500: the dangerous case"
        assert s.sim.fault_counts == {"unavailable": 1, "error_after_store": 1}
    finally:
        s.close()


def test_control_routes(sm):
    slot = first_slot(sm)
    assert sm.anon.post("/_sandbox/take", json={"ID": slot["ID"]}).json() == {"taken": True}
    assert sm.anon.post("/_sandbox/steal", json={"next": 2}).json() == {"steal_next": 2}
    assert sm.anon.post("/_sandbox/faults", json={"latency_ms": 1}).status_code == 200
    state = sm.anon.get("/_sandbox/state").json()
    assert state["counts"]["slots_booked"] == 1 and state["faults"]["latency_ms"] == 1
    assert state["counts"]["work_orders"] == len(DEFAULT_ORIGINAL_ORDERS)
    assert sm.anon.post("/_sandbox/reset").status_code == 200
    assert sm.sim.state()["counts"]["slots_booked"] == 0 and sm.sim.faults == Faults()


# --- the sample sheets -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    """The sample sheets written again by their generator, into a scratch folder."""
    spec = importlib.util.spec_from_file_location("sm_make_sample", SAMPLES / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("servicemobility-sample")
    module.main(["--out", str(out)])
    return out


@pytest.mark.parametrize("name", ["workorders.xlsx", "followups.xlsx"])
def test_sample_sheets_are_regenerated_identically(name, regenerated, capsys):
    fresh = pd.read_excel(regenerated / name, dtype=object, keep_default_na=False, engine="calamine")
    shipped = pd.read_excel(SAMPLES / name, dtype=object, keep_default_na=False, engine="calamine")
    pd.testing.assert_frame_equal(fresh, shipped)
    assert len(shipped) >= 30


def test_sample_followups_refer_to_the_simulators_work_orders_and_use_local_times():
    df = pd.read_excel(SAMPLES / "followups.xlsx", dtype=object, keep_default_na=False, engine="calamine")
    unknown = set(df["Original Order"]) - set(DEFAULT_ORIGINAL_ORDERS)
    assert unknown == {"WO-269999"}, "one row books off a work order ServiceMobility does not have"
    assert {"America/Chicago", "America/Denver", ""} == set(df["Time Zone"])
    assert df["Window From"].str.match(r"^\d{1,2}:\d{2}( [AP]M)?$").all()
