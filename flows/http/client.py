"""The one way this package talks HTTP: one aiohttp session per run, answers as :class:`Reply`.

Every request of a run goes through one :class:`Client`: the rows, the read-backs and the logins
of the token kinds (flows/http/auth.py), so they share one connection pool and one set of
timeouts. Tests send through the same code: against loopback servers, and where a test needs a
failure no server can produce on demand (a refused connection), through an aiohttp connector
given as ``connector`` (the transport level; nothing above it is replaced).

Bodies are encoded the way the previous httpx path encoded them, so providers see the same bytes:
JSON compact and UTF-8 (orjson where it can), forms ``application/x-www-form-urlencoded``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import yarl

__all__ = ["Client", "Reply", "json_bytes"]

#: the headers every request carries (a request's own headers are added to these)
BASE_HEADERS: Mapping[str, str] = {"User-Agent": "booking-importer/0.1", "Accept": "application/json"}


def json_bytes(value: Any) -> bytes:
    """A JSON body, compact and UTF-8; orjson where it can (several times faster)."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits: the standard encoder says why
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class Reply:
    """A provider's answer: ``status_code``, ``headers`` (looked up without regard to case),
    ``content``, ``text`` and ``json()``. Read whole before the connection is given back."""

    __slots__ = ("charset", "content", "headers", "status_code")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes,
                 charset: str | None = None) -> None:
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


class Client:
    """One per run: the base URL, one aiohttp session (one connection pool of ``concurrency``
    connections), the timeouts. Open with :meth:`open` inside the event loop, close with :meth:`close`.

    ``timeout`` bounds the wait for an answer, ``connect_timeout`` the connecting; waiting for a free
    connection of the pool is bounded by the larger of the two. ``connector`` replaces the TCP
    connector (tests: a double at the transport level); the client does not close a given one."""

    def __init__(self, base_url: str, *, concurrency: int, timeout: float, connect_timeout: float,
                 connector: aiohttp.BaseConnector | None = None) -> None:
        self.base_url = base_url
        self._base = base_url.rstrip("/")
        self._concurrency = max(concurrency, 1)
        self._connector = connector
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=timeout,
                                              connect=max(connect_timeout, timeout))
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}

    async def open(self) -> None:
        if self._session is not None:
            return
        if self._connector is None:
            connector: aiohttp.BaseConnector = aiohttp.TCPConnector(limit=self._concurrency, keepalive_timeout=5.0)
            owner = True
        else:
            connector, owner = self._connector, False
        self._session = aiohttp.ClientSession(connector=connector, connector_owner=owner)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def url(self, path: str) -> yarl.URL:
        """``path`` on the base URL (the base's path kept, one slash between), or ``path`` itself when it is
        absolute; parsed once per distinct path."""
        url = self._urls.get(path)
        if url is None:
            if path.startswith(("http://", "https://")):
                url = yarl.URL(path)
            else:
                url = yarl.URL(self._base + "/" + path.lstrip("/"))
            if len(self._urls) >= 10_000:  # per-row paths (PUT /WorkOrder/{n}): don't grow without end
                self._urls.clear()
            self._urls[path] = url
        return url

    async def request(self, method: str, path: str, *, json: Any = None, form: Mapping[str, Any] | None = None,
                      params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> Reply:
        """One request, its answer read whole. ``json`` (when not None) or ``form`` is the body; ``params``
        whose value is None are left out. aiohttp's errors (and TimeoutError, OSError) arrive as themselves:
        :func:`flows.http.sender.classify_error` reads them."""
        session = self._session
        if session is None:
            raise RuntimeError("the HTTP client is not open; use the Sender as an async context manager")
        sent = {**BASE_HEADERS, **headers} if headers else dict(BASE_HEADERS)
        if json is not None:
            content: bytes | None = json_bytes(json)
            sent["Content-Type"] = "application/json"
        elif form is not None:
            content = urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            content = None
        query = {k: v for k, v in params.items() if v is not None} if params else None
        async with session.request(method, self.url(path), data=content, headers=sent, params=query or None,
                                   allow_redirects=False, timeout=self._timeout) as r:
            body = await r.read()
        return Reply(r.status, r.headers, body, r.charset)
