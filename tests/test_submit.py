"""The sender against a scripted provider on loopback: what is retried, what is not.

Each test scripts the provider's answers in order, the way the provider's docs describe them
(Jicoo: ``POST /v1/bookings`` with ``X-Jicoo-Api-Key``, 201 with a booking ``uid``). The provider
is a real aiohttp server on 127.0.0.1 reached through the sender's own code; ``api.jicoo.test``
resolves to it (a resolver double), and the one failure a server cannot produce on demand, a
refused connection or no free connection in time, is scripted in the connector (the transport
level). Time is fake: ``sleep`` and the clock are injected, so a ``Retry-After: 30`` takes no real
time and the waits can be asserted exactly.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDictProxy, MultiDictProxy

from flows.http.auth import Auth, BodyKey, HeaderKey
from flows.http.ratelimit import HEADROOM, TOLERANCE
from flows.http.sender import (
    CallResult,
    RateLimiter,
    ReadbackError,
    Sender,
    classify_error,
    encode_form,
    response_messages,
    retry_after_seconds,
)
from flows.outcomes import Action, Rule

BASE_URL = "http://api.jicoo.test/v1"
KEY = "sk_live_test_0123456789"
BOOKING = {
    "eventTypeId": "mzgdPJVBb7RE",
    "startedAt": "2026-07-16T08:00:00.000Z",
    "timeZone": "Europe/London",
    "email": "ann@example.com",
    "name": "Ann Lee",
    "locationId": "inPerson",
}


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Answer:
    """One scripted HTTP answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def of_json(cls, status: int, data: Any, **headers: str) -> Answer:
        return cls(status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode())

    def response(self) -> web.Response:
        return web.Response(status=self.status, headers=self.headers, body=self.body)


#: failures of the transport, scripted like answers
REFUSED = "connection refused"  # in the connector: nothing left this machine
POOL_TIMEOUT = "no free connection in time"  # in the connector: nothing left this machine
HANG = "no answer"  # the server reads the request and never answers (the sender's read timeout fires)
DROP = "connection reset"  # the server reads the request, then resets the connection
CUT = "body cut short"  # the server answers 201 and closes the connection halfway through the body


@dataclass
class Seen:
    """A request as the provider received it."""

    method: str
    url: str
    headers: CIMultiDictProxy[str]
    query: MultiDictProxy[str]
    content: bytes


class _ToLoopback(AbstractResolver):
    """Every host name resolves to the scripted provider on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=self.port, family=socket.AF_INET, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


class ScriptedConnector(aiohttp.TCPConnector):
    """The test double at the transport level: a TCP connector to the provider's loopback port that
    refuses a connection (or finds none free in time) where the script says so."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(resolver=_ToLoopback(provider.port), limit=4)
        self.provider = provider

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        self.provider.attempts += 1
        step = self.provider.next_step(peek=True)
        if step == REFUSED:
            self.provider.next_step()
            raise aiohttp.ClientConnectorError(req.connection_key, ConnectionRefusedError(111, "Connection refused"))
        if step == POOL_TIMEOUT:
            self.provider.next_step()
            raise aiohttp.ConnectionTimeoutError("no free connection in time")
        return await super().connect(req, traces, timeout)


