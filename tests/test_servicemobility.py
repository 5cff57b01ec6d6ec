"""End to end over loopback: the engine against the ServiceMobility simulator, as a utility's back office
would meet it. Two sample sheets: 36 new work orders (5 with mistakes) upserted by their own number, and
36 follow-up visits (4 with mistakes, 5 whose window holds no bookable slot) booked into open slots."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from flows.engine.plan import prepare
from flows.engine.run import ImportRun
from flows.errors import ConfigError, CredentialsError
from flows.mapping.model import compile_mapping, load_mapping
from flows.outcomes import Status
from flows.providers.servicemobility import SLOT_GONE, BookJob, parse_utc
from flows.sandbox import Faults, ServiceMobilitySimulator, SimulatorServer
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant

WORK_ORDERS = SAMPLES / "servicemobility" / "workorders.xlsx"
FOLLOWUPS = SAMPLES / "servicemobility" / "followups.xlsx"
WO_MAPPING = MAPPINGS / "servicemobility_workorders.yaml"
FU_MAPPING = MAPPINGS / "servicemobility_followups.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden"
WO_INVALID = {"WO-270307", "WO-270313", "WO-270319", "WO-270326", "WO-270331"}
FU_INVALID = {"FV-0005", "FV-0012", "FV-0027", "FV-0033"}
FU_NO_SLOT = {"FV-0009", "FV-0017", "FV-0024", "FV-0030"}
FU_REJECTED = FU_NO_SLOT | {"FV-0021"}
UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def sm(request):
    """``sm(**simulator_options)`` -> a running ServiceMobility simulator with ``.url`` and ``.env``."""
    started: list[SimulatorServer] = []

    def make(**kwargs) -> ServiceMobilitySimulator:
        from flows.sandbox.demo import sandbox_env

        sim = ServiceMobilitySimulator(**kwargs)
        server = SimulatorServer(sim)
        sim.url = server.start()
        sim.env = sandbox_env("servicemobility", sim.url)
        started.append(server)
        return sim

    yield make
    for server in started:
        server.stop()


def run_import(sim, sheet=FOLLOWUPS, mapping=FU_MAPPING, *, ledger_url, env=None, **options) -> ImportRun:
    options.setdefault("rate", None)
    options.setdefault("out", Path(ledger_url.removeprefix("sqlite:///")).with_name(f"results-{os.urandom(3).hex()}.xlsx"))
    return import_now(sheet, mapping, env=env or sim.env, ledger_url=ledger_url, **options)


def statuses(run: ImportRun) -> dict[str, int]:
    return dict(Counter(o.status.value for o in run.outcomes))


def by_key(run: ImportRun) -> dict[str, object]:
    return {r.key[0]: run.outcomes[r.index] for r in run.plan.rows}


def payloads(run: ImportRun) -> dict[str, dict]:
    return {r.key[0]: r.payload for r in run.plan.rows if r.payload is not None}


def followups_per_order(sim) -> Counter:
    return Counter(f["OriginalOrderNum"] for f in sim.followups)


# --- new work orders: PUT upsert ---------------------------------------------------------------------------


def test_work_orders_are_upserted_once_each_and_a_rerun_sends_nothing(sm, ledger_url):
    sim = sm()
    run = run_import(sim, WORK_ORDERS, WO_MAPPING, ledger_url=ledger_url)
    assert statuses(run) == {"created": 31, "invalid": 5}
    outcomes = by_key(run)
    assert {k for k, o in outcomes.items() if o.status is Status.INVALID} == WO_INVALID
    created = {k: o for k, o in outcomes.items() if o.status is Status.CREATED}
    assert all(o.provider_id == k and o.http_status == 201 for k, o in created.items())
    assert set(sim.put_counts) == set(created) and set(sim.put_counts.values()) == {1}
    # what ServiceMobility stored is the row: nested location, dispatch in UTC (the clocks go forward on 14 March)
    stored = sim.work_orders["WO-270301"]
    assert stored["AccountLoc"]["Address"]["City"] and stored["Dispatch"]["DispatchStatus"] == 3
    assert UTC_MS.match(stored["Dispatch"]["PlannedStartDate"])
    assert "Dispatch" not in sim.work_orders["WO-270306"], "a row without a technician or date is not dispatched"
    again = run_import(sim, WORK_ORDERS, WO_MAPPING, ledger_url=ledger_url)
    assert statuses(again) == {"skipped": 31, "invalid": 5}
    assert sum(sim.put_counts.values()) == 31


def test_a_put_resent_after_a_timeout_leaves_one_work_order(sm, ledger_url, tmp_path):
    sim = sm(faults=Faults(timeout_after_store_rate=0.3, stall_seconds=3, seed=5))
    mapping = mapping_variant(tmp_path, "servicemobility_workorders.yaml", connection__timeout_seconds=0.3,
                              retry__backoff_seconds=0.01, retry__attempts=8)
    run = run_import(sim, WORK_ORDERS, mapping, ledger_url=ledger_url)
    assert statuses(run) == {"created": 31, "invalid": 5}
    assert sim.fault_counts["timeout_after_store"] > 0
    assert max(o.attempts for o in run.outcomes) > 1, "the engine resent the PUTs that timed out"
    assert sum(sim.put_counts.values()) > 31, "the timed-out PUTs had been stored before the resend"
    assert len(sim.put_counts) == 31 and len(sim.bookings) == 31, "one work order per number, however often it was sent"
    for key, payload in payloads(run).items():
        assert sim.work_orders[key]["OrderType"] == payload["OrderType"]


def test_a_work_order_left_unknown_is_simply_sent_again_by_the_next_run(sm, ledger_url, tmp_path):
    sim = sm(faults=Faults(error_after_store_rate=1.0))
    mapping = mapping_variant(tmp_path, "servicemobility_workorders.yaml", retry__attempts=1)
    first = run_import(sim, WORK_ORDERS, mapping, ledger_url=ledger_url)
    assert statuses(first) == {"unknown": 31, "invalid": 5}
    sim.faults = Faults()
    second = run_import(sim, WORK_ORDERS, mapping, ledger_url=ledger_url)
    assert statuses(second) == {"created": 31, "invalid": 5}, "an upsert needs no check before it is resent"
    assert set(sim.put_counts.values()) == {2} and len(sim.bookings) == 31


# --- a 500 is a refusal when its reason says so (ServiceMobility answers every error with 500 + text) -----------


def test_a_work_order_for_an_account_that_does_not_exist_is_rejected_with_the_reason_and_sent_once(sm, ledger_url):
    """Book Job / Work Order REST API: "Only AccountNum means a managed account; the system expands it and
    errors if it does not exist", and errors are a 500 with "a descriptive reason" [C]."""
    from flows.sandbox.servicemobility import DEFAULT_ACCOUNTS

    sim = sm(accounts=DEFAULT_ACCOUNTS - {"ACC-70002"})
    run = run_import(sim, WORK_ORDERS, WO_MAPPING, ledger_url=ledger_url)
    missing = {k for k, p in payloads(run).items() if p["Account"]["AccountNum"] == "ACC-70002"}
    assert len(missing) == 1
    (key,) = missing
    outcome = by_key(run)[key]
    assert statuses(run) == {"created": 30, "rejected": 1, "invalid": 5}
    assert (outcome.status, outcome.http_status, outcome.attempts) == (Status.REJECTED, 500, 1)
    assert outcome.message == "ServiceMobility refused the work order (500): Account ACC-70002 does not exist."
    assert key not in sim.work_orders and key not in sim.put_counts
    assert sim.requests["PUT /seiapi/v3/trans/WorkOrder/{WorkOrderNum}"] == 31, "sent once, not five times"
    df, _ = read_results(run.results_path)
    assert df.loc[df["Work Order"] == key, "_status"].item() == "rejected"
    assert "Account ACC-70002 does not exist." in df.loc[df["Work Order"] == key, "_message"].item()


