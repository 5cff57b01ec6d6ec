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
import re
import string
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from aiohttp import web

from .faults import FaultInjector, Faults
from .server import SANDBOX_PREFIX, Simulator, create_app, json_response, read_json

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_API_KEY",
    "DEFAULT_EVENT_TYPES",
    "LOCATION_IDS",
    "EventType",
    "JicooSimulator",
]

API_KEY_HEADER = "X-Jicoo-Api-Key"
DEFAULT_API_KEY = "sk_test_sandbox"
LOCATION_IDS = frozenset({"inPerson", "phone", "zoom", "googleMeet", "askInvitee", "teams", "custom"})
_LOCATION_MESSAGE = "must be one of " + ", ".join(sorted(LOCATION_IDS))
LOCALES = frozenset({"ja", "en"})
PAYMENT_METHODS = frozenset({"none", "card", "onsite"})


@dataclass(frozen=True)
class EventType:
    """A bookable event type. Its ``duration`` (minutes) sets each booking's ``endedAt``."""

    uid: str
    name: str
    duration: int
    host_user_id: str = "usr_sandboxhost01"
    #: open bookings one start can hold (1: one guest per slot, then 409)
    capacity: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "name": self.name,
            "description": self.name,
            "duration": self.duration,
            "hosts": [{"userId": self.host_user_id, "role": "owner"}],
        }


#: event type uid -> EventType (name, duration in minutes)
DEFAULT_EVENT_TYPES: Mapping[str, EventType] = MappingProxyType(
    {
        et.uid: et
        for et in (
            EventType("mzgdPJVBb7RE", "Initial consultation", 30),
            EventType("k3Jd9QpLx2Wa", "Follow-up call", 15),
            EventType("T7vNc4RsY8eb", "Workshop", 60),
        )
    }
)

# --- values -------------------------------------------------------------------------------

_UTC_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z")
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_UID_ALPHABET = string.ascii_letters + string.digits
_REQUIRED = ("eventTypeId", "startedAt", "timeZone", "email", "name", "locationId")
#: optional string fields and their documented maximum lengths
_MAX_LENGTHS = (
    ("company", 32),
    ("phoneNumber", 32),
    ("message", 2000),
    ("textRemindCountryCode", 255),
    ("textRemindNumber", 32),
)
_TRACKING_KEYS = ("campaign", "source", "medium", "content", "term")
_EXTRAS = frozenset({"ccEmails", "tracking", "answers", "payment"})


def parse_utc(text: str) -> datetime | None:
    """``2026-03-16T02:00:00.000Z`` (millis optional) -> aware UTC datetime, truncated to ms."""
    m = _UTC_RE.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        ms = int((frac or "0")[:3].ljust(3, "0"))
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), ms * 1000, tzinfo=UTC)
    except ValueError:
        return None


def format_utc(dt: datetime) -> str:
    """Aware datetime -> ``2026-03-16T02:00:00.000Z``."""
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
    return dt.isoformat(timespec="milliseconds")[:23] + "Z"


#: how the simulator writes timestamps in its answers (``timestamps=``)
TIMESTAMP_FORMATS = ("seconds", "millis", "offset")
#: how ``GET /v1/bookings`` applies ``startedAt``/``endedAt`` (``list_filter=``)
LIST_FILTERS = ("within", "start", "overlap", "text")


def format_instant(dt: datetime, style: str = "seconds", zone: str | None = None) -> str:
    """An instant as the simulator answers it: ``seconds`` ``2026-03-16T02:00:00Z``, ``millis``
    ``2026-03-16T02:00:00.000Z``, ``offset`` ``2026-03-16T11:00:00+09:00`` (in ``zone``, else UTC)."""
    if style == "millis":
        return format_utc(dt)
    if style == "offset":
        local = dt.astimezone(zoneinfo.ZoneInfo(zone) if zone else UTC)
        return local.isoformat(timespec="seconds")
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_valid_email(value: str) -> bool:
    return len(value) <= 255 and _EMAIL_RE.fullmatch(value) is not None


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Problems:
    """Collects ``{"field", "message"}`` details; any 'bad request' one makes the answer 400."""

    __slots__ = ("bad_request", "details")

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []
        self.bad_request = False

    def missing(self, field: str, message: str = "is required") -> None:
        self.details.append({"field": field, "message": message})
        self.bad_request = True

    def invalid(self, field: str, message: str) -> None:
        self.details.append({"field": field, "message": message})