class Provider:
    """Answers requests from a script, one step per request; the last step repeats. Serve it with
    ``async with provider:`` (inside the test's event loop); ``provider.connector`` reaches it."""

    def __init__(self, *steps: Any) -> None:
        assert steps
        self.steps = list(steps)
        self.requests: list[Seen] = []
        self.attempts = 0  # requests the sender tried to send, refused ones included
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._never = asyncio.Event()

    def next_step(self, peek: bool = False) -> Any:
        if peek or len(self.steps) == 1:
            return self.steps[0]
        return self.steps.pop(0)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.method, str(request.url), request.headers, request.query,
                                  await request.read()))
        step = self.next_step()
        if step == HANG:
            await self._never.wait()
        if step == DROP:
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=201)  # never written: the connection is gone
        if step == CUT:
            response = web.StreamResponse(status=201, headers={"Content-Length": "100"})
            await response.prepare(request)
            await response.write(b'{"uid": "bk_')
            assert request.transport is not None
            request.transport.abort()
            return response
        assert isinstance(step, Answer), step
        return step.response()

    async def __aenter__(self) -> Provider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.connector = ScriptedConnector(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connector.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def created(uid: str = "bk_1") -> Answer:
    return Answer.of_json(201, {"uid": uid, **BOOKING, "status": "open"})


def status(code: int, **headers: str) -> Answer:
    return Answer.of_json(code, {"error": {"message": f"status {code}"}}, **headers)


def make_sender(provider: Provider, fake: FakeTime, *, auth: Auth | None = None, attempts: int = 3,
                rate: float | None = None, rules: dict[int, Rule] | None = None, max_retry_after: float = 120.0,
                timeout: float = 5) -> Sender:
    return Sender(base_url=BASE_URL, auth=auth or HeaderKey("X-Jicoo-Api-Key", KEY), concurrency=4, rate=rate,
                  timeout=timeout, connect_timeout=2, attempts=attempts, backoff=0.5, max_backoff=4.0,
                  max_retry_after=max_retry_after, rules=rules, transport=provider.connector,
                  sleep=fake.sleep, clock=fake.clock)


def book(provider: Provider, *, fake: FakeTime | None = None, idempotent: bool = False, calls: int = 1,
         **kwargs: Any) -> tuple[list[CallResult], Sender]:
    fake = fake or FakeTime()

    async def go() -> tuple[list[CallResult], Sender]:
        async with provider, make_sender(provider, fake, **kwargs) as sender:
            results = [await sender.call("POST", "/bookings", json_body=BOOKING, idempotent=idempotent)
                       for _ in range(calls)]
            return results, sender

    return asyncio.run(go())


# --- success -----------------------------------------------------------------------------------------


def test_201_created():
    provider = Provider(created("bk_42"))
    (result,), sender = book(provider)
    assert result.action is Action.SUCCESS
    assert (result.status_code, result.attempts, result.message) == (201, 1, "")
    assert result.json()["uid"] == "bk_42"
    (request,) = provider.requests
    assert request.method == "POST"
    assert request.url == "http://api.jicoo.test/v1/bookings"
    assert request.headers["X-Jicoo-Api-Key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("booking-importer/")
    assert provider.bodies == [BOOKING]
    assert sender.requests_sent == 1


def test_api_key_in_the_body_is_merged_into_json():
    provider = Provider(Answer.of_json(200, {"hash": "h1"}))
    book(provider, auth=BodyKey("api_key", "bridge-key-123"))
    assert provider.bodies == [{"api_key": "bridge-key-123", **BOOKING}]
    assert "api_key" not in provider.requests[0].headers


def test_form_body_with_bracket_keys():
    provider = Provider(Answer.of_json(200, {"hash": "h1"}))

    async def go() -> None:
        async with provider, make_sender(provider, FakeTime(), auth=BodyKey("api_key", "bridge-key-123")) as sender:
            form = encode_form({"type": "po", "bookingFields": {"username": "ann", "password": "pw"}})
            await sender.call("POST", "/import", form=form)

    asyncio.run(go())
    (request,) = provider.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.content.decode() == (
        "api_key=bridge-key-123&type=po&bookingFields%5Busername%5D=ann&bookingFields%5Bpassword%5D=pw")


# --- 429 and 5xx ----------------------------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds():
    fake = FakeTime()
    provider = Provider(status(429, **{"Retry-After": "7"}), created())
    (result,), sender = book(provider, fake=fake)
    assert result.action is Action.SUCCESS and result.attempts == 2
    assert fake.sleeps == [7.0]  # exactly what the provider asked, no extra backoff
    assert len(provider.requests) == 2
    assert sender.limiter._paused_until == 1_007.0  # every other request of the run waited too


def test_429_without_retry_after_backs_off():
    fake = FakeTime()
    provider = Provider(status(429), status(429), created())
    (result,), _ = book(provider, fake=fake)
    assert result.action is Action.SUCCESS and result.attempts == 3
    assert len(fake.sleeps) >= 2
    assert 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[-1] <= 1.0  # full jitter under 0.5 * 2^(n-1)


def test_429_with_a_retry_after_too_long_fails_the_row_without_stalling_the_run():
    fake = FakeTime()
    provider = Provider(status(429, **{"Retry-After": "3600"}), created())
    (result,), sender = book(provider, fake=fake, max_retry_after=120)
    assert result.action is Action.FAIL and result.attempts == 1
    assert "asked to wait 3600 s, longer than retry.max_retry_after_seconds (120 s)" in result.message
    assert fake.sleeps == [] and len(provider.requests) == 1
    assert sender.limiter._paused_until == 0.0


def test_503_is_retried_then_fails_after_attempts():
    fake = FakeTime()
    provider = Provider(status(503))
    (result,), _ = book(provider, fake=fake, attempts=4)
    assert result.action is Action.FAIL
    assert (result.status_code, result.attempts) == (503, 4)
    assert result.message == "provider unavailable (503); gave up after 4 attempts"
    assert len(provider.requests) == 4
    assert len(fake.sleeps) == 3
    for n, wait in enumerate(fake.sleeps, 1):
        assert 0 <= wait <= min(4.0, 0.5 * 2 ** (n - 1))


@pytest.mark.parametrize("code", [502, 503, 504])
def test_gateway_errors_are_retried(code):
    provider = Provider(status(code), created())
    (result,), _ = book(provider)
    assert result.action is Action.SUCCESS and result.attempts == 2


def test_503_retry_after_is_honoured():
    fake = FakeTime()
    provider = Provider(status(503, **{"Retry-After": "2"}), created())
    (result,), _ = book(provider, fake=fake)
    assert result.action is Action.SUCCESS and fake.sleeps == [2.0]


def test_500_after_a_post_is_unknown_and_not_resent():
    provider = Provider(status(500), created())
    (result,), _ = book(provider)
    assert result.action is Action.UNKNOWN
    assert (result.status_code, result.attempts) == (500, 1)
    assert "check before resending" in result.message
    assert len(provider.requests) == 1


def test_500_is_retried_when_the_request_is_idempotent():
    provider = Provider(status(500), status(500), created())
    (result,), _ = book(provider, idempotent=True)
    assert result.action is Action.SUCCESS and result.attempts == 3
    assert len(provider.requests) == 3


def test_idempotent_500_that_never_clears_stays_unknown():
    provider = Provider(status(500))
    (result,), _ = book(provider, idempotent=True, attempts=3)
    assert result.action is Action.UNKNOWN and result.attempts == 3
    assert len(provider.requests) == 3


@pytest.mark.parametrize(("code", "action"), [(400, Action.REJECT), (409, Action.REJECT), (422, Action.REJECT),
                                              (404, Action.FAIL)])
def test_refusals_are_not_retried(code, action):
    provider = Provider(status(code), created())
    (result,), _ = book(provider)
    assert result.action is action and result.attempts == 1
    assert len(provider.requests) == 1


def test_mapping_rules_override_the_table():
    provider = Provider(status(409))
    (result,), _ = book(provider, rules={409: Rule(Action.REJECT, "slot no longer available")})
    assert result.action is Action.REJECT and result.message == "slot no longer available"


# --- transport errors --------------------------------------------------------------------------------------


def test_connect_error_is_retried():
    provider = Provider(REFUSED, REFUSED, created())
    (result,), _ = book(provider)
    assert result.action is Action.SUCCESS and result.attempts == 3
    assert provider.attempts == 3 and len(provider.requests) == 1  # the refused two never arrived


def test_connect_error_every_time_fails_the_row():
    fake = FakeTime()
    provider = Provider(REFUSED)
    (result,), _ = book(provider, fake=fake, attempts=3)
    assert result.action is Action.FAIL and result.response is None
    assert result.message == "could not connect (ClientConnectorError); gave up after 3 attempts"
    assert provider.attempts == 3 and len(fake.sleeps) == 2
    assert provider.requests == []


@pytest.mark.parametrize("error", [REFUSED, POOL_TIMEOUT])
def test_nothing_sent_errors_are_retried(error):
    provider = Provider(error, created())
    (result,), _ = book(provider)
    assert result.action is Action.SUCCESS and result.attempts == 2


@pytest.mark.parametrize(("error", "message"), [
    (HANG, "no answer before the timeout: the provider may have booked it; check before resending"),
    (DROP, "the connection dropped after the request was sent ("),
    (CUT, "the connection dropped after the request was sent (ClientPayloadError): the provider may have booked it"),
])
def test_maybe_sent_errors_are_unknown_and_not_resent(error, message):
    # the transport errors of the httpx stack (WriteError, WriteTimeout) have no aiohttp counterpart a
    # server can cause: a write that fails part-way arrives as the dropped connection above
    provider = Provider(error, created())
    (result,), _ = book(provider, timeout=0.3)
    assert result.action is Action.UNKNOWN
    assert result.attempts == 1 and result.response is None
    assert message in result.message
    assert len(provider.requests) == 1  # the provider saw exactly one request


def test_read_timeout_is_retried_when_idempotent():
    provider = Provider(HANG, created())
    (result,), _ = book(provider, idempotent=True, timeout=0.3)
    assert result.action is Action.SUCCESS and len(provider.requests) == 2


def test_a_dropped_connection_is_unknown_not_retried():
    provider = Provider(DROP, created())
    (result,), _ = book(provider)
    assert result.action is Action.UNKNOWN and len(provider.requests) == 1


# --- credentials ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [401, 403])
def test_refused_credentials_stop_the_run(code):
    provider = Provider(status(code), created())
    (first, second), sender = book(provider, calls=2)
    assert first.action is Action.STOP and first.status_code == code
    assert f"({code})" in first.message
    assert sender.stopped == first.message
    assert second.action is Action.STOP and second.response is None and second.attempts == 0
    assert len(provider.requests) == 1  # the second row sent nothing


def test_a_refreshable_login_is_tried_once_more():
    class Token(HeaderKey):
        refreshed = 0

        async def refresh(self, client, generation=None):
            Token.refreshed += 1
            self._key = "new-token"
            return True

    provider = Provider(status(401), created())
    (result,), _ = book(provider, auth=Token("Authorization", "old-token"))
    assert result.action is Action.SUCCESS and result.attempts == 1
    assert [r.headers["Authorization"] for r in provider.requests] == ["old-token", "new-token"]
    assert Token.refreshed == 1


def test_get_json_reads_and_raises_readback_error():
    async def go(provider: Provider) -> Any:
        async with provider, make_sender(provider, FakeTime(), timeout=0.3) as sender:
            return await sender.get_json("/bookings", params={"startedAt": BOOKING["startedAt"]})

    provider = Provider(HANG, Answer.of_json(200, {"data": []}))
    assert asyncio.run(go(provider)) == {"data": []}  # a read is safe to retry
    assert provider.requests[0].query["startedAt"] == BOOKING["startedAt"]
    with pytest.raises(ReadbackError, match="the provider's answer was not JSON"):
        asyncio.run(go(Provider(Answer(200, {"Content-Type": "text/html"}, b"<html>"))))
    with pytest.raises(ReadbackError):
        asyncio.run(go(Provider(status(404))))


# --- classify_error ---------------------------------------------------------------------------------------------


def _connector_error() -> aiohttp.ClientConnectorError:
    key = ConnectionKey(*([None] * len(ConnectionKey._fields)))._replace(host="api.jicoo.com", port=443, is_ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))


def _dns_error() -> aiohttp.ClientConnectorDNSError:
    key = ConnectionKey(*([None] * len(ConnectionKey._fields)))._replace(host="api.jicoo.com", port=443, is_ssl=True)
    return aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))


