"""The BigChange simulator, read like BigChange's docs, over a real loopback server; the sample
sheet; and the one provider id naming mapping, module, sample folder, env vars and simulator."""
from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pandas as pd
import pytest

from flows.hooks import resolve
from flows.mapping.catalog import provider_ids
from flows.mapping.model import load_mapping
from flows.sandbox import SIMULATORS, BigChangeSimulator, Faults, SimulatorServer
from flows.sandbox import bigchange as bc
from flows.sandbox.bigchange_api import DEFAULT_PAGE_SIZE
from flows.sandbox.demo import DEMOS, sandbox_env

from .conftest import MAPPINGS, ROOT, SAMPLES

SAMPLE_DIR = SAMPLES / "bigchange"


class BigChange:
    """A running simulator, its base URL, a token and a client that sends it with the Customer-Id."""

    def __init__(self, **kwargs) -> None:
        self.sim = BigChangeSimulator(**kwargs)
        self.server = SimulatorServer(self.sim)
        self.url = self.server.start()
        self.raw = httpx.Client(base_url=self.url, timeout=5)
        self.token = self.login().json()["access_token"]
        self.client = httpx.Client(base_url=self.url + "/v1", timeout=5, headers={
            "Authorization": f"Bearer {self.token}", "Customer-Id": bc.DEFAULT_CUSTOMER_ID})

    def login(self, secret: str = bc.DEFAULT_CLIENT_SECRET, **form) -> httpx.Response:
        data = {"grant_type": "client_credentials", "client_id": bc.DEFAULT_CLIENT_ID, "client_secret": secret,
                "scope": "jobs:read jobs:write", **form}  # Create Job needs jobs:write
        return self.raw.post(bc.TOKEN_PATH, data=data)

    def create(self, **overrides) -> httpx.Response:
        body = {"typeId": 101, "contactId": 5001, "reference": "T-1", **overrides}
        return self.client.post("/jobs", json={k: v for k, v in body.items() if v is not ...})

    def close(self) -> None:
        self.client.close()
        self.raw.close()
        self.server.stop()


@pytest.fixture
def api() -> Iterator[BigChange]:
    b = BigChange()
    yield b
    b.close()


def is_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body) and body["status"] == status
    return body


# --- OAuth2 ---------------------------------------------------------------------------------------------


def test_client_credentials_give_a_jwt_looking_bearer_token(api):
    r = api.login()
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    _header, payload, _signature = body["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == bc.DEFAULT_CLIENT_ID and claims["exp"] > time.time() + 3000
    assert api.sim.logins == 2  # the fixture's and this one


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"client_secret": "wrong"}, 401, "invalid_client"),
    ({"client_id": "someone-else"}, 401, "invalid_client"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type"),
])
def test_bad_client_credentials_are_refused(api, form, status, error):
    data = {"grant_type": "client_credentials", "client_id": bc.DEFAULT_CLIENT_ID,
            "client_secret": bc.DEFAULT_CLIENT_SECRET, **form}
    r = api.raw.post(bc.TOKEN_PATH, data=data)
    assert r.status_code == status and r.json()["error"] == error


def test_every_v1_call_needs_a_valid_unexpired_token(api):
    assert api.client.get("/jobTypes").status_code == 200
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = api.client.get("/jobTypes", headers=headers)
        assert "invalid_token" in r.headers["WWW-Authenticate"]
        is_problem(r, 401)
    api.sim.expire_tokens()
    is_problem(api.client.get("/jobTypes"), 401)
    assert api.sim.unauthorized == 4


def test_tokens_expire_after_their_lifetime():
    """On the simulator's clock, the test's own: it used to sleep 1.1 s past a 1 s token, and a busy machine
    could take longer than the second between the login and the first call."""
    now = [500.0]
    b = BigChange(token_lifetime=1.0, clock=lambda: now[0])
    try:
        assert b.login().json()["expires_in"] == 1.0
        assert b.client.get("/jobTypes").status_code == 200
        now[0] += 0.99
        assert b.client.get("/jobTypes").status_code == 200  # the fixture's token, issued at 500.0
        now[0] += 0.02
        is_problem(b.client.get("/jobTypes"), 401)
        assert b.sim.unauthorized == 1
    finally:
        b.close()


@pytest.mark.parametrize(("customer", "status"), [(None, 400), ("abc", 400), ("999", 403)])
def test_the_customer_id_header_is_required_and_checked(api, customer, status):
    headers = dict(api.client.headers)
    headers.pop("customer-id")
    if customer is not None:
        headers["Customer-Id"] = customer
    r = httpx.get(api.url + "/v1/jobTypes", headers=headers)
    assert "customer" in is_problem(r, status)["detail"].casefold()


