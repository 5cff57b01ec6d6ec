"""The Systems X Bridge simulator as the docs describe the API: form and JSON bodies, api_key in the
body, 400 {hash, errors} per missing field, 200 {hash}, then the "return_url Response" callback."""
from __future__ import annotations

import json
import time
import urllib.parse

import httpx
import pytest
from aiohttp import web

from flows.sandbox import DEFAULT_BRIDGE_API_KEY, BridgeSimulator, Faults, SimulatorServer
from flows.sandbox.systemsx_bridge import BOOKING_PATH

from .bridge_support import bridge  # noqa: F401  (fixture)

GOOD = {"api_key": DEFAULT_BRIDGE_API_KEY, "type": "po", "bookingReference": "PO-1001",
        "organisationName": "Harbour Lights", "agentName": "Megan Hale", "bookingFields[username]": "mhale",
        "bookingFields[password]": "Tr0ub4dor&3"}


def post_form(url: str, fields: dict) -> httpx.Response:
    return httpx.post(url + BOOKING_PATH, data=fields)


class Recorder:
    """A stand-in for a return_url: keeps each POST it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def app(self) -> web.Application:
        async def take(request: web.Request) -> web.Response:
            self.calls.append((request.content_type, await request.read()))
            return web.json_response({"ok": True})

        app = web.Application()
        app.router.add_post("/{tail:.*}", take)
        return app


def wait_for(predicate, timeout: float = 30.0) -> bool:  # a backstop: returns as soon as it holds
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_form_body_with_bracket_keys_is_queued_with_a_hash(bridge):
    r = post_form(bridge.url, GOOD)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"hash"} and len(body["hash"]) == 21
    job = bridge.jobs[0]
    assert (job.hash, job.type, job.bookingReference) == (body["hash"], "po", "PO-1001")
    assert job.bookingFields == {"username": "mhale", "password": "Tr0ub4dor&3"}
    assert bridge.received[0].content_type == "application/x-www-form-urlencoded"
    assert b"bookingFields%5Busername%5D=mhale" in bridge.received[0].raw


def test_a_json_body_with_a_nested_bookingfields_object_is_queued(bridge):
    body = {k: v for k, v in GOOD.items() if "[" not in k}
    body["bookingFields"] = {"email_address": "ann@example.com", "password": "pw-1234"}
    r = httpx.post(bridge.url + BOOKING_PATH, json=body)
    assert r.status_code == 200
    assert bridge.jobs[0].bookingFields == {"email_address": "ann@example.com", "password": "pw-1234"}
    assert json.loads(bridge.received[0].raw) == body


@pytest.mark.parametrize("change, errors", [
    ({"type": None, "agentName": None}, ["type field is Missing or Empty.", "agentName field is Missing or Empty."]),
    ({"bookingReference": " ", "organisationName": ""},
     ["bookingReference field is Missing or Empty.", "organisationName field is Missing or Empty."]),
    ({"bookingFields[username]": None},
     ["bookingFields[username] or bookingFields[email_address] field is Missing or Empty."]),
    ({"bookingFields[email_address]": "a@example.com"},
     ["Only one of bookingFields[username] or bookingFields[email_address] should be provided."]),
    ({"bookingFields[username]": None, "bookingFields[email_address]": "not-an-address"},
     ["bookingFields[email_address] field is Invalid."]),
    ({"bookingFields[password]": None}, ["bookingFields[password] field is Missing or Empty."]),
    ({"type": "cunard"}, ["type field is Invalid."]),
    ({"api_key": None}, ["api_key field is Missing or Empty."]),
], ids=["type+agent", "blank-reference+organisation", "no-login", "both-logins", "bad-email", "no-password",
        "unknown-type", "no-api-key"])
def test_400_lists_each_problem_and_still_gives_a_hash(bridge, change, errors):
    fields = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    r = post_form(bridge.url, fields)
    assert r.status_code == 400
    assert r.json()["errors"] == errors and len(r.json()["hash"]) == 21
    assert bridge.jobs == []


def test_a_wrong_api_key_is_401_without_a_hash(bridge):
    r = post_form(bridge.url, {**GOOD, "api_key": "sx_wrong"})
    assert (r.status_code, r.json()) == (401, {"errors": ["Invalid api_key."]})
    assert bridge.jobs == []


def test_an_unreadable_body_is_400(bridge):
    r = httpx.post(bridge.url + BOOKING_PATH, content=b"[1, 2", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "hash" in r.json()


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_the_return_url_response_comes_after_the_delay_with_credentials_echoed(encoding):
    recorder = Recorder()
    sim = BridgeSimulator(callback_delay=0.05, callback_encoding=encoding)
    with SimulatorServer(recorder) as hook, SimulatorServer(sim) as url:
        r = post_form(url, {**GOOD, "return_url": f"{hook}/cb/tok123"})
        assert r.status_code == 200
        # until the simulator has read the answer too (stopping it earlier cancels its callback task)
        assert wait_for(lambda: recorder.calls and sim.jobs[0].callback != "pending")
    ctype, raw = recorder.calls[0]
    if encoding == "json":
        assert ctype == "application/json"
        body = json.loads(raw)
    else:
        assert ctype == "application/x-www-form-urlencoded"
        pairs = dict(urllib.parse.parse_qsl(raw.decode()))
        assert pairs["ImportDetail[importRequest][bookingFields][password]"] == "Tr0ub4dor&3"
        from flows.http.callbacks import decode_form

        body = decode_form(urllib.parse.parse_qsl(raw.decode()))
    request = body["ImportDetail"]["importRequest"]
    assert body["hash"] == r.json()["hash"]
    assert set(request) == {"sourceReference", "bookingReference", "bookingFields", "returnUrl", "api_key", "type"}
    assert request["api_key"] == DEFAULT_BRIDGE_API_KEY and request["bookingFields"]["password"] == "Tr0ub4dor&3"
    assert ((request["bookingReference"], request["type"], request["returnUrl"])
            == ("PO-1001", "po", f"{hook}/cb/tok123"))
    assert sim.jobs[0].callback == "sent 200"


def test_held_callbacks_go_out_when_released(bridge):
    recorder = Recorder()
    with SimulatorServer(recorder) as hook:
        post_form(bridge.url, {**GOOD, "return_url": f"{hook}/x"})
        post_form(bridge.url, {**GOOD, "bookingReference": "PO-1002"})  # no return_url: no callback
        time.sleep(0.1)
        assert recorder.calls == [] and [j.callback for j in bridge.jobs] == ["held", "none"]
        assert bridge.release_callbacks() == 1
        assert len(recorder.calls) == 1
    assert bridge.release_callbacks() == 0


def test_an_unreachable_return_url_is_recorded_not_fatal():
    sim = BridgeSimulator(callback_delay=0.0)
    with SimulatorServer(sim) as url:
        assert post_form(url, {**GOOD, "return_url": "http://127.0.0.1:9/nobody"}).status_code == 200
        assert wait_for(lambda: sim.callbacks)
    assert "error" in sim.callbacks[0] and sim.jobs[0].callback.startswith("failed")


def test_fault_knobs_answer_in_the_bridge_error_shape():
    sim = BridgeSimulator(faults=Faults(unavailable_rate=1.0))
    with SimulatorServer(sim) as url:
        r = post_form(url, GOOD)
        assert r.status_code == 503 and isinstance(r.json()["errors"], list)
        assert sim.jobs == []
        httpx.post(url + "/_sandbox/faults", json={"rate_limit": 1})
        codes = [post_form(url, {**GOOD, "bookingReference": f"PO-{i}"}).status_code for i in range(3)]
        assert codes[0] == 200 and 429 in codes[1:]


def test_sandbox_state_never_shows_credentials(bridge):
    post_form(bridge.url, GOOD)
    state = httpx.get(bridge.url + "/_sandbox/state").text
    assert state.count("PO-1001") == 1
    assert "Tr0ub4dor" not in state and DEFAULT_BRIDGE_API_KEY not in state
    assert httpx.post(bridge.url + "/_sandbox/reset").json()["jobs"] == 0 and bridge.jobs == []