CLASSIFY = [
    # (exception, action, message fragment): the errors aiohttp raises, as the client hands them on
    (_connector_error(), Action.RETRY, "could not connect (ClientConnectorError)"),
    (_dns_error(), Action.RETRY, "could not connect (ClientConnectorDNSError)"),
    (aiohttp.ConnectionTimeoutError(), Action.RETRY, "could not connect (ConnectionTimeoutError)"),
    (aiohttp.SocketTimeoutError(), Action.UNKNOWN, "no answer before the timeout"),
    (TimeoutError(), Action.UNKNOWN, "no answer before the timeout"),
    (aiohttp.ServerDisconnectedError(), Action.UNKNOWN,
     "the connection dropped after the request was sent (ServerDisconnectedError)"),
    (aiohttp.ClientPayloadError("cut"), Action.UNKNOWN, "(ClientPayloadError)"),
    (aiohttp.ClientOSError(104, "reset"), Action.UNKNOWN, "(ClientOSError)"),
    (aiohttp.ClientResponseError(None, ()), Action.UNKNOWN,  # type: ignore[arg-type]
     "transport error after sending (ClientResponseError)"),
    (ValueError("x"), Action.UNKNOWN, "transport error after sending (ValueError)"),
]


@pytest.mark.parametrize(("exc", "action", "fragment"), CLASSIFY, ids=lambda v: type(v).__name__)
def test_classify_error(exc, action, fragment):
    got, message = classify_error(exc)
    assert got is action
    assert fragment in message


