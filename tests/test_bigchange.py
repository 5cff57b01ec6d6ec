"""End to end over loopback: the engine against the BigChange simulator, as a field-service office
would meet it. The sample sheet has 48 jobs with names (not ids), planned across the March 2027
clock change: 6 rows with mistakes the importer catches, 2 that BigChange refuses (no order
number), 4 left unscheduled. Set UPDATE_GOLDEN=1 to rewrite tests/golden/bigchange.json."""
from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web

from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions, send_pending
from flows.errors import ConfigError, CredentialsError, MissingSecretError
from flows.http.client import Client, Reply
from flows.http.loopback import LoopbackServer
from flows.http.sender import CallResult
from flows.ledger.ledger import open_ledger
from flows.mapping.model import compile_mapping, load_mapping
from flows.mapping.transforms import LookupTable
from flows.outcomes import Action, Status
from flows.providers.bigchange import split_payload
from flows.sandbox import BigChangeSimulator, Faults, SimulatorServer
from flows.sandbox.demo import sandbox_env
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant, served

SHEET = SAMPLES / "bigchange" / "jobs.xlsx"
MAPPING = MAPPINGS / "bigchange.yaml"
GOLDEN = Path(__file__).resolve().parent / "golden" / "bigchange.json"
INVALID = {"BC-27005", "BC-27011", "BC-27017", "BC-27034", "BC-27040", "BC-27044"}
REJECTED = {"BC-27023", "BC-27029"}
UNSCHEDULED = {"BC-27008", "BC-27020", "BC-27036", "BC-27047"}
CREATED = 48 - len(INVALID) - len(REJECTED)
SAM_PATEL = 301


@pytest.fixture
def sim():
    with served(BigChangeSimulator()) as sim:
        yield sim


@pytest.fixture
def env(sim) -> dict[str, str]:
    return sandbox_env("bigchange", sim.url)


def fast(tmp_path, **changes) -> Path:
    """The bundled mapping with quick retries (and any other changes), for runs with faults."""
    quick = {"retry__attempts": 5, "retry__backoff_seconds": 0.01, "retry__max_backoff_seconds": 0.05}
    return mapping_variant(tmp_path, "bigchange.yaml", **{**quick, **changes})


def run_import(env, ledger_url, mapping=MAPPING, sheet=SHEET, **options) -> ImportRun:
    options.setdefault("rate", None)
    return import_now(sheet, mapping, env=env, ledger_url=ledger_url, **options)


def statuses(run: ImportRun) -> Counter:
    return Counter(o.status.value for o in run.outcomes)


def by_ref(run: ImportRun) -> dict:
    return {r.key[0]: run.outcomes[r.index] for r in run.plan.rows}


def jobs_by_ref(sim) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for job in sim.jobs:
        out.setdefault(job["reference"], []).append(job)
    return out


def one_job_per_reference(sim) -> bool:
    return all(len(jobs) == 1 for jobs in jobs_by_ref(sim).values())


# --- the sample sheet ---------------------------------------------------------------------------------


def test_sample_sheet_creates_and_schedules_every_valid_row(sim, env, ledger_url, tmp_path):
    out = tmp_path / "results.xlsx"
    run = run_import(env, ledger_url, out=out)

    assert statuses(run) == {"created": CREATED, "invalid": len(INVALID), "rejected": len(REJECTED)}
    outcomes = by_ref(run)
    assert {ref for ref, o in outcomes.items() if o.status is Status.INVALID} == INVALID
    assert {ref for ref, o in outcomes.items() if o.status is Status.REJECTED} == REJECTED
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)

    jobs = {ref: js[0] for ref, js in jobs_by_ref(sim).items()}
    for ref, o in outcomes.items():
        if o.status is Status.CREATED:
            assert o.provider_id == str(jobs[ref]["id"])
            scheduled = ref not in UNSCHEDULED
            assert jobs[ref]["status"] == ("scheduled" if scheduled else "new"), ref
            assert o.stage == ("scheduled" if scheduled else "created")
    # names became ids; local UK time became UTC on both sides of the clock change (28 March 2027)
    acme = jobs["BC-27013"]
    assert acme["contactName"] == "Acme Ltd" and acme["typeName"] == "Boiler Service"
    assert jobs["BC-27006"]["resourceName"] == "Sam Patel"  # typed "sam  patel"
    assert jobs["BC-27002"]["typeName"] == "Boiler Service"  # typed "  boiler service "
    assert jobs["BC-27025"]["plannedStartAt"] == "2027-03-28T15:00:00+00:00"  # 16:00 BST
    assert jobs["BC-27021"]["plannedStartAt"] == "2027-03-27T10:30:00+00:00"  # 10:30 GMT
    assert jobs["BC-27033"]["plannedStartAt"] == "2027-03-28T09:00:00+00:00"  # Sunday 10:00 BST
    # an empty duration is left out: BigChange uses the job type's default
    assert "plannedDuration" not in _sent(sim, "BC-27012") and jobs["BC-27012"]["plannedDuration"] == 60
    # the schedule never reaches the create call
    assert all("schedule" not in body for body in sim.create_requests)

    df, summary = read_results(out)
    assert summary["provider"] == "bigchange"
    created = df[df["_status"] == "created"]
    assert set(created["_provider_id"].astype(str)) == {str(j["id"]) for j in sim.jobs}


