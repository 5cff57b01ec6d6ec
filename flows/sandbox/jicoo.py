"""A faithful Jicoo API simulator (``https://api.jicoo.com/v1``), served on loopback.

What it implements, from the Jicoo developer portal (see shared/providers.md, "4. Jicoo"):

* every ``/v1`` request needs ``X-Jicoo-Api-Key`` with a known key, else **401**;
* ``POST /v1/bookings`` creates a booking: **201** with the booking object; **400** for a body
  that is not a JSON object or misses a required field; **422** for semantic problems;
  **409** when an open booking of the same event type already starts at the same instant;
* ``GET /v1/bookings`` (``page``, ``perPage`` <= 100, default 10, ``status``, ``startedAt``/``endedAt``,
  ``sort``, ``order``), ``GET /v1/bookings/{uid}``, ``POST /v1/bookings/{uid}/cancel``;
* ``GET /v1/event_types`` and ``GET /v1/event_types/{uid}``.

Where Jicoo's docs are silent, the simulator takes the *less convenient* reading, so that a client
relying on a convenient one fails here before it fails in production [I]:

* **the list's date filter is a range on start and end** (``list_filter="within"``, the default): a
  booking is listed when it starts at or after ``startedAt`` and ends at or before ``endedAt``. So a
  zero-width ``startedAt=T&endedAt=T`` finds nothing. ``"start"``: the booking's start lies in
  ``[startedAt, endedAt]``; ``"overlap"``: the booking overlaps the range; ``"text"``: like
  ``"within"``, but comparing the query's text with the stored text (a careless server);
* **timestamps are answered as text in another precision than clients send**
  (``timestamps="seconds"``, the default: ``2026-03-16T02:00:00Z``; ``"offset"``: seconds in the
  booking's own time zone, ``2026-03-16T11:00:00+09:00``; ``"millis"``: ``...02:00:00.000Z``);
* **lists are paged** with a small default page (10) and a ``totalCount``;
* an event type's ``capacity`` (default 1) is how many open bookings one start can hold (a workshop
  of 200 seats); a guest may be booked twice into the same start (nothing stops a duplicate).

Jicoo does not document its error body; the simulator uses one shape for 400 and 422::

    {"error": {"code": "invalid_request" | "unprocessable_entity",
               "message": "<summary>",
               "details": [{"field": "email", "message": "is not a valid email address"}]}}

and ``{"error": {"code": ..., "message": ...}}`` for everything else (401, 404, 409, faults).

Sandbox-only control routes (no API key): ``GET /_sandbox/state``, ``POST /_sandbox/faults``
(replace the fault knobs with a JSON object), ``POST /_sandbox/reset``.
"""
from __future__ import annotations

import bisect
import collections
import functools
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from .faults import FaultInjector, Faults
from .jicoo_api import (
    _EXTRAS,
    _LOCATION_MESSAGE,
    _MAX_LENGTHS,
    _REQUIRED,
    _UID_ALPHABET,
    API_KEY_HEADER,
    DEFAULT_API_KEY,
    DEFAULT_EVENT_TYPES,
    LIST_FILTERS,
    LOCALES,
    LOCATION_IDS,
    TIMESTAMP_FORMATS,
    EventType,
    _check_extras,
    _error,
    _int_param,
    _now,
    _page,
    _Problems,
    _validation_error,
    _zone_names,
    format_instant,
    is_valid_email,
    parse_utc,
)
from .server import SANDBOX_PREFIX, Simulator, create_app, json_response, read_json

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_API_KEY",
    "DEFAULT_EVENT_TYPES",
    "LOCATION_IDS",
    "EventType",
    "JicooSimulator",
]

# --- the simulator ------------------------------------------------------------------------


