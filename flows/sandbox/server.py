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
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

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

#: the only address :class:`SimulatorServer` binds to
LOOPBACK = "127.0.0.1"
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


class SupportsApp(Protocol):
    """Anything with an ``app()`` method, such as a provider simulator."""

    def app(self) -> web.Application: ...


def _as_app(app: web.Application | SupportsApp) -> web.Application:
    return app if isinstance(app, web.Application) else app.app()


class Simulator(FaultKnobs):
    """Base of the provider simulators (``flows/sandbox/<provider id>.py``): the provider id, the fault knobs,
    request counts, :meth:`reset` to how it was made, and the environment that points a run at it.

    A subclass sets ``provider``, ``self.injector``, ``self.requests`` and ``self._initial_faults`` in its
    constructor and implements ``_clear`` (forget what was sent), ``state``, ``app`` and ``sandbox_env``."""

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


class SimulatorServer:
    """Run an aiohttp application on ``127.0.0.1`` in a background thread with its own loop.

    Pass a simulator (anything with ``app()``) to be able to ``start()`` again after ``stop()``:
    each start serves a fresh application over the same simulator state.

    >>> with SimulatorServer(app) as url:   # doctest: +SKIP
    ...     ...                              # url == "http://127.0.0.1:54321"
    """

    def __init__(
        self, app: web.Application | SupportsApp, *, port: int = 0, shutdown_timeout: float = 0.5
    ) -> None:
        self._source = app
        self._port = port
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (only while running)."""
        if self._url is None:
            raise RuntimeError("the simulator server is not running; call start() first")
        return self._url

    def start(self) -> str:
        """Bind, start serving in the background and return the base URL."""
        if self._thread is not None:
            raise RuntimeError("the simulator server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="sandbox-server", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.url

    def stop(self) -> None:
        """Stop serving, release the port and join the thread. Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = None
        self._url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            try:
                if self._runner is not None:
                    loop.run_until_complete(self._runner.cleanup())
                    self._runner = None
                _cancel_leftovers(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._loop = None

    async def _serve(self) -> None:
        runner = web.AppRunner(
            _as_app(self._source),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout,
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, LOOPBACK, self._port)
        await site.start()
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def serve_forever(
    app: web.Application | SupportsApp,
    host: str = LOOPBACK,
    port: int = 8080,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until Ctrl-C (or SIGTERM), then clean up and return. Prints nothing itself.

    ``on_ready(url)`` is called once the port is bound, e.g. for the CLI to print the URL.
    """

    async def main() -> None:
        runner = web.AppRunner(_as_app(app), handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            stop = asyncio.Event()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            if on_ready is not None:
                bound_host, bound_port = runner.addresses[0][:2]
                on_ready(f"http://{bound_host}:{bound_port}")
            await stop.wait()  # Ctrl-C cancels this (asyncio.run's SIGINT handling)
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