def _error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return json_response({"error": body}, status=status)


def _validation_error(problems: _Problems) -> web.Response:
    fields = ", ".join(dict.fromkeys(d["field"] for d in problems.details))
    if problems.bad_request:
        return _error(400, "invalid_request", f"Invalid request: {fields}", problems.details)
    return _error(422, "unprocessable_entity", f"Unprocessable entity: {fields}", problems.details)


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
        self._slots: collections.Counter[tuple[str, datetime]] = collections.Counter()  # (eventTypeId, startedAt) -> open bookings
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
        if order == "startedAt":
            uids = [entry[2] for entry in self._by_start]
        else:
            uids = list(self._bookings)
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

    async def _sandbox_state(self, request: web.Request) -> web.Response:
        return json_response(self.state())

    async def _sandbox_faults(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _error(400, "invalid_request", "the body must be a JSON object of fault knobs")
        try:
            faults = Faults.from_dict(body)
        except (TypeError, ValueError) as exc:
            return _error(400, "invalid_request", str(exc))
        self.injector.configure(faults)
        return json_response({"faults": faults.to_dict()})

    async def _sandbox_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_response({"faults": self.faults.to_dict(), "bookings": 0})


def _page(items: list[Any], page: int, per_page: int) -> web.Response:
    """One page of ``items`` as a list answer: ``{"data", "totalCount", "count", "currentPage"}``."""
    first = (page - 1) * per_page
    data = items[first : first + per_page]
    return json_response({"data": data, "totalCount": len(items), "count": len(data), "currentPage": page})


def _int_param(
    query: Mapping[str, str], name: str, default: int, low: int, high: int | None, p: _Problems
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        p.missing(name, f"must be an integer {bounds}")
        return default
    return value


def _check_extras(body: dict[str, Any], p: _Problems) -> None:
    """The documented optional objects: ccEmails, tracking, answers, payment."""
    cc = body.get("ccEmails")
    if cc is not None:
        if not isinstance(cc, list):
            p.missing("ccEmails", "must be an array")
        else:
            if len(cc) > 30:
                p.invalid("ccEmails", "must have at most 30 items")
            for i, item in enumerate(cc):
                if not isinstance(item, str) or not is_valid_email(item):
                    p.invalid(f"ccEmails[{i}]", "is not a valid email address")
    tracking = body.get("tracking")
    if tracking is not None:
        if not isinstance(tracking, dict):
            p.missing("tracking", "must be an object")
        else:
            for key in _TRACKING_KEYS:
                value = tracking.get(key)
                if value is not None and (not isinstance(value, str) or len(value) > 255):
                    p.invalid(f"tracking.{key}", "must be a string of at most 255 characters")
    answers = body.get("answers")
    if answers is not None:
        if not isinstance(answers, list):
            p.missing("answers", "must be an array")
        else:
            for i, item in enumerate(answers):
                for key in ("questionUid", "content"):
                    if not isinstance(item, dict) or item.get(key) in (None, ""):
                        p.missing(f"answers[{i}].{key}")
    payment = body.get("payment")
    if payment is not None:
        if not isinstance(payment, dict):
            p.missing("payment", "must be an object")
        else:
            method = payment.get("paymentMethod")
            if method is None:
                p.missing("payment.paymentMethod")
            elif method not in PAYMENT_METHODS:
                p.invalid("payment.paymentMethod", "must be none, card or onsite")
            if not isinstance(payment.get("items"), list):
                p.missing("payment.items")
