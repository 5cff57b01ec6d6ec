"""Callbacks: a small receiver for providers that report a row's final result later.

Systems X Bridge answers a booking with 200 ``{"hash"}`` (the row is ``accepted``) and POSTs the
result to the request's ``return_url`` when the import is done. A mapping asks for that address
with a ``run_value: callback_url`` field. Each run then makes an unguessable token and sends
``<base>/<provider>/<token>``, where ``<base>`` is ``<PROVIDER>_CALLBACK_URL`` (the public address
that reaches this receiver) or, with ``--wait-callbacks``, the in-process receiver's own address.
The ledger keeps only the token's SHA-256 (table ``callback_tokens``).

The receiver (``booking-import callbacks``, or :func:`receiving` inside a run):

==========================================  ==========================================================
request                                     answer
==========================================  ==========================================================
POST …/<provider>/<token of a run>,         200 ``{"status": "recorded", "matched": true}``: stored
naming a row **of that run**                (secrets removed) and its row settled: ``created``, or
                                            ``rejected`` when the provider says it failed
… for a row of the run still being sent     200 ``{"status": "recorded", "matched": false}``: kept (one
(matched by its echoed type and reference)  per row) and settled when the run records the row's answer
… the same callback again (a provider's     200 ``{"status": "duplicate"}``: nothing stored, nothing
retry, or a replay)                         changed
… contradicting the callback that already   409, nothing stored: the first answer stands
settled the row, or echoing another row's
reference than the row its hash names
… naming no row of the token's run (a       404, nothing stored (after ``match_wait`` seconds: the run
forged or foreign hash)                     may not have recorded the row's answer yet)
the same, body not a readable callback      400, nothing stored
a body over ``max_body`` bytes (64 KiB)     413, nothing read or stored
anything else: unknown or wrong token,      404, nothing stored
other provider, other path or method
==========================================  ==========================================================

**A token is scoped to its run.** Each run sends its own token in its ``return_url``; a callback
reaches only rows that run sent (the ledger's ``rows.run_id``), so one run's token can neither
settle nor refuse another run's rows. A row that a later run resent belongs to the later run.

**A legitimate late refusal vs a forgery.** Bridge answers 200 ``{hash}`` (``accepted``) and
reports the import later, so a callback with ``errors`` that turns an ``accepted`` row into
``rejected`` is the documented way a refusal arrives: it comes with the token of the run that sent
the row, names the row's hash, and echoes the row's own type and booking reference. Once a
callback has settled a row, that is its final answer: a later callback saying otherwise (a
``created`` row "rejected", a ``rejected`` one "created") is refused with 409 and changes nothing;
the event line tells the operator, who can check with the provider. A callback never touches a row
that is not waiting for one (created synchronously, invalid, failed...).

**What is stored is bounded.** Bodies over ``max_body`` are refused unread; a stored body keeps at
most ``max_stored`` characters (the rest is cut, and the cut is noted); nothing is stored for a
replay, a contradiction or a row the run does not have, so a flood of forged callbacks stores
nothing, and a run's callbacks take at most one stored body per row.

Any path prefix is accepted before ``<provider>/<token>`` so a proxy may forward
``https://hooks.example.com/booking/systemsx_bridge/<token>`` unchanged. Bodies may be JSON or
form-encoded (bracket keys become nested objects). What is stored drops every key that names a
secret (``api_key``, ``password``, ``token``…) and masks the token wherever it appears (the
callback echoes ``returnUrl``), and any other callback token too: the last part of any URL that
looks like a token (20 or more letters, digits, ``-`` or ``_``), so a body echoing another run's
``return_url`` does not hand that run's token to whoever reads the ledger. Nothing here logs a
body; ``on_event`` gets one line per call.
"""
from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from ..errors import ConfigError
from ..hooks import Callback, CallbackReader, resolve
from ..ledger.ledger import Ledger, open_ledger
from ..mapping.catalog import callback_readers
from ..redact import MASK, redact_text
from .loopback import LoopbackServer

__all__ = [
    "DEFAULT_PORT",
    "Callback",
    "CallbackReceiver",
    "check_callback_address",
    "decode_form",
    "is_loopback",
    "receiving",
    "scrub",
]

#: port of ``booking-import callbacks`` unless --port says otherwise
DEFAULT_PORT = 8081
#: the token of any callback address: the last part of a URL, 20+ URL-safe characters (ours are 32)
_TOKEN_IN_URL = re.compile(r"(https?://[^\s\"'<>]*/)[A-Za-z0-9_-]{20,}(?=$|[/?#\s\"'<>])")
_SECRET_KEY = re.compile(r"api[_-]?key|password|passwd|secret|token|authori[sz]ation|^pass$|^pin$", re.IGNORECASE)


