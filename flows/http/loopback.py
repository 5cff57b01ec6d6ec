"""A small HTTP server on loopback for the HTTP layer's own needs and the sandbox's simulators.

:class:`LoopbackServer` runs an aiohttp application on ``127.0.0.1`` in a background thread with
its own event loop (the callback receiver inside a run, each simulator in tests and the demo);
:func:`serve_forever` serves one in the foreground until Ctrl-C (``booking-import callbacks``,
``booking-import sandbox``). Nothing here knows about providers: flows/sandbox builds on it.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from aiohttp import web

__all__ = ["LOOPBACK", "LoopbackServer", "SupportsApp", "serve_forever"]

#: the only address :class:`LoopbackServer` binds to
LOOPBACK = "127.0.0.1"


class SupportsApp(Protocol):
    """Anything with an ``app()`` method, such as a provider simulator."""

    def app(self) -> web.Application: ...


def _as_app(app: web.Application | SupportsApp) -> web.Application:
    return app if isinstance(app, web.Application) else app.app()


class LoopbackServer:
    """Run an aiohttp application on ``127.0.0.1`` in a background thread with its own loop.

    Pass a simulator (anything with ``app()``) to be able to ``start()`` again after ``stop()``:
    each start serves a fresh application over the same simulator state.

    >>> with LoopbackServer(app) as url:    # doctest: +SKIP
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
            raise RuntimeError("the loopback server is not running; call start() first")
        return self._url

    def start(self) -> str:
        """Bind, start serving in the background and return the base URL."""
        if self._thread is not None:
            raise RuntimeError("the loopback server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="loopback-server", daemon=True
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
