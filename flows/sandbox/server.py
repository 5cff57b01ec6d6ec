"""Serve a provider simulator over loopback: in a background thread, or blocking for the CLI.

Every simulator builds its ``aiohttp`` application with :func:`create_app`, which puts the
shared :func:`fault_middleware` in front of the provider's own routes, so each simulator gets
the fault knobs (:mod:`flows.sandbox.faults`) and per-route request counts for free.

>>> with SimulatorServer(JicooSimulator()) as url:      # doctest: +SKIP
...     httpx.get(url + "/v1/bookings", headers={"X-Jicoo-Api-Key": "sk_test_sandbox"})
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..http.loopback import LOOPBACK, LoopbackServer, SupportsApp, serve_forever
from .faults import (
    DROP_AFTER_STORE,
    ERROR_AFTER_STORE,
    RATE_LIMITED,
    READ_ERROR,
    TIMEOUT_AFTER_STORE,
    UNAVAILABLE,
    FaultInjector,
    FaultKnobs,
    Faults,
)

__all__ = [
    "LOOPBACK",
    "SANDBOX_PREFIX",
    "ErrorBody",
    "Simulator",
    "SimulatorServer",
    "SupportsApp",
    "create_app",
    "default_error_body",
    "fault_middleware",
    "json_response",
    "read_json",
    "serve_forever",
]

#: the loopback server every simulator is served by (flows/http/loopback.py)
SimulatorServer = LoopbackServer

#: control routes (state, faults, reset) live under this prefix; no faults, no counting
SANDBOX_PREFIX = "/_sandbox/"

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

#: (status, code, message) -> JSON body of an error the fault middleware invents
ErrorBody = Callable[[int, str, str], Any]


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A compact UTF-8 JSON response."""
    return web.Response(
        body=_dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


async def read_json(request: web.Request) -> tuple[bool, Any]:
    """``(True, value)`` when the body is valid JSON, else ``(False, None)``."""
    raw = await request.read()
    try:
        return True, json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return False, None


def default_error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """``{"error": {"code": ..., "message": ...}}``: the shape the Jicoo simulator uses."""
    return {"error": {"code": code, "message": message}}


_STALL_GATE = web.AppKey("sandbox_stall_gate", asyncio.Event)


def fault_middleware(
    injector: FaultInjector,
    requests: collections.Counter[str] | None = None,
    *,
    error_body: ErrorBody = default_error_body,
    exempt_prefix: str | tuple[str, ...] = SANDBOX_PREFIX,
) -> Middleware:
    """Middleware that counts requests per route and applies ``injector``'s faults.

    ``requests`` gets one count per ``"METHOD /route/{canonical}"`` (``<unmatched>`` for 404s).
    Paths under ``exempt_prefix`` are neither counted nor faulted.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(exempt_prefix):
            return await handler(request)
        method = request.method
        if requests is not None:
            resource = request.match_info.route.resource
            requests[f"{method} {resource.canonical if resource is not None else '<unmatched>'}"] += 1
        if injector.has_latency:
            await asyncio.sleep(injector.delay())
        if method in _READ_METHODS:
            if injector.read_fails():
                injector.counts[READ_ERROR] += 1
                return json_response(error_body(500, "internal_error", "Internal server error"), status=500)
            return await handler(request)
        injector.arrivals.append(time.time())
        if not injector.has_write_faults:
            return await handler(request)

        retry_after = injector.admit()
        if retry_after is not None:
            injector.counts[RATE_LIMITED] += 1
            return json_response(
                error_body(429, "too_many_requests", "Too many requests. Retry later."),
                status=429,
                headers={"Retry-After": str(retry_after)} if injector.faults.rate_limit_retry_after else None,
            )
        fault = injector.draw()
        if fault == RATE_LIMITED:  # at random, no Retry-After: the client backs off on its own
            injector.counts[RATE_LIMITED] += 1
            return json_response(error_body(429, "too_many_requests", "Too many requests. Retry later."), status=429)
        if fault == UNAVAILABLE:
            injector.counts[UNAVAILABLE] += 1
            return json_response(
                error_body(503, "service_unavailable", "Service temporarily unavailable"), status=503
            )
        response = await handler(request)
        if fault is None or not 200 <= response.status < 300:
            return response
        injector.counts[fault] += 1
        if fault == ERROR_AFTER_STORE:
            return json_response(error_body(500, "internal_error", "Internal server error"), status=500)
        if fault == TIMEOUT_AFTER_STORE:
            gate = request.app.get(_STALL_GATE)
            if gate is None:
                await asyncio.sleep(injector.faults.stall_seconds)
            else:  # released early when the server shuts down
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(gate.wait(), injector.faults.stall_seconds)
            return response
        if fault == DROP_AFTER_STORE:
            transport = request.transport
            if transport is not None:
                transport.abort()  # RST, no bytes of a response
            return response  # aiohttp notices the lost transport and writes nothing
        return response  # pragma: no cover - every kind is handled above

    return middleware


def create_app(
    injector: FaultInjector,
    requests: collections.Counter[str] | None = None,
    *,
    routes: Iterable[web.AbstractRouteDef] = (),
    middlewares: Iterable[Middleware] = (),
    error_body: ErrorBody = default_error_body,
    exempt_prefix: str | tuple[str, ...] = SANDBOX_PREFIX,
) -> web.Application:
    """An application with the fault middleware first, then the provider's ``middlewares``.

    Paths starting with ``exempt_prefix`` (one prefix or a tuple) are neither faulted nor counted:
    the control routes, and e.g. a token endpoint whose faults would stop a run instead of testing rows."""
    app = web.Application(
        middlewares=[fault_middleware(injector, requests, error_body=error_body, exempt_prefix=exempt_prefix),
                     *middlewares]
    )
    app.add_routes(list(routes))

    async def open_gate(app: web.Application) -> None:
        app[_STALL_GATE] = asyncio.Event()

    async def release_stalls(app: web.Application) -> None:
        gate = app.get(_STALL_GATE)
        if gate is not None:
            gate.set()

    app.on_startup.append(open_gate)
    app.on_shutdown.append(release_stalls)
    return app


class Simulator(FaultKnobs):
    """Base of the provider simulators (``flows/sandbox/<provider id>.py``): the provider id, the fault knobs,
    request counts, :meth:`reset` to how it was made, and the environment that points a run at it.

    A subclass sets ``provider``, ``self.injector``, ``self.requests`` and ``self._initial_faults`` in its
    constructor and implements ``_clear`` (forget what was sent), ``state``, ``app`` and ``sandbox_env``;
    its ``app`` routes ``/_sandbox/state``, ``/_sandbox/faults`` and ``/_sandbox/reset`` to the control
    handlers here, which answer a bad request in the provider's own error shape (``_control_error``)."""

    provider: ClassVar[str]
    requests: collections.Counter[str]
    _initial_faults: Faults

    def _clear(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything sent and counted; restore the faults given to the constructor."""
        self._clear()
        self.requests.clear()
        self.injector.counts.clear()
        self.injector.configure(self._initial_faults)

    def state(self) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` answers."""
        raise NotImplementedError

    def app(self) -> web.Application:
        raise NotImplementedError

    @classmethod
    def sandbox_env(cls, url: str) -> dict[str, str]:
        """The environment that points a run at this simulator serving at ``url`` (demo, `booking-import sandbox`)."""
        raise NotImplementedError

    # -- the control routes (no credentials, no faults, not counted) ----------------------------------

    def _control_error(self, message: str) -> web.Response:
        """A 400 for a bad control request, in the provider's own error shape."""
        return json_response(default_error_body(400, "invalid_request", message), status=400)

    def _emptied(self) -> dict[str, Any]:
        """What ``POST /_sandbox/reset`` says is left besides the faults (the provider's store, now empty)."""
        return {"bookings": 0}

    async def _sandbox_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def _sandbox_faults(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return self._control_error("the body must be a JSON object of fault knobs")
        try:
            faults = Faults.from_dict(body)
        except (TypeError, ValueError) as exc:
            return self._control_error(str(exc))
        self.injector.configure(faults)
        return json_response({"faults": faults.to_dict()})

    async def _sandbox_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"faults": self.faults.to_dict(), **self._emptied()})