# --- Retry-After ------------------------------------------------------------------------------------------------

NOW = 1_790_000_000.0  # a fixed "now" for HTTP dates


@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0),
    (" 3 ", 3.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("-5", 0.0),
    (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
    (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # already past: go now
    (None, None),
    ("", None),
    ("soon", None),
])
def test_retry_after_seconds(header, seconds):
    assert retry_after_seconds(header, now=NOW) == seconds


def test_retry_after_http_date_uses_the_real_clock_by_default():
    header = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= retry_after_seconds(header) <= 60


# --- the rate limiter -------------------------------------------------------------------------------------------


def test_rate_limiter_spaces_starts_evenly_with_a_fake_clock():
    fake = FakeTime()
    limiter = RateLimiter(10, clock=fake.clock, sleep=fake.sleep)

    async def go() -> list[float]:
        starts = []
        for _ in range(6):
            await limiter.wait()
            starts.append(fake.now)
        return starts

    starts = asyncio.run(go())
    # issue 16: the timeline runs HEADROOM (0.5 %) under the rate (a margin for late starts)
    interval = 1 / (10 * (1 - HEADROOM))
    assert [round(s - starts[0], 6) for s in starts] == [round(k * interval, 6) for k in range(6)]


def test_rate_limiter_pause_holds_everyone():
    fake = FakeTime()
    limiter = RateLimiter(None, clock=fake.clock, sleep=fake.sleep)

    async def go() -> None:
        await limiter.wait()
        limiter.pause(5)
        await limiter.wait()

    asyncio.run(go())
    assert fake.sleeps == [5.0]


def test_no_rate_limit_never_waits():
    fake = FakeTime()
    limiter = RateLimiter(None, clock=fake.clock, sleep=fake.sleep)

    async def go() -> None:
        for _ in range(100):
            await limiter.wait()

    asyncio.run(go())
    assert fake.sleeps == []


def test_rate_limiter_never_exceeds_the_rate_with_concurrent_waiters():
    rate, waiters = 50.0, 15  # about 0.3 s of real time
    limiter = RateLimiter(rate)
    starts: list[float] = []

    async def one() -> None:
        await limiter.wait()
        starts.append(time.monotonic())

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(waiters)))

    asyncio.run(go())
    starts.sort()
    assert len(starts) == waiters
    # issue 16: starts follow the ideal timeline (a late one does not push the others back), each within
    # TOLERANCE of its slot, so any one-second window holds at most `rate` starts (tests/test_ratelimit.py)
    interval = 1 / (rate * (1 - HEADROOM))
    for i, t in enumerate(starts):
        assert t - starts[0] >= i * interval - TOLERANCE - 0.002, (i, t - starts[0])
    assert starts[-1] - starts[0] >= (waiters - 1) * interval - TOLERANCE - 0.002