# --- lists --------------------------------------------------------------------------------------------


def test_lists_are_paged_up_to_1000_items(api):
    first = api.client.get("/contacts", params={"pageNumber": 1, "pageSize": 1000}).json()
    second = api.client.get("/contacts", params={"pageNumber": 2, "pageSize": 1000}).json()
    assert len(first["items"]) == 1000 and len(second["items"]) == len(bc.DEFAULT_CONTACTS) - 1000
    assert first["totalCount"] == len(bc.DEFAULT_CONTACTS) and second["pageNumber"] == 2
    assert len(api.client.get("/contacts").json()["items"]) == DEFAULT_PAGE_SIZE
    body = is_problem(api.client.get("/contacts", params={"pageSize": 1001}), 400)
    assert body["errors"] == {"pageSize": ["must be between 1 and 1000"]}
    assert "pageNumber" in is_problem(api.client.get("/jobTypes", params={"pageNumber": 0}), 400)["errors"]


def test_reference_lists_hold_the_names_the_sample_uses(api):
    names = {path: {i["name"] for i in api.client.get(path, params={"pageSize": 1000}).json()["items"]}
             for path in ("/jobTypes", "/resources")}
    assert {"Boiler Service", "Boiler Repair", "Gas Safety Certificate"} <= names["/jobTypes"]
    assert "Sam Patel" in names["/resources"]
    contacts = api.client.get("/contacts", params={"pageSize": 20}).json()["items"]
    assert [c["id"] for c in contacts if c["name"] == "Bright Homes Lettings"] == [5002, 5003]
    people = api.client.get("/persons").json()["items"]
    assert {"id", "contactId", "firstName", "lastName", "email"} <= set(people[0])


def test_custom_field_definitions_filter_by_entity_type(api):
    every = api.client.get("/customFieldDefinitions").json()["items"]
    jobs = api.client.get("/customFieldDefinitions", params={"entityType": "job"}).json()["items"]
    assert [d["name"] for d in every].count("Gate Code") == 2
    assert [d["name"] for d in jobs].count("Gate Code") == 1 and all(d["entityType"] == "job" for d in jobs)


# --- create -------------------------------------------------------------------------------------------


def test_create_answers_201_with_the_id(api):
    r = api.create(plannedDuration=None, description="Annual service",
                   customFields=[{"definitionId": 71, "value": "Baxi"}])
    assert r.status_code == 201 and set(r.json()) == {"id"}
    job_id = r.json()["id"]
    assert r.headers["Location"] == f"/v1/jobs/{job_id}"
    job = api.client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "new" and job["plannedDuration"] == 60  # the job type's default
    assert job["typeName"] == "Boiler Service" and job["contactName"] == "Acme Ltd"
    assert job["customFields"] == [{"definitionId": 71, "name": "Boiler Make", "value": "Baxi"}]
    assert datetime.fromisoformat(job["createdAt"].replace("Z", "+00:00")) > datetime.now(UTC) - timedelta(minutes=1)


def test_a_missing_order_number_is_a_422_with_an_errors_map(api):
    r = api.create(typeId=102)
    body = is_problem(r, 422)
    assert body["errors"] == {"orderNumber": ["required for this job type"]}
    assert api.create(typeId=102, orderNumber="PO-1").status_code == 201


@pytest.mark.parametrize(("overrides", "errors"), [
    ({"typeId": ...}, {"typeId": ["is required"]}),
    ({"typeId": 999}, {"typeId": ["job type 999 does not exist"]}),
    ({"contactId": 1}, {"contactId": ["contact 1 does not exist"]}),
    ({"plannedDuration": 0}, {"plannedDuration": ["must be between 1 and 10080 minutes"]}),
    ({"personId": "not-a-uuid"}, {"personId": ["is not a valid uuid"]}),
    ({"customFields": [{"definitionId": 73, "value": "1234"}]},
     {"CustomFields[0].DefinitionId": ["custom field definition 73 (Gate Code) is not a job field"]}),
])
def test_semantic_problems_are_422_per_property(api, overrides, errors):
    assert is_problem(api.create(**overrides), 422)["errors"] == errors