def test_a_500_that_names_no_refusal_is_still_unknown_and_resent(sm, ledger_url, tmp_path):
    """The reasons only narrow a 500: a crash after storing (the dangerous case) stays unknown."""
    sim = sm(faults=Faults(error_after_store_rate=1.0))
    mapping = mapping_variant(tmp_path, "servicemobility_workorders.yaml", retry__attempts=2,
                              retry__backoff_seconds=0.01)
    run = run_import(sim, WORK_ORDERS, mapping, ledger_url=ledger_url)
    assert statuses(run) == {"unknown": 31, "invalid": 5}
    assert set(sim.put_counts.values()) == {2}, "idempotent: resent up to retry.attempts"


#: (the text of a 500, what the work-order mapping makes of it). Refusals are the simulator's wordings of
#: the documented rules; everything else (a crash, a proxy's page, an empty body) is `unknown`.
WORK_ORDER_500S = [
    ("Account ACC-70002 does not exist.", "reject"),
    ("account  acc-1 DOES NOT EXIST", "reject"),
    ("Account is required (an AccountNum, or an ad-hoc account with a Name)", "reject"),
    ("OrderType is required", "reject"),
    ("OrderType '9999' is not a Work Order Type", "reject"),
    ("The request body is not a valid Work Order object", "reject"),
    ("WorkOrderNum 'WO-2' in the body does not match WO-1 in the URL", "reject"),
    ("Dispatch.PlannedStartDate '2027-03-08 09:00' is not a UTC date-time (YYYY-MM-DDTHH:mm:SS.sssZ)", "reject"),
    ("Dispatch.PlannedDur 0 must be a whole number of minutes", "reject"),
    ("An unexpected error occurred while saving the work order", "unknown"),
    ('{"error": {"code": "internal_error", "message": "Internal server error"}}', "unknown"),
    ("Account service unavailable. Table does not exist", "unknown"),  # "Account" and "does not exist" in two sentences
    ("", "unknown"),
]


