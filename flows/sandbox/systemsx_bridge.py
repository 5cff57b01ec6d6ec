"""A Systems X Bridge simulator (``POST /external/deploy/booking``), served on loopback.

What it implements, from shared/specs/systemsx-bridge-create-job.txt and shared/providers.md
("1. Systems X Bridge"):

* the body is ``application/x-www-form-urlencoded`` with literal bracket keys
  (``bookingFields[username]=…``) or JSON with a nested ``bookingFields`` object (JSON with
  bracket keys is read too, as a PHP backend would);
* ``api_key`` travels in the body. Missing: listed like any other missing field (400). Wrong:
  **401** ``{"errors": ["Invalid api_key."]}`` with no hash (nothing was queued). The docs say
  nothing about a bad key; this choice makes the importer stop the run at the first refusal;
* **400** ``{"hash", "errors": [...]}`` lists every problem in the documented field order:
  ``"<field> field is Missing or Empty."`` per missing field (``type``, ``bookingReference``,
  ``organisationName``, ``agentName``, ``bookingFields[password]``, and
  ``bookingFields[username] or bookingFields[email_address]`` when neither is given), plus
  ``"type field is Invalid."`` (not po, msc or tui), ``"bookingFields[email_address] field is
  Invalid."`` and ``"Only one of bookingFields[username] or bookingFields[email_address] should be
  provided."``. Even a refusal gets a hash, as documented;
* **200** ``{"hash"}``: the job is queued. A second job with the same (type, bookingReference)
  is queued again: Bridge documents no duplicate check, which is why the importer keeps a ledger;
* ``callback_delay`` seconds later (default 0.2) it POSTs the documented "return_url Response"
  to the job's ``return_url`` (JSON, or form with ``callback_encoding="form"``), echoing
  ``api_key`` and ``bookingFields`` *with the password*, as the real one may. With
  ``callback_delay=None`` callbacks wait for :meth:`BridgeSimulator.release_callbacks`.
  An import that fails (``import_errors``: bookingReference -> reason) reports it in the callback
  as ``"errors": [reason]`` [I: the docs show no outcome field; this is the shape of the 400's
  errors]; ``callback_repeats`` posts each callback that many times, as a sender that retries
  callbacks (or a replay) would [I: retries are not documented].

Everything received is kept for tests: :attr:`BridgeSimulator.received` (raw body bytes,
content type, the fields as read), :attr:`jobs`, :attr:`callbacks` (what was posted where).
Sandbox-only routes (no key): ``GET /_sandbox/state``, ``POST /_sandbox/faults``,
``POST /_sandbox/reset``, ``POST /_sandbox/release-callbacks``.
"""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import random
import re
import string
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web

from .faults import FaultInjector, Faults
from .server import Simulator, create_app, json_response

__all__ = ["BOOKING_PATH", "DEFAULT_BRIDGE_API_KEY", "BridgeSimulator", "Job", "Received"]

DEFAULT_BRIDGE_API_KEY = "sx_test_sandbox_key"
BOOKING_PATH = "/external/deploy/booking"
TYPES = ("po", "msc", "tui")
_HASH_ALPHABET = string.ascii_uppercase + string.digits
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Received:
    """One booking request as it arrived."""

    content_type: str
    raw: bytes
    fields: dict[str, Any]  # nested, as the simulator read it
    status: int = 0


@dataclass
class Job:
    """A queued booking job."""

    hash: str
    type: str
    bookingReference: str
    organisationName: str
    agentName: str
    bookingFields: dict[str, str]
    return_url: str | None
    api_key: str
    received_at: str
    source_reference: str = ""  # Bridge's own reference for the imported booking (only in the callback)
    callback: str = "pending"  # pending, held, sent <status>, failed <error>, none (no return_url)

    def public(self) -> dict[str, Any]:
        """The job without the credentials (what /_sandbox/state shows)."""
        out = asdict(self)
        out.pop("api_key")
        out["bookingFields"] = {k: v for k, v in self.bookingFields.items() if k != "password"}
        return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"bookingFields[username]": "x"}`` -> ``{"bookingFields": {"username": "x"}}`` (other keys kept)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        m = re.fullmatch(r"([^\[\]]+)\[([^\[\]]*)\]", key)
        if m:
            inner = out.setdefault(m.group(1), {})
            if isinstance(inner, dict):
                inner[m.group(2)] = value
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value).strip())