def test_a_contact_person_must_belong_to_the_customer(api):
    person = bc.DEFAULT_PEOPLE[2]  # Harbour View Flats
    assert api.create(contactId=5004, personId=person.id).status_code == 201
    problem = is_problem(api.create(personId=person.id), 422)
    assert "is not a contact person of Acme Ltd" in problem["errors"]["personId"][0]


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]",
                                     json.dumps({"typeId": "Boiler Service", "contactId": 5001}).encode()])
def test_malformed_bodies_are_400_problems(api, content):
    r = api.client.post("/jobs", content=content, headers={"Content-Type": "application/json"})
    is_problem(r, 400)
    assert api.sim.jobs == []


def test_an_auto_reference_job_type_fills_a_missing_reference(api):
    job_id = api.create(typeId=107, reference=...).json()["id"]
    assert api.client.get(f"/jobs/{job_id}").json()["reference"] == f"AUTO-{job_id}"


# --- schedule -----------------------------------------------------------------------------------------


def test_schedule_assigns_a_resource_and_time(api):
    job_id = api.create(plannedDuration=90).json()["id"]
    r = api.client.put(f"/jobs/{job_id}/schedule",
                       json={"resourceId": 301, "plannedStartAt": "2027-03-29T08:00:00.000Z"})
    assert r.status_code == 204 and r.content == b""
    job = api.client.get(f"/jobs/{job_id}").json()
    assert (job["status"], job["resourceName"]) == ("scheduled", "Sam Patel")
    assert (job["plannedStartAt"], job["plannedEndAt"]) == ("2027-03-29T08:00:00+00:00", "2027-03-29T09:30:00+00:00")
    # the same PUT again is harmless (the importer resends it after a lost answer)
    assert api.client.put(f"/jobs/{job_id}/schedule",
                          json={"resourceId": 301, "plannedStartAt": "2027-03-29T08:00:00Z"}).status_code == 204
    assert api.client.get(f"/jobs/{job_id}").json()["plannedStartAt"] == "2027-03-29T08:00:00+00:00"
    # nulls unschedule
    assert api.client.put(f"/jobs/{job_id}/schedule",
                          json={"resourceId": None, "plannedStartAt": None}).status_code == 204
    assert api.client.get(f"/jobs/{job_id}").json()["status"] == "new"


def test_schedule_errors(api):
    job_id = api.create().json()["id"]
    start = "2027-03-29T08:00:00Z"
    is_problem(api.client.put("/jobs/42/schedule", json={"resourceId": 301, "plannedStartAt": start}), 404)
    is_problem(api.client.get("/jobs/42"), 404)
    body = is_problem(api.client.put(f"/jobs/{job_id}/schedule",
                                     json={"resourceId": 999, "plannedStartAt": start}), 422)
    assert body["errors"] == {"resourceId": ["resource 999 does not exist"]}
    body = is_problem(api.client.put(f"/jobs/{job_id}/schedule", json={"resourceId": 301}), 422)
    assert body["errors"] == {"plannedStartAt": ["is required to schedule a job"]}
    api.sim.busy_resources = {301}
    body = is_problem(api.client.put(f"/jobs/{job_id}/schedule",
                                     json={"resourceId": 301, "plannedStartAt": start}), 422)
    assert body["errors"] == {"resourceId": ["Sam Patel is not available at that time"]}
    api.sim.schedule_outage = True
    is_problem(api.client.put(f"/jobs/{job_id}/schedule", json={"resourceId": 302, "plannedStartAt": start}), 503)
    assert api.sim.jobs[0]["status"] == "new"


# --- job list -----------------------------------------------------------------------------------------