def _sent(sim, ref: str) -> dict:
    return next(b for b in sim.create_requests if b.get("reference") == ref)


def test_names_are_resolved_once_per_run_and_bad_ones_stop_their_row_before_anything_is_sent(sim, env, ledger_url):
    run = run_import(env, ledger_url)
    # each list fetched once (contacts has 1,210 entries: two pages of 1,000)
    assert sim.requests["GET /v1/jobTypes"] == 1 and sim.requests["GET /v1/resources"] == 1
    assert sim.requests["GET /v1/contacts"] == 2 and sim.requests["GET /v1/customFieldDefinitions"] == 1
    assert run.lookup_sizes["contacts"] == 1209  # two contacts share a name
    sent = {b.get("reference") for b in sim.create_requests}
    assert not sent & INVALID
    o = by_ref(run)
    assert o["BC-27005"].column_messages == {"Job Type": [
        "'Boiler Servise' is not in the provider's job_types list; "
        "closest: Boiler Service, Boiler Repair, Boiler Installation"]}
    assert "closest: Acme Ltd" in o["BC-27044"].column_messages["Customer"][0]
    assert "closest: Sam Patel" in o["BC-27017"].column_messages["Engineer"][0]
    assert "matches 2 entries" in o["BC-27011"].column_messages["Customer"][0]
    assert o["BC-27034"].column_messages["Planned Date"][0].endswith("(the clocks go forward then)")
    assert o["BC-27040"].column_messages == {"Engineer": ["is required"]}


def test_offline_validation_leaves_names_for_the_run_to_check():
    plan = prepare(SHEET, MAPPING)
    invalid = {r.key[0] for r in plan.rows if r.payload is None}
    assert invalid == {"BC-27034", "BC-27040"}  # the names cannot be checked without logging in
    row = next(r for r in plan.rows if r.key[0] == "BC-27013")
    assert row.payload["typeId"] == "Boiler Service" and row.payload["schedule"]["resourceId"] == "Sam Patel"


def test_a_422_is_reported_against_the_sheet_column(sim, env, ledger_url, tmp_path):
    out = tmp_path / "results.xlsx"
    run = run_import(env, ledger_url, out=out)
    rejected = by_ref(run)["BC-27023"]
    assert rejected.http_status == 422 and rejected.provider_id is None
    assert rejected.column_messages == {"Order Number": ["required for this job type"]}
    assert "Order Number: required for this job type" in rejected.message
    df, _ = read_results(out)
    row = df[df["Job Ref"] == "BC-27023"].iloc[0]
    assert row["_status"] == "rejected" and "Order Number: required for this job type" in row["_message"]


