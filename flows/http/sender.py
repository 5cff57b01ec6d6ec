"""Sending requests: one HTTP client per run, a rate limit never exceeded, and retries only where
a resend cannot book twice.

Transport errors are classified by *whether the request may have reached the provider*:

=========================================  ==========  ===========================================
error                                      action      why
=========================================  ==========  ===========================================
connect refused / DNS / connect timeout    retry       nothing left this machine
pool timeout (waiting for a connection)    retry       nothing left this machine
read timeout                               unknown     the provider may have booked it
connection dropped / reset after sending   unknown     the provider may have booked it
write error / write timeout                unknown     part of the request may have arrived
anything else                              unknown     be safe
=========================================  ==========  ===========================================

HTTP statuses follow :data:`flows.outcomes.DEFAULT_STATUS_TABLE` plus the mapping's
``request.responses``, whose ``reasons`` may decide by the body's text (a ServiceMobility 500 that
refuses the row is ``reject``: sent once, never resent). A request marked ``idempotent`` in the mapping (a PUT upsert keyed by
our own number) may also be resent after an ``unknown``. 429 honours ``Retry-After`` and pauses
every sender of the run, not only the one request.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson
import yarl

from ..errors import CredentialsError
from ..outcomes import Action, Rule, rule_for
from ..outcomes import response_messages as response_messages  # moved to outcomes; imported from here too
from .auth import Auth
from .ratelimit import AdaptiveRateLimiter, RateLimiter, SharedTimeline

__all__ = ["AdaptiveRateLimiter", "CallResult", "RateLimiter", "ReadbackError", "Reply", "Sender", "classify_error", "retry_after_seconds"]


class ReadbackError(Exception):
    """A check with the provider could not be made; the row stays unknown."""


#: how much of an answer's body a rule's reasons are looked for in (a provider's reason is a sentence or two)
_REASON_TEXT_LIMIT = 64 * 1024

# --- transport errors ------------------------------------------------------------------------------

_NOT_SENT_AIOHTTP = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_MAYBE_SENT_AIOHTTP = (
    aiohttp.ServerDisconnectedError,
    aiohttp.SocketTimeoutError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientOSError,
)
_NOT_SENT_HTTPX = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def classify_error(exc: BaseException) -> tuple[Action, str]:
    """(RETRY or UNKNOWN, message) for an exception raised while sending a request.

    The aiohttp transport re-labels its errors (a dropped connection arrives as
    ``httpx.ConnectTimeout``), so the original aiohttp error, when there is one, decides.
    """
    # an aiohttp error the transport does not map arrives as itself
    cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
    if isinstance(cause, aiohttp.ClientError) or isinstance(cause, asyncio.TimeoutError):
        if isinstance(cause, _NOT_SENT_AIOHTTP):
            return Action.RETRY, f"could not connect ({type(cause).__name__})"
        if isinstance(cause, aiohttp.SocketTimeoutError) or isinstance(cause, asyncio.TimeoutError):
            return Action.UNKNOWN, "no answer before the timeout"
        if isinstance(cause, _MAYBE_SENT_AIOHTTP):
            return Action.UNKNOWN, f"the connection dropped after the request was sent ({type(cause).__name__})"
        return Action.UNKNOWN, f"transport error after sending ({type(cause).__name__})"
    if isinstance(exc, _NOT_SENT_HTTPX):
        return Action.RETRY, f"could not connect ({type(exc).__name__})"
    if isinstance(exc, httpx.ReadTimeout):
        return Action.UNKNOWN, "no answer before the timeout"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return Action.UNKNOWN, "the connection dropped after the request was sent"
    return Action.UNKNOWN, f"transport error after sending ({type(exc).__name__})"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: an integer/decimal, or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# --- rate limiting: flows/ratelimit.py ---------------------------------------------------------------


# --- results ------------------------------------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    """A JSON body, compact and UTF-8, as httpx writes one; orjson where it can (several times faster)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits: the standard encoder says why
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class Reply:
    """A provider's answer as the rest of the code reads it: ``status_code``, ``headers`` (looked up
    without regard to case), ``content``, ``text`` and ``json()``, the parts of httpx.Response it
    uses. The default send path builds this from aiohttp's response: an httpx.Response cost more a
    row than the request itself (bench/RESULTS.md). Requests through an injected httpx transport
    (tests) hand back httpx.Response, which reads the same."""

    __slots__ = ("charset", "content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes, charset: str | None = None) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.charset = charset

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError:  # e.g. a UTF-16 body or a NaN literal, which the standard parser reads
            return json.loads(self.content)

    def __repr__(self) -> str:
        return f"<Reply [{self.status_code}]>"


@dataclass
class CallResult:
    action: Action
    response: httpx.Response | Reply | None
    attempts: int
    message: str = ""

    @property
    def status_code(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    def json(self) -> Any:
        if self.response is None:
            return None
        try:
            return self.response.json()
        except (ValueError, UnicodeDecodeError):
            return None


class Sender:
    """One per run. Use as ``async with Sender(...) as s: await s.call(...)``."""

    def __init__(
        self,
        *,
        base_url: str,
        auth: Auth,
        concurrency: int,
        rate: float | None,
        timeout: float,
        connect_timeout: float,
        attempts: int,
        backoff: float,
        max_backoff: float,
        max_retry_after: float,
        rules: dict[int, Rule] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        shared_rate: SharedTimeline | None = None,
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        # a test that fakes the clock fakes sleeping too, so the limiter never waits for real. A published
        # rate is paced on an ideal timeline (shared with other processes through the ledger when given);
        # none: adapt to the provider's 429s (flows/ratelimit.py)
        timing: dict[str, Any] = {} if clock is None else {"clock": clock, "sleep": sleep}
        if rate and shared_rate is not None:
            timing.setdefault("clock", time.time)  # the wall clock: the one other processes share
            self.limiter: RateLimiter = RateLimiter(rate, timeline=shared_rate, **timing)
        elif rate:
            self.limiter = RateLimiter(rate, **timing)
        else:
            self.limiter = AdaptiveRateLimiter(**timing)
            if shared_rate is not None:
                shared_rate.close()
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.rules = rules or {}
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout, pool=max(connect_timeout, timeout))
        self._given_transport = transport
        self._concurrency = concurrency
        self._transport: httpx.AsyncBaseTransport | None = transport
        #: the default path: rows go straight to one aiohttp session (see _send_direct)
        self._session: aiohttp.ClientSession | None = None
        self._client: httpx.AsyncClient | None = None
        #: set when credentials were refused: nothing more is sent this run
        self.stopped: str | None = None
        self.requests_sent = 0
        self._urls: dict[str, tuple[httpx.URL, yarl.URL]] = {}
        self._base_headers = {"User-Agent": "booking-importer/0.1", "Accept": "application/json"}
        self._timeout_ext = self._timeout.as_dict()
        #: rows in a row that could not connect at all; past the limit the run stops (rows left are skipped)
        self._unreachable = 0
        self.unreachable_limit = max(10, 2 * concurrency)

    async def __aenter__(self) -> Sender:
        if self._given_transport is None:
            from httpx_aiohttp import AiohttpTransport

            n = max(self._concurrency, 1)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n, keepalive_timeout=5.0))
            self._transport = AiohttpTransport(client=self._session)  # logins share the session's pool
            t = self._timeout
            self._aiohttp_timeout = aiohttp.ClientTimeout(sock_connect=t.connect, sock_read=t.read, connect=t.pool)
        # the client serves logins and shares the transport (one connection pool per run); rows go
        # through _send
        self._client = httpx.AsyncClient(base_url=self.base_url, transport=self._transport, timeout=self._timeout,
                                         headers=self._base_headers)
        try:
            await self.auth.login(self._client)
        except BaseException:  # a refused login: nothing else will close the client
            await self._client.aclose()
            self.limiter.close()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self.limiter.close()

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "use Sender as an async context manager"
        return self._client

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """One request straight through the transport, body read, connection released.

        The client's own send path (auth flows, redirects, cookies, event hooks, merging) costs more
        per row than the transport itself and none of it applies: credentials are ours, redirects
        are a mapping error, providers use no cookies. Timeouts travel in the request as httpx's
        transports expect them."""
        request.extensions["timeout"] = self._timeout_ext
        response = await self._transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _send_direct(self, method: str, path: str, kwargs: dict[str, Any]) -> Reply:
        """The default path: the request on the run's aiohttp session, the answer as a :class:`Reply`.

        Building httpx requests and reading responses through the httpx-aiohttp transport cost
        more per row than aiohttp's own work (bench/RESULTS.md); this path encodes the body as
        httpx would. aiohttp's errors arrive as themselves, which classify_error reads directly."""
        headers = kwargs["headers"]
        if "json" in kwargs:
            content = _json_bytes(kwargs["json"])
            headers["Content-Type"] = "application/json"
        elif "data" in kwargs:
            content = urlencode(kwargs["data"], doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            content = None
        params = {k: v for k, v in (kwargs.get("params") or {}).items() if v is not None} or None
        async with self._session.request(method, self._urls_for(path)[1], data=content, headers=headers, params=params,
                                         allow_redirects=False, timeout=self._aiohttp_timeout) as r:
            body = await r.read()
        return Reply(r.status, r.headers, body, r.charset)

    def _urls_for(self, path: str) -> tuple[httpx.URL, yarl.URL]:
        """The absolute URL for a path, as httpx and as aiohttp take it, parsed once per distinct path
        (both would parse and merge the base URL again for every request)."""
        urls = self._urls.get(path)
        if urls is None:
            url = _merged(self.client.base_url, path)
            urls = self._urls[path] = (url, yarl.URL(str(url)))
            if len(self._urls) > 10_000:  # per-row paths (PUT /WorkOrder/{n}): don't grow without end
                self._urls.clear()
        return urls

    def _backoff(self, attempt: int) -> float:
        cap = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return random.uniform(0, cap)  # full jitter

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = False,
        rules: dict[int, Rule] | None = None,
    ) -> CallResult:
        """Send one request with the retry rules above. Never raises for HTTP or transport trouble."""
        rules = rules if rules is not None else self.rules
        attempt = 0
        refreshed = False
        while True:
            if self.stopped:
                return CallResult(Action.STOP, None, attempt, self.stopped)
            attempt += 1
            started = await self.limiter.wait()
            if self.stopped:
                return CallResult(Action.STOP, None, attempt - 1, self.stopped)
            try:
                await self.auth.ensure_fresh(self.client)
            except CredentialsError as exc:
                self.stopped = f"{exc}; fix the credentials, then rerun"
                return CallResult(Action.STOP, None, attempt - 1, self.stopped)
            generation = self.auth.generation
            body_extra = self.auth.body_fields()
            kwargs: dict[str, Any] = {"headers": {**self._base_headers, **self.auth.headers()}, "params": params}
            if form is not None:
                kwargs["data"] = {**body_extra, **form}
            elif json_body is not None:
                kwargs["json"] = {**body_extra, **json_body} if isinstance(json_body, dict) else json_body
            try:
                self.requests_sent += 1
                if self._session is not None:
                    response = await self._send_direct(method, path, kwargs)
                else:
                    response = await self._send(httpx.Request(method, self._urls_for(path)[0], **kwargs))
                self._unreachable = 0
            except (TimeoutError, httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
                self.limiter.observe(None, started)
                action, message = classify_error(exc)
                if action is Action.RETRY or (idempotent and action is Action.UNKNOWN):
                    if attempt < self.attempts:
                        await self._sleep(self._backoff(attempt))
                        continue
                    self._unreachable += 1
                    if self._unreachable >= self.unreachable_limit and not self.stopped:
                        self.stopped = (f"{self.base_url} could not be reached for {self._unreachable} rows in a row "
                                        f"({message}); check the network and the base URL, then rerun")
                    return CallResult(Action.FAIL, None, attempt, f"{message}; gave up after {attempt} attempts")
                return CallResult(Action.UNKNOWN, None, attempt,
                                  f"{message}: the provider may have booked it; check before resending")
            self.limiter.observe(response.status_code, started)
            rule = rule_for(response.status_code, rules)
            if rule.reasons:  # the status alone does not say (ServiceMobility's 500s): the body's text decides
                rule = rule.for_body(response.text[:_REASON_TEXT_LIMIT])
            if rule.action is Action.RETRY:
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if response.status_code == 429 and (wait is None or wait <= self.max_retry_after):
                    # a Retry-After too long to honour fails this row; it must not stall every other row
                    self.limiter.pause(wait if wait is not None else self._backoff(attempt))
                if attempt < self.attempts and (wait is None or wait <= self.max_retry_after):
                    await self._sleep(wait if wait is not None else self._backoff(attempt))
                    continue
                if wait is not None and wait > self.max_retry_after:
                    return CallResult(Action.FAIL, response, attempt,
                                      f"{rule.message}; the provider asked to wait {wait:.0f} s, longer than "
                                      f"retry.max_retry_after_seconds ({self.max_retry_after:g} s)")
                return CallResult(Action.FAIL, response, attempt, f"{rule.message}; gave up after {attempt} attempts")
            if rule.action is Action.STOP:
                if not refreshed and await self.auth.refresh(self.client, generation):
                    refreshed = True
                    attempt -= 1
                    continue
                refusal = self.auth.refusal  # e.g. the password was changed mid-run: say so, naming the variables
                self.stopped = f"{rule.message}; logging in again was refused too: {refusal}" if refusal else rule.message
                return CallResult(Action.STOP, response, attempt, self.stopped)
            if rule.action is Action.UNKNOWN and idempotent and attempt < self.attempts:
                await self._sleep(self._backoff(attempt))
                continue
            return CallResult(rule.action, response, attempt, rule.message)

    async def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """A read (safe to retry). Raises ReadbackError when no usable answer came."""
        result = await self.call("GET", path, params=params, idempotent=True, rules={})
        if result.action is not Action.SUCCESS:
            said = f"answered {result.status_code}" if result.status_code else "got no answer"
            raise ReadbackError(f"GET {path} {said}: {result.message}" if result.message else f"GET {path} {said}")
        data = result.json()
        if data is None:
            raise ReadbackError("the provider's answer was not JSON")
        return data


def _merged(base_url: httpx.URL, path: str) -> httpx.URL:
    """``path`` on the client's base URL as httpx's own requests put it there (the base's path kept, one
    slash between), or ``path`` itself when it is absolute. Public API only: httpx's merge is private."""
    url = httpx.URL(path)
    if not url.is_relative_url:
        return url
    return httpx.URL(str(base_url).rstrip("/") + "/" + path.lstrip("/"))


def encode_form(payload: dict[str, Any]) -> dict[str, Any]:
    """Nested payload -> flat form fields with bracket keys: {'a': {'b': 1}} -> {'a[b]': 1}."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else str(k), v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            flat[prefix] = "" if value is None else (json.dumps(value) if isinstance(value, bool) else value)

    walk("", payload)
    return flat