def test_the_job_list_filters_by_contact_reference_and_created_at(api):
    ids = [api.create(reference=f"T-{i}", contactId=5001 if i % 2 else 5004).json()["id"] for i in range(6)]
    acme = api.client.get("/jobs", params={"contactId": 5001}).json()
    assert [j["id"] for j in acme["items"]] == ids[1::2] and acme["totalCount"] == 3
    assert [j["id"] for j in api.client.get("/jobs", params={"reference": "T-4"}).json()["items"]] == [ids[4]]
    now = datetime.now(UTC)
    window = {"createdAtFrom": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "createdAtTo": (now + timedelta(minutes=5)).isoformat()}
    assert len(api.client.get("/jobs", params=window).json()["items"]) == 6
    past = {"createdAtTo": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert api.client.get("/jobs", params=past).json()["items"] == []
    assert len(api.client.get("/jobs", params={"pageSize": 4, "pageNumber": 2}).json()["items"]) == 2
    assert "createdAtFrom" in is_problem(api.client.get("/jobs", params={"createdAtFrom": "yesterday"}), 400)["errors"]


# --- faults and control routes ------------------------------------------------------------------------


def test_faults_hit_v1_writes_but_never_the_token_endpoint(api):
    api.sim.faults = Faults(unavailable_rate=1.0)
    assert api.login().status_code == 200
    body = is_problem_json(api.create(), 503)
    assert body["status"] == 503 and body["title"] == "Service Unavailable"
    assert api.client.get("/jobTypes").status_code == 200  # reads are not faulted
    assert api.sim.fault_counts["unavailable"] == 1 and api.sim.jobs == []


def is_problem_json(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status
    return r.json()


def test_sandbox_routes_show_state_set_faults_and_reset(api):
    api.create()
    state = api.raw.get("/_sandbox/state").json()
    assert state["provider"] == "bigchange" and state["counts"]["jobs"] == 1 and len(state["jobs"]) == 1
    assert "_created" not in state["jobs"][0]
    assert api.raw.post("/_sandbox/faults", json={"latency_ms": 1}).json()["faults"]["latency_ms"] == 1
    assert api.raw.post("/_sandbox/faults", json={"bogus": 1}).status_code == 400
    assert api.raw.post("/_sandbox/reset").json()["jobs"] == 0
    assert api.sim.jobs == [] and api.sim.faults == Faults()
    is_problem(api.client.get("/jobTypes"), 401)  # a reset forgets tokens too


# --- the sample sheet ---------------------------------------------------------------------------------


def test_the_sample_generator_is_deterministic(tmp_path):
    import subprocess
    import sys

    subprocess.run([sys.executable, str(SAMPLE_DIR / "make_sample.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    fresh = pd.read_excel(tmp_path / "jobs.xlsx", sheet_name="Jobs", dtype=str, keep_default_na=False,
                          engine="calamine")
    bundled = pd.read_excel(SAMPLE_DIR / "jobs.xlsx", sheet_name="Jobs", dtype=str, keep_default_na=False,
                            engine="calamine")
    pd.testing.assert_frame_equal(fresh, bundled)


def test_the_sample_sheet_spans_the_clock_change_with_names_the_simulator_knows():
    df = pd.read_excel(SAMPLE_DIR / "jobs.xlsx", sheet_name="Jobs", dtype=str, keep_default_na=False, engine="calamine")
    assert len(df) >= 40
    days = set()
    for value in df["Planned Date"]:
        if value:
            days.add(date.fromisoformat(value[:10]) if re.match(r"\d{4}-", value)
                     else datetime.strptime(value, "%d/%m/%Y").date())
    assert min(days) < date(2027, 3, 28) < max(days)
    assert (df["Duration (mins)"] == "").sum() >= 5
    known = {"Job Type": {t.name.casefold() for t in bc.DEFAULT_JOB_TYPES},
             "Customer": {c.name.casefold() for c in bc.DEFAULT_CONTACTS},
             "Engineer": {r.name.casefold() for r in bc.DEFAULT_RESOURCES},
             "Site Contact Email": {p.email for p in bc.DEFAULT_PEOPLE}}
    unknown = {(col, v) for col, names in known.items() for v in df[col]
               if v and " ".join(v.split()).casefold() not in names}
    assert unknown == {("Job Type", "Boiler Servise"), ("Customer", "Acme Limited"), ("Engineer", "Sam Patle")}


# --- one provider id ----------------------------------------------------------------------------------


def test_the_bigchange_id_names_mapping_module_sample_simulator_and_env_vars():
    assert "bigchange" in provider_ids() and SIMULATORS["bigchange"] is BigChangeSimulator
    mapping = load_mapping(MAPPINGS / "bigchange.yaml")
    assert mapping.provider == "bigchange"
    for ref in (mapping.request.contract, mapping.request.handler, mapping.request.readback):
        assert resolve(ref)
    demo = next(d for d in DEMOS if d.provider == "bigchange")
    assert (ROOT / demo.sheet).is_file() and (ROOT / demo.mapping) == MAPPINGS / "bigchange.yaml"
    auth = mapping.connection.auth
    needed = {auth.client_id, auth.client_secret, *auth.headers.values(), "BIGCHANGE_BASE_URL", "BIGCHANGE_TOKEN_URL"}
    env = sandbox_env("bigchange", "http://127.0.0.1:1")
    assert set(env) == needed and all(k.startswith("BIGCHANGE_") for k in env)