@pytest.mark.parametrize(("body", "column", "message"), [
    ({"errors": {"OrderNumber": ["required for this job type"]}}, "Order Number", "required for this job type"),
    ({"errors": {"$.plannedDuration": ["must be between 1 and 10080 minutes"]}}, "Duration (mins)", "must be between"),
    ({"errors": {"resourceId": ["Sam Patel is not available at that time"]}}, "Engineer", "not available"),
    ({"errors": {"CustomFields[0].Value": ["too long"]}}, None, "CustomFields[0].Value: too long"),
    ({"type": "about:blank", "title": "Bad Request", "status": 400, "detail": "The body is not JSON."}, None,
     "The body is not JSON."),
], ids=["capitalised", "json-path", "schedule-field", "list-item-not-guessed", "rfc7807-detail"])
def test_provider_error_bodies_become_readable_per_column_messages(body, column, message, env, tmp_path):
    run = ImportRun(prepare(SHEET, MAPPING), RunOptions(env=env, ledger_url=f"sqlite:///{tmp_path / 'l.sqlite'}"))
    try:
        answer = Reply(422, {"Content-Type": "application/json"}, json.dumps(body).encode())
        result = CallResult(Action.REJECT, answer, 1, "the provider rejected the row")
        outcome = run.outcome_from(result)
    finally:
        run.close()
    assert outcome.status is Status.REJECTED and message in outcome.message
    if column:
        assert message in outcome.column_messages[column][0]
    else:
        assert outcome.column_messages == {}


def test_rerunning_the_same_sheet_creates_nothing_twice(sim, env, ledger_url):
    first = run_import(env, ledger_url)
    posts = sim.requests["POST /v1/jobs"]
    second = run_import(env, ledger_url)
    assert statuses(second) == {"skipped": CREATED, "invalid": len(INVALID), "rejected": len(REJECTED)}
    for ref, outcome in by_ref(second).items():
        if outcome.status is Status.SKIPPED:
            assert outcome.provider_id == by_ref(first)[ref].provider_id
    assert sim.requests["POST /v1/jobs"] == posts + len(REJECTED)  # only the refused rows are tried again
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)


# --- create, then schedule ----------------------------------------------------------------------------


def test_a_failed_schedule_keeps_the_job_and_the_rerun_schedules_it_without_a_second_create(sim, env, ledger_url,
                                                                                          tmp_path):
    sim.busy_resources = {SAM_PATEL}  # Sam Patel cannot take anything in the first run
    out = tmp_path / "first.xlsx"
    first = run_import(env, ledger_url, out=out)
    sams = {ref for ref, js in jobs_by_ref(sim).items() if _sent_schedule(sim, first, ref) == SAM_PATEL}
    assert sams, "the sample has jobs for Sam Patel"
    assert len(sim.jobs) == CREATED  # every job was created, scheduled or not
    for ref in sams:
        o = by_ref(first)[ref]
        assert o.status is Status.REJECTED and o.stage == "created"
        assert o.provider_id == str(jobs_by_ref(sim)[ref][0]["id"])
        assert f"job {o.provider_id} created but NOT scheduled" in o.message
        assert o.column_messages == {"Engineer": ["Sam Patel is not available at that time"]}
        assert "a rerun schedules this job" in o.message
    ledger = open_ledger(ledger_url)
    try:
        entry = ledger.get("bigchange", json.dumps([sorted(sams)[0]]))
    finally:
        ledger.close()
    assert entry.status == "rejected" and entry.stage == "created" and entry.provider_id
    df, _ = read_results(out)
    assert set(df[df["_status"] == "rejected"]["_provider_id"].dropna().astype(str)) == {
        by_ref(first)[r].provider_id for r in sams}

    sim.busy_resources = set()
    posts = sim.requests["POST /v1/jobs"]
    second = run_import(env, ledger_url)
    for ref in sams:
        o = by_ref(second)[ref]
        assert o.status is Status.CREATED and o.stage == "scheduled", (ref, o)
        assert o.provider_id == by_ref(first)[ref].provider_id
        assert f"created by an earlier run (last run on this row: {first.run_id}), and scheduled" in o.message
        assert jobs_by_ref(sim)[ref][0]["status"] == "scheduled"
    assert sim.requests["POST /v1/jobs"] == posts + len(REJECTED), "no job was created a second time"
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)


def _sent_schedule(sim, run, ref) -> int | None:
    row = next(r for r in run.plan.rows if r.key[0] == ref)
    return ((row.payload or {}).get("schedule") or {}).get("resourceId")


