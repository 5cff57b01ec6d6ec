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
refuses the row is ``reject``: sent once, never resent). A request marked ``idempotent`` in the
mapping (a PUT upsert keyed by our own number) may also be resent after an ``unknown``. 429
honours ``Retry-After`` and pauses every sender of the run, not only the one request.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..errors import CredentialsError
from ..outcomes import Action, Rule, rule_for
from ..outcomes import response_messages as response_messages  # moved to outcomes; imported from here too
from .auth import Auth
from .client import Client, Reply
from .ratelimit import AdaptiveRateLimiter, RateLimiter, SharedTimeline

__all__ = [
    "AdaptiveRateLimiter",
    "CallResult",
    "RateLimiter",
    "ReadbackError",
    "Reply",
    "Sender",
    "Transport",
    "classify_error",
    "retry_after_seconds",
]


class ReadbackError(Exception):
    """A check with the provider could not be made; the row stays unknown."""


#: how much of an answer's body a rule's reasons are looked for in (a provider's reason is a sentence or two)
_REASON_TEXT_LIMIT = 64 * 1024

# --- transport errors ------------------------------------------------------------------------------

#: nothing left this machine (ClientConnectorError covers refused, DNS and TLS set-up; ConnectionTimeoutError
#: covers connecting and waiting for a free connection of the pool)
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_MAYBE_SENT = (
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientOSError,
)
#: what a run may send through instead of a TCP connector: a test double at the transport level
Transport = aiohttp.BaseConnector

#: what a request may raise besides an answer (the client's errors arrive as aiohttp raised them)
TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def classify_error(exc: BaseException) -> tuple[Action, str]:
    """(RETRY or UNKNOWN, message) for an exception raised while sending a request."""
    if isinstance(exc, _NOT_SENT):
        return Action.RETRY, f"could not connect ({type(exc).__name__})"
    if isinstance(exc, TimeoutError):  # aiohttp's SocketTimeoutError (no answer in time) is one
        return Action.UNKNOWN, "no answer before the timeout"
    if isinstance(exc, _MAYBE_SENT):
        return Action.UNKNOWN, f"the connection dropped after the request was sent ({type(exc).__name__})"
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


# --- results ------------------------------------------------------------------------------------------


@dataclass
class CallResult:
    action: Action
    response: Reply | None
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
    """One per run. Use as ``async with Sender(...) as s: await s.call(...)``.

    Every request goes through one :class:`flows.http.client.Client` (one aiohttp session), logins
    included. ``transport`` is an aiohttp connector to send through instead of a TCP connector of
    ``concurrency`` connections: a test double at the transport level (the run never closes it)."""

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
        transport: Transport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        shared_rate: SharedTimeline | None = None,
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        # a test that fakes the clock fakes sleeping too, so the limiter never waits for real. A published
        # rate is paced on an ideal timeline (shared with other processes through the ledger when given);
        # none: adapt to the provider's 429s (flows/http/ratelimit.py)
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
        self.client = Client(base_url, concurrency=concurrency, timeout=timeout, connect_timeout=connect_timeout,
                             connector=transport)
        #: set when credentials were refused: nothing more is sent this run
        self.stopped: str | None = None
        self.requests_sent = 0
        #: rows in a row that could not connect at all; past the limit the run stops (rows left are skipped)
        self._unreachable = 0
        self.unreachable_limit = max(10, 2 * concurrency)

    async def __aenter__(self) -> Sender:
        await self.client.open()
        try:
            await self.auth.login(self.client)
        except BaseException:  # a refused login: nothing else will close the client
            await self.client.close()
            self.limiter.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        self.limiter.close()

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
            body: Any = None
            if form is not None:
                form = {**body_extra, **form} if body_extra else form
            elif json_body is not None:
                body = {**body_extra, **json_body} if body_extra and isinstance(json_body, dict) else json_body
            try:
                self.requests_sent += 1
                response = await self.client.request(method, path, json=body, form=form, params=params,
                                                     headers=self.auth.headers())
                self._unreachable = 0
            except TRANSPORT_ERRORS as exc:
                self.limiter.observe(None, started)
                action, message = classify_error(exc)
                if action is Action.RETRY or (idempotent and action is Action.UNKNOWN):
                    if attempt < self.attempts:
                        await self._sleep(self._backoff(attempt))
                        continue
                    self._unreachable += 1
                    if self._unreachable >= self.unreachable_limit and not self.stopped:
                        self.stopped = (f"{self.base_url} could not be reached for {self._unreachable} rows in a "
                                        f"row ({message}); check the network and the base URL, then rerun")
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
                self.stopped = (f"{rule.message}; logging in again was refused too: {refusal}" if refusal
                                else rule.message)
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
