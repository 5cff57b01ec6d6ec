"""The Jicoo API as the simulator (flows/sandbox/jicoo.py) serves it: event types, value formats
(timestamps, e-mails, time zones), the validation and error bodies, and paging.
"""
from __future__ import annotations

import functools
import re
import string
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from aiohttp import web

from .server import json_response

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