def test_an_outage_of_the_schedule_call_fails_the_row_with_its_job_id(sim, env, ledger_url, tmp_path):
    sim.schedule_outage = True  # PUT /jobs/{id}/schedule answers 503, creates still work
    mapping = fast(tmp_path, retry__attempts=2)
    first = run_import(env, ledger_url, mapping=mapping)
    to_schedule = {ref for ref, o in by_ref(first).items() if o.provider_id and ref not in UNSCHEDULED}
    assert len(to_schedule) == CREATED - len(UNSCHEDULED)
    for ref in to_schedule:
        o = by_ref(first)[ref]
        assert o.status is Status.FAILED and o.stage == "created" and o.http_status == 503, (ref, o)
        assert f"job {o.provider_id} created but NOT scheduled: provider unavailable (503)" in o.message
    assert {ref for ref, o in by_ref(first).items() if o.status is Status.CREATED} == UNSCHEDULED

    sim.schedule_outage = False
    second = run_import(env, ledger_url, mapping=mapping)
    assert {ref for ref, o in by_ref(second).items() if o.status is Status.CREATED} == to_schedule
    assert all(j["status"] == "scheduled" for j in sim.jobs if j["reference"] in to_schedule)
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)


# --- login --------------------------------------------------------------------------------------------


def test_short_lived_tokens_are_renewed_mid_run_without_losing_a_row(ledger_url):
    sim = BigChangeSimulator(token_lifetime=0.25, faults=Faults(latency_ms=15))
    with SimulatorServer(sim) as url:
        run = run_import(sandbox_env("bigchange", url), ledger_url, concurrency=4)
    assert statuses(run)["created"] == CREATED
    assert sim.logins >= 3, "the token outlived the run: make it shorter"
    assert run.auth.logins == sim.logins
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)


def test_a_token_revoked_mid_run_is_renewed_once_after_the_401(sim, env, ledger_url):
    revoked = []

    def progress(run: ImportRun) -> None:
        if run.done >= 20 and not revoked:
            revoked.append(run.done)
            sim.expire_tokens()

    run = run_import(env, ledger_url, concurrency=4, progress=progress)
    assert revoked and sim.unauthorized >= 1 and sim.logins >= 2
    assert statuses(run) == {"created": CREATED, "invalid": len(INVALID), "rejected": len(REJECTED)}
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)


def test_a_bad_client_secret_stops_before_anything_is_sent(sim, env, ledger_url):
    env = {**env, "BIGCHANGE_CLIENT_SECRET": "not-the-secret"}
    run = ImportRun(prepare(SHEET, MAPPING), RunOptions(env=env, ledger_url=ledger_url))
    try:
        with pytest.raises(CredentialsError) as exc:
            asyncio.run(send_pending(run))
    finally:
        run.close()
    message = str(exc.value)
    assert "refused the login (401" in message and "BIGCHANGE_CLIENT_ID and BIGCHANGE_CLIENT_SECRET" in message
    assert "not-the-secret" not in message
    assert exc.value.exit_code == 2
    assert sum(sim.requests.values()) == 0 and sim.jobs == []


def test_a_customer_id_the_client_may_not_use_stops_before_any_job_is_sent(sim, env, ledger_url):
    env = {**env, "BIGCHANGE_CUSTOMER_ID": "999"}
    run = ImportRun(prepare(SHEET, MAPPING), RunOptions(env=env, ledger_url=ledger_url))
    try:
        with pytest.raises(ConfigError, match="could not fetch the provider's job_types list"):
            asyncio.run(send_pending(run))
    finally:
        run.close()
    assert sim.requests["POST /v1/jobs"] == 0 and sim.jobs == []


def test_a_missing_customer_id_names_the_variable(env, ledger_url):
    env = {k: v for k, v in env.items() if k != "BIGCHANGE_CUSTOMER_ID"}
    with pytest.raises(MissingSecretError, match="BIGCHANGE_CUSTOMER_ID") as exc:
        ImportRun(prepare(SHEET, MAPPING), RunOptions(env=env, ledger_url=ledger_url))
    assert "Customer-Id" in str(exc.value)