class JicooSimulator(Simulator):
    """In-memory Jicoo: bookings, event types, API keys and fault knobs.

    State is only changed on the server's event loop; tests may read :attr:`bookings`,
    :attr:`requests` and :attr:`fault_counts` from their own thread once requests are done.
    """

    provider = "jicoo"

    @classmethod
    def sandbox_env(cls, url: str) -> dict[str, str]:
        """The environment that points a run at this simulator serving at ``url`` (demo, `booking-import sandbox`)."""
        return {"JICOO_BASE_URL": f"{url}/v1", "JICOO_API_KEY": DEFAULT_API_KEY}

    def __init__(
        self,
        api_keys: Iterable[str] = (DEFAULT_API_KEY,),
        faults: Faults | None = None,
        event_types: Mapping[str, EventType] | Iterable[EventType] = DEFAULT_EVENT_TYPES,
        *,
        seed: int | None = None,
        timestamps: str = "seconds",
        list_filter: str = "within",
    ) -> None:
        if timestamps not in TIMESTAMP_FORMATS:
            raise ValueError(f"timestamps must be one of {', '.join(TIMESTAMP_FORMATS)}")
        if list_filter not in LIST_FILTERS:
            raise ValueError(f"list_filter must be one of {', '.join(LIST_FILTERS)}")
        #: how answers write timestamps; fixed for the simulator's life (stored bookings keep their text)
        self.timestamps = timestamps
        #: how the list's startedAt/endedAt filter applies (see the module's docstring)
        self.list_filter = list_filter
        self.api_keys = frozenset(api_keys)
        ets = event_types.values() if isinstance(event_types, Mapping) else event_types
        self.event_types: dict[str, EventType] = {et.uid: et for et in ets}
        self._event_types_json = [et.to_json() for et in self.event_types.values()]
        self._initial_faults = faults or Faults()
        self.injector = FaultInjector(self._initial_faults)
        #: "METHOD /route" -> number of requests received (including refused ones)
        self.requests: collections.Counter[str] = collections.Counter()
        self._uid_rng = random.Random(seed)
        self._zones = _zone_names()
        self._clear()

    def _clear(self) -> None:
        self._bookings: dict[str, dict[str, Any]] = {}  # uid -> booking object (insertion = created order)
        self._started: dict[str, datetime] = {}  # uid -> startedAt
        self._by_start: list[tuple[datetime, int, str]] = []  # sorted (startedAt, seq, uid)
        self._ended: dict[str, datetime] = {}  # uid -> endedAt
        #: (eventTypeId, startedAt) -> open bookings
        self._slots: collections.Counter[tuple[str, datetime]] = collections.Counter()
        self._seq = 0

    # -- public, for tests and the CLI -------------------------------------------------------

    @property
    def bookings(self) -> list[dict[str, Any]]:
        """Every stored booking (open and cancelled), oldest first."""
        return list(self._bookings.values())

    def reset(self) -> None:
        """Forget jobs, tokens and counts, and restore the faults given to the constructor."""
        super().reset()

    def state(self) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` answers."""
        bookings = self.bookings
        return {
            "provider": self.provider,
            "counts": {
                "bookings": len(bookings),
                "open": sum(1 for b in bookings if b["status"] == "open"),
                "requests": dict(self.requests),
                "faults": dict(self.injector.counts),
            },
            "faults": self.faults.to_dict(),
            "bookings": bookings,
        }

    def app(self) -> web.Application:
        """A fresh aiohttp application over this simulator's state."""
        return create_app(
            self.injector,
            self.requests,
            routes=[
                web.post("/v1/bookings", self._create_booking),
                web.get("/v1/bookings", self._list_bookings),
                web.get("/v1/bookings/{uid}", self._get_booking),
                web.post("/v1/bookings/{uid}/cancel", self._cancel_booking),
                web.get("/v1/event_types", self._list_event_types),
                web.get("/v1/event_types/{uid}", self._get_event_type),
                web.get("/_sandbox/state", self._sandbox_state),
                web.post("/_sandbox/faults", self._sandbox_faults),
                web.post("/_sandbox/reset", self._sandbox_reset),
            ],
            middlewares=[self._auth_middleware],
        )

    # -- middleware ---------------------------------------------------------------------------

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(SANDBOX_PREFIX):
            return await handler(request)
        if request.headers.get(API_KEY_HEADER) not in self.api_keys:
            return _error(401, "unauthorized", "Invalid API key")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, "not_found", "Not found")
        except web.HTTPMethodNotAllowed as exc:
            return _error(exc.status, "method_not_allowed", "Method not allowed")

    # -- bookings -----------------------------------------------------------------------------

    async def _create_booking(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            p = _Problems()
            p.missing("body", "must be a JSON object")
            return _validation_error(p)
        p = _Problems()
        values: dict[str, str] = {}
        for name in _REQUIRED:
            value = body.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                p.missing(name)
            elif not isinstance(value, str):
                p.missing(name, "must be a string")
            else:
                values[name] = value
        event_type = None
        if "eventTypeId" in values:
            event_type = self.event_types.get(values["eventTypeId"])
            if event_type is None:
                p.invalid("eventTypeId", "is not a known event type")
        started = None
        if "startedAt" in values:
            started = parse_utc(values["startedAt"])
            if started is None:
                p.invalid("startedAt", "must be an ISO 8601 UTC date-time such as 2026-03-16T02:00:00.000Z")
        if "timeZone" in values and values["timeZone"] not in self._zones:
            p.invalid("timeZone", "is not an IANA time zone")
        if "email" in values:
            if len(values["email"]) > 255:
                p.invalid("email", "must be at most 255 characters")
            elif not is_valid_email(values["email"]):
                p.invalid("email", "is not a valid email address")
        if "name" in values and len(values["name"]) > 64:
            p.invalid("name", "must be at most 64 characters")
        if "locationId" in values and values["locationId"] not in LOCATION_IDS:
            p.invalid("locationId", _LOCATION_MESSAGE)
        for name, limit in _MAX_LENGTHS:
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                p.missing(name, "must be a string")
            elif len(value) > limit:
                p.invalid(name, f"must be at most {limit} characters")
        locale = body.get("locale")
        if locale is not None and (not isinstance(locale, str) or locale not in LOCALES):
            p.invalid("locale", "must be ja or en")
        if not _EXTRAS.isdisjoint(body):  # the rarely used documented objects
            _check_extras(body, p)
        if p.details:
            return _validation_error(p)

        assert event_type is not None and started is not None
        slot = (event_type.uid, started)
        if self._slots[slot] >= event_type.capacity:
            return _error(409, "conflict", "The slot is no longer available")
        booking = self._store(body, values, event_type, started)
        return json_response(booking, status=201)

    def _store(
        self, body: dict[str, Any], values: dict[str, str], event_type: EventType, started: datetime
    ) -> dict[str, Any]:
        uid = self._new_uid()
        zone = values["timeZone"]
        fmt = functools.partial(format_instant, style=self.timestamps, zone=zone)
        now = fmt(_now())
        ended = started + timedelta(minutes=event_type.duration)
        location_id = values["locationId"]
        booking = {
            "uid": uid,
            "eventTypeId": event_type.uid,
            "name": values["name"],
            "email": values["email"],
            "description": event_type.name,
            "status": "open",
            "startedAt": fmt(started),
            "endedAt": fmt(ended),
            "locationId": location_id,
            "url": f"https://sandbox.jicoo.invalid/bookings/{uid}",
            "phoneNumber": body.get("phoneNumber"),
            "company": body.get("company"),
            "address": None,
            "customLocation": None,
            "access": None,
            "timeZone": values["timeZone"],
            "priority": None,
            "message": body.get("message"),
            "cancelReason": None,
            "cancelledAt": None,
            "cancelledBy": None,
            "capacity": None,
            "hosts": [{"userId": event_type.host_user_id, "role": "owner"}],
            "createdAt": now,
            "updatedAt": now,
        }
        self._seq += 1
        self._bookings[uid] = booking
        self._started[uid] = started
        self._ended[uid] = ended
        bisect.insort(self._by_start, (started, self._seq, uid))
        self._slots[(event_type.uid, started)] += 1
        return booking

    def _new_uid(self) -> str:
        while True:
            uid = "".join(self._uid_rng.choices(_UID_ALPHABET, k=12))
            if uid not in self._bookings:
                return uid

    async def _list_bookings(self, request: web.Request) -> web.Response:
        q = request.query
        p = _Problems()
        page = _int_param(q, "page", 1, 1, None, p)
        per_page = _int_param(q, "perPage", 10, 1, 100, p)
        status = q.get("status")
        if status is not None and status not in ("open", "cancel"):
            p.missing("status", "must be open or cancel")
        window = []
        for name in ("startedAt", "endedAt"):
            raw = q.get(name)
            value = None if raw is None else parse_utc(raw)
            if raw is not None and value is None:
                p.missing(name, "must be an ISO 8601 UTC date-time such as 2026-03-16T02:00:00.000Z")
            window.append(value)
        sort = q.get("sort", "asc")
        if sort not in ("asc", "desc"):
            p.missing("sort", "must be asc or desc")
        order = q.get("order", "startedAt")
        if order not in ("startedAt", "createdAt"):
            p.missing("order", "must be startedAt or createdAt")
        if p.details:
            return _validation_error(p)

        lo, hi = window
        uids = [entry[2] for entry in self._by_start] if order == "startedAt" else list(self._bookings)
        if lo is not None or hi is not None:
            uids = self._in_window(uids, lo, hi, q.get("startedAt"), q.get("endedAt"))
        bookings = self._bookings
        found = [bookings[uid] for uid in uids]
        if status is not None:
            found = [b for b in found if b["status"] == status]
        if sort == "desc":
            found.reverse()
        return _page(found, page, per_page)

    def _in_window(self, uids: list[str], lo: datetime | None, hi: datetime | None,
                   lo_text: str | None, hi_text: str | None) -> list[str]:
        """The bookings the ``startedAt``/``endedAt`` filter keeps, as :attr:`list_filter` reads it."""
        started, ended, bookings = self._started, self._ended, self._bookings
        mode = self.list_filter
        if mode == "start":
            return [u for u in uids if (lo is None or started[u] >= lo) and (hi is None or started[u] <= hi)]
        if mode == "overlap":
            return [u for u in uids if (lo is None or ended[u] > lo) and (hi is None or started[u] < hi)]
        if mode == "text":  # the stored text against the query's text, as a careless server would
            return [u for u in uids if (lo_text is None or bookings[u]["startedAt"] >= lo_text)
                    and (hi_text is None or bookings[u]["endedAt"] <= hi_text)]
        return [u for u in uids if (lo is None or started[u] >= lo) and (hi is None or ended[u] <= hi)]

    async def _get_booking(self, request: web.Request) -> web.Response:
        booking = self._bookings.get(request.match_info["uid"])
        if booking is None:
            return _error(404, "not_found", "Booking not found")
        return json_response({"data": booking})

    async def _cancel_booking(self, request: web.Request) -> web.Response:
        booking = self._bookings.get(request.match_info["uid"])
        if booking is None:
            return _error(404, "not_found", "Booking not found")
        ok, body = await read_json(request)
        if request.can_read_body and (not ok or not isinstance(body, dict)):
            p = _Problems()
            p.missing("body", "must be a JSON object")
            return _validation_error(p)
        if booking["status"] == "cancel":
            return _error(422, "unprocessable_entity", "The booking is already cancelled")
        reason = (body or {}).get("cancelReason")
        now = format_instant(_now(), self.timestamps, booking["timeZone"])
        booking.update(
            status="cancel", cancelReason=reason, cancelledAt=now, cancelledBy="host", updatedAt=now
        )
        self._slots[(booking["eventTypeId"], self._started[booking["uid"]])] -= 1
        return json_response({"data": booking})

    # -- event types --------------------------------------------------------------------------

    async def _list_event_types(self, request: web.Request) -> web.Response:
        p = _Problems()
        page = _int_param(request.query, "page", 1, 1, None, p)
        per_page = _int_param(request.query, "perPage", 10, 1, 100, p)
        if p.details:
            return _validation_error(p)
        return _page(self._event_types_json, page, per_page)

    async def _get_event_type(self, request: web.Request) -> web.Response:
        et = self.event_types.get(request.match_info["uid"])
        if et is None:
            return _error(404, "not_found", "Event type not found")
        return json_response({"data": et.to_json()})

    # -- sandbox control ----------------------------------------------------------------------

    def _control_error(self, message: str) -> web.Response:
        return _error(400, "invalid_request", message)
