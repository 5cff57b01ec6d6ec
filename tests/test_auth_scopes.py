"""OAuth2 scopes, as BigChange documents them: "Create a new job (required scope jobs:write)". The mapping
names the scopes (connection.auth.scope), the client-credentials token request sends them, and the
simulator, like an RFC 6750 resource server, answers a token without the scope with 403
insufficient_scope. Everything over loopback against flows/sandbox/bigchange.py."""
from __future__ import annotations

import base64
import json
from collections import Counter

import httpx
import pytest

from flows.engine.run import ImportRun
from flows.errors import ConfigError, CredentialsError
from flows.mapping.model import load_mapping
from flows.sandbox import BigChangeSimulator
from flows.sandbox import bigchange as bc
from flows.sandbox.demo import sandbox_env

from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant, served

SHEET = SAMPLES / "bigchange" / "jobs.xlsx"


@pytest.fixture
def sim():
    with served(BigChangeSimulator()) as sim:
        yield sim


def run_import(sim, ledger_url, mapping) -> ImportRun:
    return import_now(SHEET, mapping, env=sandbox_env("bigchange", sim.url), ledger_url=ledger_url, rate=None)


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- the simulator: token requests and what a token may do ---------------------------------------------------

#: (scope asked for in the token request, or None for no `scope` field; status; scope granted or OAuth2 error)
TOKEN_REQUESTS = [
    ("jobs:read jobs:write", 200, "jobs:read jobs:write"),
    ("jobs:write", 200, "jobs:write"),
    (None, 200, ""),  # no default: RFC 6749 3.3 leaves it to the server, and this one grants none
    ("jobs:write jobs:admin", 400, "invalid_scope"),  # a scope the client was not granted
]


@pytest.mark.parametrize(("scope", "status", "granted"), TOKEN_REQUESTS)
def test_the_token_carries_the_scopes_asked_for(sim, scope, status, granted):
    form = {"grant_type": "client_credentials", "client_id": bc.DEFAULT_CLIENT_ID,
            "client_secret": bc.DEFAULT_CLIENT_SECRET}
    if scope is not None:
        form["scope"] = scope
    r = httpx.post(sim.url + bc.TOKEN_PATH, data=form)
    assert r.status_code == status
    if status == 200:
        assert r.json()["scope"] == granted == claims(r.json()["access_token"])["scope"]
    else:
        assert r.json()["error"] == granted


#: (scopes of the token, method, path, status): Create Job needs jobs:write [C]; schedule and reads [I]
SCOPED_CALLS = [
    ("jobs:read jobs:write", "POST", "/v1/jobs", 201),
    ("jobs:read", "POST", "/v1/jobs", 403),
    ("", "POST", "/v1/jobs", 403),
    ("jobs:write", "GET", "/v1/jobs", 403),
    ("jobs:read", "GET", "/v1/jobs", 200),
    ("jobs:read", "PUT", "/v1/jobs/1/schedule", 403),
    ("", "GET", "/v1/jobTypes", 200),  # reference lists need no jobs scope
]


@pytest.mark.parametrize(("scope", "method", "path", "status"), SCOPED_CALLS)
def test_a_call_needs_its_scope_else_403_insufficient_scope(sim, scope, method, path, status):
    token = httpx.post(sim.url + bc.TOKEN_PATH,
                       data={"grant_type": "client_credentials", "client_id": bc.DEFAULT_CLIENT_ID,
                             "client_secret": bc.DEFAULT_CLIENT_SECRET, "scope": scope}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "Customer-Id": bc.DEFAULT_CUSTOMER_ID}
    body = {"typeId": 101, "contactId": 5001, "reference": "S-1"} if method == "POST" else None
    r = httpx.request(method, sim.url + path, headers=headers, json=body)
    assert r.status_code == status, r.text
    if status == 403:
        needed = "jobs:read" if method == "GET" else "jobs:write"
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["detail"] == f"The access token lacks the required scope {needed}."
        assert r.headers["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{needed}"'
    if method == "POST" and status == 403:
        assert sim.jobs == []


# --- the importer: the mapping names the scopes and the token request sends them --------------------------------

def test_the_bundled_mapping_asks_for_jobs_write_and_creates_the_jobs(sim, ledger_url):
    assert load_mapping(MAPPINGS / "bigchange.yaml").connection.auth.scope == "jobs:read jobs:write"
    run = run_import(sim, ledger_url, MAPPINGS / "bigchange.yaml")
    assert Counter(o.status.value for o in run.outcomes)["created"] == 40
    assert sim.insufficient_scope == 0 and len(sim.jobs) == 40


def test_a_mapping_without_the_scope_stops_at_the_first_job_naming_it(sim, ledger_url, tmp_path):
    mapping = mapping_variant(tmp_path, "bigchange.yaml", connection__auth__scope=None)
    run = run_import(sim, ledger_url, mapping)
    counts = Counter(o.status.value for o in run.outcomes)
    failed = [o for o in run.outcomes if o.status.value == "failed"]
    assert sim.jobs == [] and counts["created"] == 0
    assert 1 <= len(failed) <= 8 and counts["skipped"] >= 34  # the rows in flight when the first 403 came back
    assert "add the scope named here to connection.auth.scope" in failed[0].message
    assert "lacks the required scope jobs:write" in failed[0].message


def test_a_scope_the_client_may_not_have_is_refused_at_login_before_any_job(sim, ledger_url, tmp_path):
    mapping = mapping_variant(tmp_path, "bigchange.yaml", connection__auth__scope=["jobs:write", "jobs:admin"])
    with pytest.raises(CredentialsError, match=r"refused the scopes asked for \(jobs:write jobs:admin; "
                                               r"400 invalid_scope\): fix connection\.auth\.scope"):
        run_import(sim, ledger_url, mapping)
    assert sim.create_requests == []


#: (scope as written in the mapping, as sent, or the error)
SCOPE_SPELLINGS = [
    ("jobs:read jobs:write", "jobs:read jobs:write"),
    (["jobs:read", "jobs:write"], "jobs:read jobs:write"),
    (["jobs:write", "jobs:write"], "jobs:write"),
    ("  jobs:write  ", "jobs:write"),
    ([""], ConfigError),
    ([], ConfigError),
    (["jobs:read jobs:write"], ConfigError),
]


@pytest.mark.parametrize(("written", "sent"), SCOPE_SPELLINGS)
def test_scopes_may_be_a_list_or_one_string(tmp_path, written, sent):
    mapping = mapping_variant(tmp_path, "bigchange.yaml", connection__auth__scope=written)
    if sent is ConfigError:
        with pytest.raises(ConfigError, match=r"connection\.auth.*scope"):
            load_mapping(mapping)
    else:
        assert load_mapping(mapping).connection.auth.scope == sent