# --- provider error bodies ----------------------------------------------------------------------------------------

BODIES = [
    # (JSON body, text, (field, message) pairs)
    ({"error": {"message": "Validation failed", "details": [{"field": "email", "message": "is invalid"},
                                                            {"field": "name", "message": "is too long"}]}}, "",
     [("email", "is invalid"), ("name", "is too long")]),
    ({"error": {"message": "Slot is not available"}}, "", [(None, "Slot is not available")]),
    ({"error": "invalid api key"}, "", [(None, "invalid api key")]),
    # RFC 7807 validation problem (BigChange)
    ({"type": "about:blank", "title": "One or more validation errors occurred.", "status": 422,
      "errors": {"Contact.Email": ["The Email field is not a valid e-mail address."], "Reference": "Required"}}, "",
     [("Contact.Email", "The Email field is not a valid e-mail address."), ("Reference", "Required")]),
    # Systems X Bridge: free-text strings
    ({"hash": "abc", "errors": ["bookingReference is required", "type must be po, msc or tui"]}, "",
     [(None, "bookingReference is required"), (None, "type must be po, msc or tui")]),
    ({"errors": [{"field": "email", "message": "taken"}, {"property": "name", "message": "empty"}]}, "",
     [("email", "taken"), ("name", "empty")]),
    ({"title": "Bad Request", "detail": "startedAt must be in the future"}, "",
     [(None, "startedAt must be in the future")]),
    ({"message": "Conflict"}, "", [(None, "Conflict")]),
    ({"title": "Unprocessable"}, "", [(None, "Unprocessable")]),
    # ServiceMobility: free text
    (None, "  Work order   WO-1 already\n exists  ", [(None, "Work order WO-1 already exists")]),
    ({"unrelated": 1}, '{"unrelated": 1}', [(None, '{"unrelated": 1}')]),
    ([1, 2], "[1, 2]", [(None, "[1, 2]")]),
    (None, "", []),
    (None, "   ", []),
]