def is_loopback(url: str) -> bool:
    """True when the URL's host is this machine only (127.0.0.0/8, ::1, localhost, 0.0.0.0): a provider on
    another machine can never call it back there."""
    host = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


def check_callback_address(mapping: Any, env: Mapping[str, str], *, base_url: str | None = None,
                           in_process: str | None = None) -> None:
    """Refuse (:class:`ConfigError`, nothing sent) a callback address on this machine's loopback when the
    provider is elsewhere: it would never be called, and the rows would wait for ever. ``in_process``: the
    address of the --wait-callbacks receiver (on 127.0.0.1), used when ``<PROVIDER>_CALLBACK_URL`` is unset."""
    if "callback_url" not in mapping.run_value_paths().values():
        return

    var = f"{mapping.env_prefix}_CALLBACK_URL"
    base = (env.get(var) or in_process or "").strip()
    provider_url = (base_url or env.get(f"{mapping.env_prefix}_BASE_URL") or mapping.connection.base_url).strip()
    if base and is_loopback(base) and not is_loopback(provider_url):
        given = f"{var}={base}" if env.get(var) else f"the in-process receiver of --wait-callbacks ({base})"
        host = urllib.parse.urlsplit(provider_url).hostname or provider_url
        raise ConfigError(f"{given} is on this machine only, and {mapping.provider} at {host} can never call it: "
                          f"set {var} to a public https address that reaches `booking-import callbacks` (a proxy "
                          f"or tunnel to it); nothing was sent")


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy without any key that names a secret (api_key, password, token…), with ``secrets`` masked in
    text, and with any callback token in a URL masked (another run's, echoed)."""
    secrets = [s for s in secrets if s]
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, str):
        return _TOKEN_IN_URL.sub(lambda m: m.group(1) + MASK, redact_text(value, secrets))
    return value


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Form fields with bracket keys -> nested objects (the inverse of flows.http.sender.encode_form)::

        [("a[b][c]", "1"), ("x", "2")] -> {"a": {"b": {"c": "1"}}, "x": "2"}

    ``a[]`` appends (keys "0", "1"…); a key that is both a value and an object keeps the object.
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        m = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        parts = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))] if m else [key]
        cur = out
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(cur))
            if i == len(parts) - 1:
                if not isinstance(cur.get(part), dict):
                    cur[part] = value
            else:
                nxt = cur.get(part)
                if not isinstance(nxt, dict):
                    nxt = cur[part] = {}
                cur = nxt
    return out


async def _read_body(request: web.Request) -> Any:
    raw = await request.read()
    text = raw.decode("utf-8")
    if request.content_type == "application/json" or text.lstrip()[:1] in ("{", "["):
        return json.loads(text)
    return decode_form(urllib.parse.parse_qsl(text, keep_blank_values=True))