@pytest.mark.parametrize(("text", "action"), WORK_ORDER_500S)
def test_the_work_order_mapping_says_which_500s_are_refusals(text, action):
    rule = load_mapping(WO_MAPPING).request.status_rules()[500]
    assert rule.for_body(text).action.value == action


# --- follow-ups: search, then book --------------------------------------------------------------------------


def test_followups_book_the_first_open_slot_inside_each_window(sm, ledger_url, tmp_path):
    sim = sm()
    out = tmp_path / "followups.xlsx"
    run = run_import(sim, ledger_url=ledger_url, out=out)
    assert statuses(run) == {"created": 27, "rejected": 5, "invalid": 4}
    outcomes = by_key(run)
    assert {k for k, o in outcomes.items() if o.status is Status.INVALID} == FU_INVALID
    assert {k for k, o in outcomes.items() if o.status is Status.REJECTED} == FU_REJECTED
    slots = {f["WorkOrderNum"]: f for f in sim.followups}
    rows = payloads(run)
    for key, o in outcomes.items():
        if o.status is not Status.CREATED:
            continue
        booked = slots[o.provider_id]
        assert booked["OriginalOrderNum"] == rows[key]["OriginalOrderNum"]
        window = rows[key]["TimeConstraints"][0]["Period"]
        period = booked["BookJob"]["TimeConstraints"][0]["Period"]
        assert (parse_utc(window["Start"]) <= parse_utc(period["Start"]) < parse_utc(period["End"])
                <= parse_utc(window["End"]))
        assert o.message.startswith("booked ") and o.http_status == 200
    assert len({f["SlotID"] for f in sim.followups}) == 27, "no slot booked twice"
    # the first offered slot that fits: FV-0004 wants Tue 10:00-12:00 only
    assert slots[outcomes["FV-0004"].provider_id]["SlotID"].endswith("-20270309-1000")
    # the window a rejected row searched, in the sheet's own time zone
    assert ("no open slot in the preferred window Sat 13 Mar 2027 08:00-12:00 America/Chicago"
            in outcomes["FV-0009"].message)
    assert "2027-03-13 14:00-18:00 UTC" in outcomes["FV-0009"].message
    assert re.search(r"ServiceMobility offered \d+ slot\(s\), none inside it", outcomes["FV-0030"].message)
    assert ("Mon 05 Apr 2027" in outcomes["FV-0024"].message
            and "Wed 10 Mar 2027 17:00-20:00" in outcomes["FV-0017"].message)
    # ServiceMobility's free-text 500, verbatim; nothing was booked for it
    assert ("ServiceMobility refused the booking (500): Work Order WO-269999 does not exist"
            in outcomes["FV-0021"].message)
    # a refusal the mapping's 500 reasons name: rejected at once, without the search that decides other 500s
    assert outcomes["FV-0021"].attempts == 2 and "WO-269999" not in followups_per_order(sim)
    assert "America/Denver" in outcomes["FV-0014"].message, "booked times are told in the row's own zone"

    df, summary = read_results(out)
    created = df[df["_status"] == "created"]
    assert set(created["_provider_id"]) == {f["WorkOrderNum"] for f in sim.followups}
    assert summary["provider"] == "servicemobility"