# --- never twice --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    Faults(drop_after_store_rate=0.3, seed=11),
    Faults(timeout_after_store_rate=0.3, stall_seconds=2, seed=12),
    Faults(error_after_store_rate=0.3, seed=13),
], ids=["dropped-connection", "timeout-after-commit", "500-after-commit"])
def test_unknown_rows_are_found_by_reference_and_scheduled_not_created_again(fault, sim, env, ledger_url, tmp_path):
    sim.faults = fault
    mapping = fast(tmp_path, connection__timeout_seconds=0.3)
    first = run_import(env, ledger_url, mapping=mapping)
    unknown = {ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN}
    assert unknown, "the fault should have left some creates unanswered"
    assert all("check" in by_ref(first)[ref].message for ref in unknown)
    assert len(sim.jobs) == CREATED, "BigChange stored every job, including the ones we are unsure of"

    sim.faults = Faults()
    posts = sim.requests["POST /v1/jobs"]
    second = run_import(env, ledger_url, mapping=mapping)
    for ref in unknown:
        o = by_ref(second)[ref]
        assert o.status is Status.CREATED, (ref, o)
        assert o.provider_id == str(jobs_by_ref(sim)[ref][0]["id"])
        assert "found at BigChange" in o.message
        if ref not in UNSCHEDULED:
            assert jobs_by_ref(sim)[ref][0]["status"] == "scheduled" and o.stage == "scheduled"
    assert sim.requests["GET /v1/jobs"] >= len(unknown)
    assert sim.requests["POST /v1/jobs"] == posts + len(REJECTED), "no unknown row was created again"
    assert len(sim.jobs) == CREATED and one_job_per_reference(sim)
    assert statuses(second)["created"] + statuses(second)["skipped"] == CREATED


# --- mapping details ----------------------------------------------------------------------------------


def _tables(**names) -> dict[str, LookupTable]:
    base = {"job_types": [("Boiler Service", 101)], "contacts": [("Acme Ltd", 5001)], "people": [],
            "resources": [("Sam Patel", 301)], "custom_fields": [("Boiler Make", 71), ("Gate Code", 72)]}
    base.update(names)
    return {n: LookupTable(n, pairs) for n, pairs in base.items()}


def test_an_empty_custom_field_is_left_out_unless_the_mapping_says_to_clear_it(tmp_path):
    columns = ["Job Ref", "Job Type", "Customer", "Site Contact Email", "Description", "Order Number",
               "Duration (mins)", "Planned Date", "Planned Time", "Engineer", "Boiler Make", "Gate Code"]
    row = ["BC-1", "Boiler Service", "Acme Ltd", None, None, None, None, None, None, None, "Baxi", None]
    mapper = compile_mapping(load_mapping(MAPPING), columns, tables=_tables())
    assert mapper.map_row(row).payload == {"typeId": 101, "contactId": 5001, "reference": "BC-1",
                                           "customFields": [{"definitionId": 71, "value": "Baxi"}]}
    clearing = mapping_variant(tmp_path, "bigchange.yaml", **{"fields__customFields[1].value__when_empty": "null"})
    mapper = compile_mapping(load_mapping(clearing), columns, tables=_tables())
    assert mapper.map_row(row).payload["customFields"] == [{"definitionId": 71, "value": "Baxi"},
                                                           {"definitionId": 72, "value": None}]


# --- golden payloads ----------------------------------------------------------------------------------


def golden_payloads(url: str, tmp_path: Path) -> dict[str, dict]:
    """Each row of the sample sheet as BigChange gets it (create body, schedule body), or its problems."""
    run = ImportRun(prepare(SHEET, MAPPING), RunOptions(env=sandbox_env("bigchange", url),
                                                        ledger_url=f"sqlite:///{tmp_path / 'golden.sqlite'}"))

    async def resolve() -> None:
        async with run:  # logs in and resolves the names
            pass

    try:
        asyncio.run(resolve())
    finally:
        run.close()
    out: dict[str, dict] = {}
    for r in run.plan.rows:
        if r.payload is None:
            out[r.key_text] = {"row": r.line, "invalid": [str(p) for p in r.problems]}
        else:
            create, schedule = split_payload(r.payload)
            out[r.key_text] = {"row": r.line, "create": create, "schedule": schedule}
    return out


def test_golden_payloads_for_the_sample_sheet(sim, tmp_path):
    got = golden_payloads(sim.url, tmp_path)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert got == want, "payloads changed: review, then rerun with UPDATE_GOLDEN=1 and commit the diff"


def test_what_bigchange_receives_is_the_golden_payloads(sim, env, ledger_url):
    run_import(env, ledger_url)
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for body in sim.create_requests:
        assert body == want[body["reference"]]["create"]
    schedules = {job_id: body for job_id, body in sim.schedule_requests}
    for job in sim.jobs:
        assert schedules.get(job["id"]) == want[job["reference"]]["schedule"]