@pytest.mark.parametrize(("body", "text", "pairs"), BODIES)
def test_response_messages(body, text, pairs):
    assert response_messages(body, text) == pairs


def test_response_messages_cuts_long_text():
    (pair,) = response_messages(None, "x" * 5000)
    assert pair == (None, "x" * 1000)


# --- form encoding --------------------------------------------------------------------------------------------------

FORMS = [
    ({"a": {"b": 1}}, {"a[b]": 1}),
    ({"api_key": "k", "type": "po", "bookingFields": {"username": "ann", "password": "pw"}},
     {"api_key": "k", "type": "po", "bookingFields[username]": "ann", "bookingFields[password]": "pw"}),
    ({"Location": {"Contacts": [{"Name": "Ann", "Phones": [{"Num": "1"}, {"Num": "2"}]}]}},
     {"Location[Contacts][0][Name]": "Ann", "Location[Contacts][0][Phones][0][Num]": "1",
      "Location[Contacts][0][Phones][1][Num]": "2"}),
    ({"tags": ["x", "y"]}, {"tags[0]": "x", "tags[1]": "y"}),
    ({"ok": True, "no": False, "none": None, "n": 3}, {"ok": "true", "no": "false", "none": "", "n": 3}),
    ({}, {}),
]


@pytest.mark.parametrize(("payload", "form"), FORMS)
def test_encode_form(payload, form):
    assert encode_form(payload) == form