def test_book_job_bodies_are_the_row_with_the_chosen_slot(sm, ledger_url):
    sim = sm()
    run = run_import(sim, ledger_url=ledger_url)
    rows = payloads(run)
    by_original = {p["OriginalOrderNum"]: p for p in rows.values()}
    for f in sim.followups:
        body = f["BookJob"]
        BookJob.model_validate(body)
        period = body["TimeConstraints"][0]["Period"]
        assert UTC_MS.match(period["Start"]) and UTC_MS.match(period["End"])
        assert body["TimeConstraints"][0]["ID"] == f["SlotID"]
        row = by_original[f["OriginalOrderNum"]]
        assert ({k: v for k, v in body.items() if k != "TimeConstraints"}
                == {k: v for k, v in row.items() if k != "TimeConstraints"})


def test_a_rerun_books_nothing_twice_and_searches_rejected_rows_again(sm, ledger_url):
    sim = sm()
    run_import(sim, ledger_url=ledger_url)
    searches = sim.requests["POST /seiapi/v3/trans/Appointments/OpenSlots"]
    again = run_import(sim, ledger_url=ledger_url)
    assert statuses(again) == {"skipped": 27, "rejected": 5, "invalid": 4}
    assert len(sim.followups) == 27
    assert sim.requests["POST /seiapi/v3/trans/Appointments/OpenSlots"] > searches


def test_a_slot_taken_between_search_and_book_is_searched_again_then_booked(sm, ledger_url):
    sim = sm()
    sim.steal_next(1)
    run = run_import(sim, ledger_url=ledger_url, concurrency=1)
    first = by_key(run)["FV-0001"]
    assert first.status is Status.CREATED
    assert "was taken meanwhile" in first.message and "Mon 08 Mar 2027 08:00-10:00" in first.message
    taken = [s for s in sim.slots() if s["BookedBy"] == "another client"]
    assert [s["ID"] for s in taken] == ["jlopez-20270308-0800"]
    assert [f["SlotID"] for f in sim.followups if f["OriginalOrderNum"] == "WO-260101"] == ["mchen-20270308-0800"]
    assert statuses(run)["created"] == 27


def test_a_slot_taken_twice_rejects_the_row_naming_the_window(sm, ledger_url):
    sim = sm()
    sim.steal_next(2)
    run = run_import(sim, ledger_url=ledger_url, concurrency=1)
    first = by_key(run)["FV-0001"]
    assert first.status is Status.REJECTED
    assert "taken twice between search and booking" in first.message
    assert "preferred window Mon 08 Mar 2027 08:00-12:00 America/Chicago" in first.message
    assert "WO-260101" not in followups_per_order(sim)
    assert statuses(run) == {"created": 26, "rejected": 6, "invalid": 4}


def test_a_slot_taken_when_no_other_is_left_rejects_the_row(sm, ledger_url):
    sim = sm()

    def take_the_window(s, original, body):  # another dispatcher books every Tue 10:00-12:00 slot first
        if original == "WO-260104":
            for slot in s.slots(free=True):
                if slot["Period"]["Start"] == "2027-03-09T16:00:00.000Z":
                    s.take_slot(slot["ID"])

    sim.before_book = take_the_window
    run = run_import(sim, ledger_url=ledger_url, concurrency=1)
    fourth = by_key(run)["FV-0004"]
    assert fourth.status is Status.REJECTED
    assert "was taken before it could be booked and no other open slot is left" in fourth.message
    assert "Tue 09 Mar 2027 10:00-12:00 America/Chicago" in fourth.message