class CallbackReceiver:
    """The receiver's state: a ledger connection of its own, counts, and the aiohttp application.

    ``match_wait``: seconds to keep trying when a callback names no row of its run yet (the run may not
    have recorded its answer yet); nothing is stored meanwhile. ``max_body``: the largest body read, in
    bytes; ``max_stored``: the most characters of a (scrubbed) body kept in the ledger.
    """

    def __init__(self, ledger_url: str | None = None, *, match_wait: float = 2.0,
                 on_event: Callable[[str], None] | None = None, max_body: int = 64 * 1024,
                 max_stored: int = 16 * 1024, readers: Mapping[str, str] | None = None) -> None:
        self.ledger: Ledger = open_ledger(ledger_url)
        #: provider id -> its mapping's ``request.callback`` reference (default: every mapping in mappings/)
        self.readers = dict(readers) if readers is not None else callback_readers()
        self._resolved: dict[str, CallbackReader] = {}
        self.match_wait = match_wait
        self.on_event = on_event
        self.max_body = max_body
        self.max_stored = max_stored
        #: recorded, matched, duplicate, refused (conflicts, unknown rows and tokens, too large), unreadable
        self.counts: collections.Counter[str] = collections.Counter()

    def _reader(self, provider: str) -> CallbackReader | None:
        ref = self.readers.get(provider)
        if ref is None:
            return None
        if provider not in self._resolved:
            self._resolved[provider] = resolve(ref)
        return self._resolved[provider]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def close(self) -> None:
        self.ledger.close()

    def _event(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    def _refuse(self, why: str, status: int = 404, error: str = "not found") -> web.Response:
        self.counts["refused"] += 1
        self._event(f"refused a call: {why}")
        return web.json_response({"error": error}, status=status)

    def _stored(self, body: Any, token: str) -> str:
        kept = json.dumps(scrub(body, [token]), ensure_ascii=False, sort_keys=True)
        if len(kept) <= self.max_stored:
            return kept
        return json.dumps({"cut": f"{len(kept)} characters; the first {self.max_stored} kept",
                           "head": kept[:self.max_stored]}, ensure_ascii=False)

    async def _handle(self, request: web.Request) -> web.Response:
        parts = [p for p in request.path.split("/") if p]
        if request.method != "POST" or len(parts) < 2:
            return self._refuse(f"{request.method} to a path that is not a callback address")
        provider, token = parts[-2], parts[-1]
        owner = self.ledger.callback_token(token)
        if owner is None or owner.provider != provider:
            return self._refuse("unknown callback token")
        too_large = f"{provider}: a body over {self.max_body} bytes for run {owner.run_id}"
        if request.content_length is not None and request.content_length > self.max_body:
            return self._refuse(too_large, 413, "body too large")
        reader = self._reader(provider)
        if reader is None:
            return self._refuse(f"{provider}: its mapping names no request.callback reader")
        try:
            body = await _read_body(request)
            callback: Callback = reader(body)
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(too_large, 413, "body too large")
        except (ValueError, UnicodeDecodeError, LookupError, RecursionError) as exc:
            self.counts["unreadable"] += 1
            self._event(f"{provider}: unreadable callback for run {owner.run_id} ({type(exc).__name__})")
            return web.json_response({"error": "not a callback this receiver can read"}, status=400)
        secrets = [token]
        pid = scrub(callback.provider_id, secrets)[:200]
        args = dict(run_id=owner.run_id, scope=owner.scope, provider_id=pid, status=callback.status.value,
                    message=scrub(callback.message, secrets)[:2000], body=self._stored(body, token),
                    reference=scrub(callback.reference, secrets)[:200] if callback.reference else None,
                    match_key=[str(v)[:200] for v in callback.match_key])
        pid = _shown(pid)  # from here on only for event lines: the body's text, escaped and short
        verdict, key = self.ledger.receive_callback(**args)
        deadline = time.monotonic() + self.match_wait
        while verdict == "unknown" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # its row may be recorded in a moment (the run has not stored the answer yet)
            verdict, key = self.ledger.receive_callback(**args)
        if verdict == "unknown":
            return self._refuse(f"{provider}: {pid} names no row of run {owner.run_id}; nothing stored")
        if verdict == "conflict":
            row = f"row {' / '.join(json.loads(key))}" if key else pid
            return self._refuse(f"{provider}: {pid} says {callback.status.value}, contradicting what {row} was already "
                                f"told (or echoing another row); the first answer stands, nothing stored", 409,
                                "contradicts the callback already received for this row; nothing changed")
        if verdict == "duplicate":
            self.counts["duplicate"] += 1
            self._event(f"{provider}: {pid} again ({callback.status.value}); already recorded, nothing stored")
            return web.json_response({"status": "duplicate", "matched": key is not None})
        self.counts["recorded"] += 1
        while key is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if self.ledger.match_waiting_callbacks(owner.scope):
                key = self._row_of(owner.scope, args["provider_id"])
        if key is not None:
            self.counts["matched"] += 1
            self._event(f"{provider}: {pid} -> row {' / '.join(json.loads(key))}: {callback.status.value}")
        else:
            self._event(f"{provider}: {pid} kept for a row still being sent (`booking-import status` matches it later)")
        return web.json_response({"status": "recorded", "matched": key is not None})

    def _row_of(self, scope: str, provider_id: str) -> str | None:
        for c in reversed(self.ledger.callbacks(scope)):
            if c["provider_id"] == provider_id:
                return str(c["row_key"])
        return None


def _shown(text: str, limit: int = 60) -> str:
    """Text from a body as one short, printable piece of an event line (no control bytes, no new lines)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def receiving(ledger_url: str | None = None, *, port: int = 0,
              on_event: Callable[[str], None] | None = None, **options: Any) -> Iterator[str]:
    """A receiver on 127.0.0.1 in a background thread for the length of the block; yields its base URL.
    ``options``: :class:`CallbackReceiver`'s (match_wait, max_body, max_stored)."""
    receiver = CallbackReceiver(ledger_url, on_event=on_event, **options)
    try:
        with LoopbackServer(receiver, port=port) as url:
            yield url
    finally:
        receiver.close()