# --- token renewal --------------------------------------------------------------------------------------


def test_a_token_shorter_lived_than_the_refresh_margin_is_not_renewed_before_every_request():
    from flows.http.auth import build_auth
    from flows.mapping.model import OAuth2ClientCredentials

    now = [0.0]
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(now[0])
        return web.json_response({"access_token": f"t{len(calls)}", "expires_in": 60})

    app = web.Application()
    app.router.add_post("/tokens", handler)

    async def go(url: str) -> None:
        client = Client(url, concurrency=1, timeout=5, connect_timeout=2)
        await client.open()
        try:
            await auth.login(client)
            for t in (1, 10, 29):  # within the first half of the 60 s lifetime: the same token
                now[0] = t
                await auth.ensure_fresh(client)
            now[0] = 31  # past half: renewed once
            await auth.ensure_fresh(client)
            await auth.ensure_fresh(client)
        finally:
            await client.close()

    with LoopbackServer(app) as url:
        spec = OAuth2ClientCredentials(kind="oauth2_client_credentials", token_url=f"{url}/tokens",
                                       client_id="ID", client_secret="SECRET", refresh_margin_seconds=60)
        auth = build_auth(spec, "bigchange", {"ID": "a", "SECRET": "b"})
        auth._clock = lambda: now[0]
        asyncio.run(go(url))
    assert calls == [0.0, 31] and auth.headers()["Authorization"] == "Bearer t2"


# --- the read-back (issue 11): every page, normalised references, unsure is unknown ---------------------


def _with_sender(env, ledger_url, body):
    """Run ``body(run)`` inside a logged-in run over the sample sheet (names resolved to ids)."""
    run = ImportRun(prepare(SHEET, MAPPING), RunOptions(env=env, ledger_url=ledger_url, rate=None))

    async def go():
        async with run:
            return await body(run)

    try:
        return asyncio.run(go())
    finally:
        run.close()


def test_the_job_read_back_reads_every_page_and_compares_references_without_case_or_spacing(
        sim, env, ledger_url, monkeypatch):
    from flows.providers import bigchange

    monkeypatch.setattr(bigchange, "PAGE_SIZE", 5)  # a provider answering 5 a page: 13 jobs are 3 pages

    async def body(run):
        row = dict(run.plan.valid[0].payload)
        row.pop("schedule", None)
        ids = []
        for i in range(13):
            created = await run._sender.call("POST", "/jobs", json_body={**row, "reference": f"  chk-{i:03d} "})
            ids.append(str(created.json()["id"]))
        found = await bigchange.find_job(run._sender, {**row, "reference": "CHK-012"})
        missing = await bigchange.find_job(run._sender, {**row, "reference": "CHK-013"})
        return ids, found, missing

    ids, found, missing = _with_sender(env, ledger_url, body)
    assert found == ids[12] and missing is None
    assert sim.requests["GET /v1/jobs"] >= 6, "both checks read all three pages"


def test_two_jobs_with_the_rows_reference_leave_it_unknown_and_unsent(sim, env, ledger_url, tmp_path):
    sim.faults = Faults(drop_after_store_rate=0.3, seed=11)
    mapping = fast(tmp_path, connection__timeout_seconds=0.3)
    first = run_import(env, ledger_url, mapping=mapping)
    unknown = sorted(ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN)
    assert unknown
    sim.faults = Faults()
    twice = unknown[0]
    job = jobs_by_ref(sim)[twice][0]

    async def body(run):  # someone else books the same reference again
        await run._sender.call("POST", "/jobs", json_body={"typeId": job["typeId"], "contactId": job["contactId"],
                                                           "reference": twice.lower(), "orderNumber": "PO-1"})
    _with_sender(env, ledger_url, body)
    posts = sim.requests["POST /v1/jobs"]
    second = run_import(env, ledger_url, mapping=mapping)
    o = by_ref(second)[twice]
    assert o.status is Status.UNKNOWN and "2 jobs match this row" in o.message, o
    assert sim.requests["POST /v1/jobs"] == posts + len(REJECTED), "nothing was created again"
    for ref in unknown[1:]:
        assert by_ref(second)[ref].status is Status.CREATED