# --- no double at all: the TCP connector a run uses, answers as Reply ---------------------------------------

def _serve_and_call(handler, *calls: tuple[str, str, dict]) -> tuple[list[CallResult], list[dict]]:
    """A real aiohttp server on 127.0.0.1 answering with ``handler``; a Sender as a run makes it calls it."""
    seen: list[dict] = []

    async def endpoint(request: web.Request) -> web.StreamResponse:
        seen.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                     "body": await request.read()})
        return handler(request)

    async def go() -> list[CallResult]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", endpoint)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            sender = Sender(base_url=f"http://127.0.0.1:{port}/v1", auth=HeaderKey("X-Jicoo-Api-Key", KEY),
                            concurrency=2, rate=None, timeout=5, connect_timeout=2, attempts=2, backoff=0.01,
                            max_backoff=0.01, max_retry_after=1)
            async with sender:
                return [await sender.call(method, path, **kwargs) for method, path, kwargs in calls]
        finally:
            await runner.cleanup()

    return asyncio.run(go()), seen


def test_the_default_path_sends_compact_utf8_json_and_reads_the_answer():
    results, seen = _serve_and_call(
        lambda r: web.Response(status=201, text=json.dumps({"uid": "bk_é1", **BOOKING}, ensure_ascii=False),
                               content_type="application/json"),
        ("POST", "/bookings", {"json_body": {**BOOKING, "name": "Zoë"}}))
    (result,) = results
    assert result.action is Action.SUCCESS and result.status_code == 201
    assert result.json()["uid"] == "bk_é1" and "bk_é1" in result.response.text
    assert result.response.headers.get("content-type", "").startswith("application/json")  # any case
    assert seen[0]["path"] == "/v1/bookings" and seen[0]["headers"]["X-Jicoo-Api-Key"] == KEY
    assert seen[0]["headers"]["Content-Type"] == "application/json"
    assert seen[0]["body"] == json.dumps({**BOOKING, "name": "Zoë"}, ensure_ascii=False, separators=(",", ":")).encode()


def test_the_default_path_reads_other_charsets_and_retry_after():
    answers = iter([
        web.Response(status=429, headers={"retry-after": "0"}, text="slow down"),
        web.Response(status=400, body='{"error": {"message": "Grüße"}}'.encode("utf-16"),
                     headers={"Content-Type": "application/json"}),
        web.Response(status=422, body="café fermé".encode("latin-1"),
                     headers={"Content-Type": "text/plain; charset=latin-1"}),
    ])
    results, seen = _serve_and_call(lambda r: next(answers),
                                    ("POST", "/bookings", {"json_body": BOOKING}),
                                    ("POST", "/bookings", {"json_body": BOOKING}))
    first, second = results
    assert len(seen) == 3  # the 429 was retried after Retry-After (read whatever its case)
    assert first.action is Action.REJECT and first.attempts == 2
    assert first.json() == {"error": {"message": "Grüße"}}  # a UTF-16 body: the standard parser reads it
    assert second.action is Action.REJECT and second.json() is None and second.response.text == "café fermé"


def test_a_number_beyond_64_bits_is_still_sent():
    results, seen = _serve_and_call(lambda r: web.json_response({}, status=201),
                                    ("POST", "/bookings", {"json_body": {"n": 2 ** 70}}))
    assert results[0].action is Action.SUCCESS and json.loads(seen[0]["body"]) == {"n": 2 ** 70}