def test_a_500_that_booked_leaves_the_row_unknown_and_it_is_never_booked_again(sm, ledger_url):
    sim = sm()
    sim.fail_bookings(1, "An unexpected error occurred")  # books the slot, then answers 500
    first = run_import(sim, ledger_url=ledger_url, concurrency=1)
    row = by_key(first)["FV-0001"]
    assert row.status is Status.UNKNOWN and row.http_status == 500
    assert "An unexpected error occurred" in row.message and "may have been booked" in row.message
    assert "Mon 08 Mar 2027 08:00-10:00" in row.message and "WO-260101" in row.message
    assert followups_per_order(sim)["WO-260101"] == 1
    second = run_import(sim, ledger_url=ledger_url)
    assert by_key(second)["FV-0001"].status is Status.UNKNOWN
    assert "no way to check" in by_key(second)["FV-0001"].message
    assert followups_per_order(sim)["WO-260101"] == 1, "an unknown row is never resent on its own"


def test_a_500_that_booked_nothing_is_rejected_with_the_text_verbatim(sm, ledger_url):
    sim = sm()
    sim.fail_bookings(1, "  Technician calendar is locked for\nmaintenance, try later.  \n", book=False)
    run = run_import(sim, ledger_url=ledger_url, concurrency=1)
    row = by_key(run)["FV-0001"]
    assert row.status is Status.REJECTED
    assert "(500): Technician calendar is locked for\nmaintenance, try later. (the slot" in row.message
    assert "is still open, so nothing was booked" in row.message
    assert "WO-260101" not in followups_per_order(sim)


def test_a_refused_search_rejects_the_row_with_the_text_and_its_column(sm, ledger_url):
    sim = sm(order_types={"1001", "1002", "1003"})  # this tenant has no "Reconnection" work order type
    run = run_import(sim, ledger_url=ledger_url)
    refused = [o for k, o in by_key(run).items() if payloads(run).get(k, {}).get("OrderType") == "1004"]
    assert refused and all(o.status is Status.REJECTED for o in refused)
    assert all("the appointment search was refused (500): "
               "Visit Type: OrderType '1004' is not a Work Order Type" in o.message
               for o in refused)
    assert all(o.column_messages.keys() == {"Visit Type"} for o in refused), "the free text names OrderType"
    assert not any(f["OrderType"] == "1004" for f in sim.followups)


def test_faults_never_book_a_follow_up_twice(sm, ledger_url, tmp_path):
    sim = sm(faults=Faults(error_after_store_rate=0.15, drop_after_store_rate=0.1, unavailable_rate=0.1, seed=11))
    mapping = mapping_variant(tmp_path, "servicemobility_followups.yaml", connection__timeout_seconds=1,
                              retry__backoff_seconds=0.01, retry__attempts=6)
    first = run_import(sim, mapping=mapping, ledger_url=ledger_url)
    counts = statuses(first)
    assert counts.get("unknown", 0) > 0, "the faults should have left some bookings uncertain"
    per_order = followups_per_order(sim)
    assert max(per_order.values()) == 1
    outcomes = by_key(first)
    created = {o.provider_id for o in outcomes.values() if o.status is Status.CREATED}
    assert created <= {f["WorkOrderNum"] for f in sim.followups}
    assert len(sim.followups) <= counts["created"] + counts["unknown"]
    for key, o in outcomes.items():
        if o.status in (Status.REJECTED, Status.FAILED):
            assert payloads(first)[key]["OriginalOrderNum"] not in per_order, (key, o.message)

    sim.faults = Faults()
    second = run_import(sim, mapping=mapping, ledger_url=ledger_url)
    assert max(followups_per_order(sim).values()) == 1
    assert statuses(second).get("unknown", 0) == counts["unknown"], "unknown rows wait for a person"


# --- login --------------------------------------------------------------------------------------------------