class BridgeSimulator(Simulator):
    """In-memory Systems X Bridge: queued jobs, API keys, callbacks and fault knobs."""

    provider = "systemsx_bridge"

    @classmethod
    def sandbox_env(cls, url: str) -> dict[str, str]:
        """The environment that points a run at this simulator serving at ``url`` (demo, `booking-import sandbox`)."""
        # the issue names the key SYSTEMSX_API_KEY; URLs follow the provider id
        return {"SYSTEMSX_BRIDGE_BASE_URL": url, "SYSTEMSX_API_KEY": DEFAULT_BRIDGE_API_KEY}

    def __init__(
        self,
        api_keys: Iterable[str] = (DEFAULT_BRIDGE_API_KEY,),
        faults: Faults | None = None,
        *,
        callback_delay: float | None = 0.2,
        callback_encoding: Literal["json", "form"] = "json",
        seed: int | None = None,
        import_errors: Mapping[str, str] | None = None,
        callback_repeats: int = 1,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.callback_delay = callback_delay
        self.callback_encoding = callback_encoding
        #: bookingReference -> why Bridge could not import it (reported in the callback)
        self.import_errors = dict(import_errors or {})
        self.callback_repeats = callback_repeats
        self._initial_faults = faults or Faults()
        self.injector = FaultInjector(self._initial_faults)
        self.requests: collections.Counter[str] = collections.Counter()
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._clear()

    def _clear(self) -> None:
        self.received: list[Received] = []
        self.jobs: list[Job] = []
        #: every callback posted: {"hash", "url", "content_type", "raw", "status" or "error"}
        self.callbacks: list[dict[str, Any]] = []
        self._held: list[Job] = []

    # -- public, for tests and the CLI -------------------------------------------------------

    @property
    def bookings(self) -> list[dict[str, Any]]:
        """Every queued job, oldest first, without credentials (the demo counts these)."""
        return [j.public() for j in self.jobs]

    def reset(self) -> None:
        """Forget jobs, tokens and counts, and restore the faults given to the constructor."""
        super().reset()

    def state(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "counts": {"jobs": len(self.jobs), "held_callbacks": len(self._held), "callbacks": len(self.callbacks),
                       "requests": dict(self.requests), "faults": dict(self.injector.counts)},
            "faults": self.faults.to_dict(),
            "jobs": self.bookings,
        }

    def release_callbacks(self, timeout: float = 10.0) -> int:
        """Post every held callback now (``callback_delay=None``), from any thread; returns how many were posted."""
        if self._loop is None or not self._held:
            return 0
        return asyncio.run_coroutine_threadsafe(self._post_held(), self._loop).result(timeout)

    def app(self) -> web.Application:
        app = create_app(
            self.injector,
            self.requests,
            routes=[
                web.post(BOOKING_PATH, self._create_booking),
                web.get("/_sandbox/state", self._sandbox_state),
                web.post("/_sandbox/faults", self._sandbox_faults),
                web.post("/_sandbox/reset", self._sandbox_reset),
                web.post("/_sandbox/release-callbacks", self._sandbox_release),
            ],
            error_body=lambda status, code, message: {"errors": [message]},
        )

        async def stop_callbacks(app: web.Application) -> None:
            for task in list(self._tasks):
                task.cancel()

        app.on_shutdown.append(stop_callbacks)
        return app

    # -- the endpoint -------------------------------------------------------------------------

    async def _create_booking(self, request: web.Request) -> web.Response:
        self._loop = asyncio.get_running_loop()
        raw = await request.read()
        ctype = request.content_type
        record = Received(ctype, raw, {})
        self.received.append(record)
        fields = self._parse(ctype, raw)
        if fields is None:
            record.status = 400
            return json_response({"hash": self._new_hash(), "errors": ["The body could not be read: send form fields "
                                                                       "or a JSON object."]}, status=400)
        record.fields = fields
        key = _text(fields.get("api_key"))
        if key and key not in self.api_keys:
            record.status = 401
            return json_response({"errors": ["Invalid api_key."]}, status=401)
        errors = self._problems(fields, key)
        if errors:
            record.status = 400
            return json_response({"hash": self._new_hash(), "errors": errors}, status=400)
        booking = fields["bookingFields"]
        job = Job(
            hash=self._new_hash(),
            type=_text(fields["type"]),
            bookingReference=_text(fields["bookingReference"]),
            organisationName=_text(fields["organisationName"]),
            agentName=_text(fields["agentName"]),
            bookingFields={k: _text(v) for k, v in booking.items() if _text(v)},
            return_url=_text(fields.get("return_url")) or None,
            api_key=key,
            received_at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            source_reference=f"BRG{len(self.jobs) + 1:06d}",
        )
        self.jobs.append(job)
        record.status = 200
        if job.return_url is None:
            job.callback = "none"
        elif self.callback_delay is None:
            job.callback = "held"
            self._held.append(job)
        else:
            task = asyncio.create_task(self._post_later(job, self.callback_delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return json_response({"hash": job.hash})

    @staticmethod
    def _parse(ctype: str, raw: bytes) -> dict[str, Any] | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if ctype == "application/json":
            try:
                body = json.loads(text)
            except ValueError:
                return None
            return _nest(body) if isinstance(body, dict) else None
        if ctype in ("application/x-www-form-urlencoded", ""):
            return _nest(dict(urllib.parse.parse_qsl(text, keep_blank_values=True)))
        return None

    @staticmethod
    def _problems(fields: dict[str, Any], key: str) -> list[str]:
        errors = []

        def missing(name: str) -> None:
            errors.append(f"{name} field is Missing or Empty.")

        if not key:
            missing("api_key")
        kind = _text(fields.get("type"))
        if not kind:
            missing("type")
        elif kind not in TYPES:
            errors.append("type field is Invalid.")
        for name in ("bookingReference", "organisationName", "agentName"):
            if not _text(fields.get(name)):
                missing(name)
        booking = fields.get("bookingFields")
        booking = booking if isinstance(booking, dict) else {}
        username, email = _text(booking.get("username")), _text(booking.get("email_address"))
        if not username and not email:
            missing("bookingFields[username] or bookingFields[email_address]")
        elif username and email:
            errors.append("Only one of bookingFields[username] or bookingFields[email_address] should be provided.")
        elif email and not _EMAIL.match(email):
            errors.append("bookingFields[email_address] field is Invalid.")
        if not _text(booking.get("password")):
            missing("bookingFields[password]")
        return errors

    def _new_hash(self) -> str:
        return "".join(self._rng.choices(_HASH_ALPHABET, k=21))

    # -- callbacks ----------------------------------------------------------------------------

    def callback_body(self, job: Job) -> dict[str, Any]:
        """The documented "return_url Response" for a job (credentials included, as the real one may)."""
        return {
            "hash": job.hash,
            "ImportDetail": {
                "importRequest": {
                    "sourceReference": job.source_reference,
                    "bookingReference": job.bookingReference,
                    "bookingFields": dict(job.bookingFields),
                    "returnUrl": job.return_url,
                    "api_key": job.api_key,
                    "type": job.type,
                }
            },
            **({"errors": [self.import_errors[job.bookingReference]]}
               if job.bookingReference in self.import_errors else {}),
        }

    async def _post_later(self, job: Job, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._post(job)

    async def _post_held(self) -> int:
        held, self._held = self._held, []
        for job in held:
            await self._post(job)
        return len(held)

    async def _post(self, job: Job) -> None:
        assert job.return_url is not None
        body = self.callback_body(job)
        if self.callback_encoding == "form":
            request = body["ImportDetail"]["importRequest"]
            pairs = [("hash", job.hash)]
            for k, v in request.items():
                if isinstance(v, dict):
                    pairs += [(f"ImportDetail[importRequest][{k}][{kk}]", vv) for kk, vv in v.items()]
                else:
                    pairs.append((f"ImportDetail[importRequest][{k}]", "" if v is None else str(v)))
            pairs += [(f"errors[{i}]", e) for i, e in enumerate(body.get("errors", []))]
            raw, ctype = urllib.parse.urlencode(pairs).encode(), "application/x-www-form-urlencoded"
        else:
            raw, ctype = json.dumps(body).encode(), "application/json"
        for _ in range(max(1, self.callback_repeats)):
            sent: dict[str, Any] = {"hash": job.hash, "url": job.return_url, "content_type": ctype, "raw": raw}
            try:
                async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                            session.post(job.return_url, data=raw, headers={"Content-Type": ctype}) as response):
                    sent["status"] = response.status
                    sent["answer"] = await response.read()
                job.callback = f"sent {sent['status']}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                sent["error"] = type(exc).__name__
                job.callback = f"failed {sent['error']}"
            self.callbacks.append(sent)

    # -- sandbox control ----------------------------------------------------------------------

    def _control_error(self, message: str) -> web.Response:
        return json_response({"errors": [message]}, status=400)

    def _emptied(self) -> dict[str, Any]:
        return {"jobs": 0}

    async def _sandbox_release(self, request: web.Request) -> web.Response:
        self._loop = asyncio.get_running_loop()
        return json_response({"released": await self._post_held()})