def test_tokens_expiring_mid_run_are_renewed_and_no_row_is_lost(sm, ledger_url):
    sim = sm(token_lifetime=0.25, faults=Faults(latency_ms=30))
    run = run_import(sim, WORK_ORDERS, WO_MAPPING, ledger_url=ledger_url, concurrency=2)
    assert statuses(run) == {"created": 31, "invalid": 5}
    assert sim.logins >= 3, "several logins over one run"
    assert len(sim.put_counts) == 31


def test_a_401_mid_run_logs_in_once_more_and_the_row_is_sent_again(sm, ledger_url):
    sim = sm()
    booked = []

    def revoke_after_five(s, original, body):
        booked.append(original)
        if len(booked) == 5:
            s.revoke_tokens()  # this booking goes through; every later request meets a 401 until a new login

    sim.before_book = revoke_after_five
    run = run_import(sim, ledger_url=ledger_url)
    assert statuses(run) == {"created": 27, "rejected": 5, "invalid": 4}
    assert sim.tokens_refused >= 1 and sim.logins == 2
    assert max(followups_per_order(sim).values()) == 1


def test_refused_again_after_logging_in_again_stops_the_run_and_the_rest_waits(sm, ledger_url):
    sim = sm()
    booked = []

    def lock_out_after_three(s, original, body):
        booked.append(original)
        if len(booked) == 3:
            s.users["sandbox.dispatcher"] = "rotated-password"
            s.revoke_tokens()

    sim.before_book = lock_out_after_three
    first = run_import(sim, ledger_url=ledger_url, concurrency=1)
    counts = statuses(first)
    assert counts["created"] == 3 and counts["skipped"] >= 20
    skipped = [o for o in first.outcomes if o.status is Status.SKIPPED]
    assert all("the run stopped early" in o.message and "SERVICEMOBILITY_PASSWORD" in o.message for o in skipped)
    assert sim.login_failures == 1 and len(sim.followups) == 3
    env = {**sim.env, "SERVICEMOBILITY_PASSWORD": "rotated-password"}
    second = run_import(sim, ledger_url=ledger_url, env=env)
    assert statuses(second) == {"skipped": 3, "created": 24, "rejected": 5, "invalid": 4}
    assert max(followups_per_order(sim).values()) == 1


def test_a_wrong_password_stops_before_anything_is_sent(sm, ledger_url):
    sim = sm()
    env = {**sim.env, "SERVICEMOBILITY_PASSWORD": "not-the-password"}
    with pytest.raises(CredentialsError) as info:
        run_import(sim, ledger_url=ledger_url, env=env)
    text = str(info.value)
    assert info.value.exit_code == 2
    assert "Invalid Logon" in text and "SERVICEMOBILITY_USERNAME and SERVICEMOBILITY_PASSWORD" in text
    assert "not-the-password" not in text
    assert sim.login_failures == 1 and sum(sim.requests.values()) == 0 and sim.followups == []


def test_the_placeholder_base_url_must_be_replaced_before_anything_is_sent(sm, ledger_url):
    sim = sm()
    env = {k: v for k, v in sim.env.items() if k != "SERVICEMOBILITY_BASE_URL"}
    with pytest.raises(ConfigError, match="set SERVICEMOBILITY_BASE_URL to yours"):
        run_import(sim, WORK_ORDERS, WO_MAPPING, ledger_url=ledger_url, env=env)
    assert sim.logins == 0 and sum(sim.requests.values()) == 0


# --- payloads: nested fields from flat columns, golden files ----------------------------------------------------


@pytest.mark.parametrize(("sheet", "mapping", "name"), [
    (WORK_ORDERS, WO_MAPPING, "servicemobility_workorders.json"),
    (FOLLOWUPS, FU_MAPPING, "servicemobility_followups.json"),
], ids=["workorders", "followups"])
def test_payloads_match_the_golden_file(sheet, mapping, name):
    """Regenerate with ``UPDATE_GOLDEN=1 pytest tests/test_servicemobility.py`` and review the diff."""
    plan = prepare(sheet, mapping)
    got = {"payloads": {r.key_text: r.payload for r in plan.rows if r.payload is not None},
           "invalid": {r.key_text: [str(p) for p in r.problems] for r in plan.rows if r.payload is None}}
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == got


COLUMNS = ["Visit Ref", "Original Order", "Visit Type", "Account No", "Premise ID", "Customer Name", "Address Line 1",
           "Address Line 2", "City", "State", "ZIP", "Contact First Name", "Contact Last Name", "Contact Email",
           "Mobile Phone", "Home Phone", "Technician", "Preferred Date", "Window From", "Window To", "Time Zone",
           "Access Notes"]


def _row(**cells) -> list:
    base = {"Visit Ref": "FV-1", "Original Order": "WO-1", "Visit Type": "Reconnection", "Account No": "ACC-70101",
            "Address Line 1": "1 Lake St", "City": "Oak Park", "Preferred Date": "03/09/2027", "Window From": "08:00",
            "Window To": "12:00"}
    base.update(cells)
    return [base.get(c) for c in COLUMNS]


@pytest.mark.parametrize(("cells", "location"), [
    ({"Contact First Name": "Ann", "Mobile Phone": "(312) 555-0100", "Home Phone": "(708) 555-0101"},
     {"Contacts": [{"FirstName": "Ann", "IsPrimary": True, "Phones": [
         {"PhoneNum": "(312) 555-0100", "PhoneType": "Mobile"},
        {"PhoneNum": "(708) 555-0101", "PhoneType": "Home"}]}]}),
    ({"Contact First Name": "Ann", "Home Phone": "(708) 555-0101"},
     {"Contacts": [{"FirstName": "Ann", "IsPrimary": True,
                    "Phones": [{"PhoneNum": "(708) 555-0101", "PhoneType": "Home"}]}]}),
    ({"Contact First Name": "Ann", "Mobile Phone": "  "},
     {"Contacts": [{"FirstName": "Ann", "IsPrimary": True}]}),
    ({}, {}),
], ids=["two-phones", "home-only", "no-phone", "no-contact"])
def test_contacts_and_phones_come_only_from_filled_columns(cells, location):
    mapper = compile_mapping(load_mapping(FU_MAPPING), COLUMNS)
    mapped = mapper.map_row(_row(**cells))
    assert mapped.problems == []
    got = {k: v for k, v in mapped.payload["Location"].items() if k == "Contacts"}
    assert got == location
    assert mapped.payload["Location"]["Address"] == {"AddrLine1": "1 Lake St", "City": "Oak Park"}
    assert mapped.payload["TimeConstraints"] == [{"Type": "Available", "Period": {
        "Start": "2027-03-09T14:00:00.000Z", "End": "2027-03-09T18:00:00.000Z"}}]


@pytest.mark.parametrize(("text", "gone"), [
    ("Slot no longer available", True),
    ("The appointment slot is not available anymore", True),
    ("Appointment unavailable", True),
    ("Slot already booked", True),
    ("This time slot has been taken", True),
    ("An unexpected error occurred", False),
    ("Work Order WO-269999 does not exist", False),
    ("Technician not available for this skill", False),
    ("Internal server error", False),
])
def test_only_a_slot_gone_text_counts_as_a_refusal(text, gone):
    assert bool(SLOT_GONE.search(text)) is gone


def test_servicemobility_is_registered_everywhere():
    from flows.mapping.catalog import provider_ids
    from flows.sandbox import SIMULATORS
    from flows.sandbox.demo import DEMOS, sandbox_env

    assert "servicemobility" in provider_ids() and SIMULATORS["servicemobility"] is ServiceMobilitySimulator
    assert {d.mapping for d in DEMOS if d.provider == "servicemobility"} == {
        "mappings/servicemobility_workorders.yaml", "mappings/servicemobility_followups.yaml"}
    assert set(sandbox_env("servicemobility", "http://127.0.0.1:1")) == {
        "SERVICEMOBILITY_BASE_URL", "SERVICEMOBILITY_USERNAME", "SERVICEMOBILITY_PASSWORD"}
    for mapping in (WO_MAPPING, FU_MAPPING):
        m = load_mapping(mapping)
        assert m.provider == "servicemobility" and m.env_prefix == "SERVICEMOBILITY"
