"""The ServiceMobility API as the simulator (flows/sandbox/servicemobility.py) serves it: login,
reference data (order types, accounts, technicians, the slot calendar), HS256 JWTs, instants and
plain-text error answers.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

DEFAULT_USERNAME = "sandbox.dispatcher"
DEFAULT_PASSWORD = "sandbox-password"
TOKEN_HEADER = "x-access-token"
LOGIN_PATH = "/createjwt"
API = "/seiapi/v3/trans"
#: Work Order Types system category values the sample uses (tenant-configured in real life)
DEFAULT_ORDER_TYPES = frozenset({"1001", "1002", "1003", "1004"})
#: managed accounts that exist (the samples use ACC-70001..ACC-70036 and ACC-70101..ACC-70136)
DEFAULT_ACCOUNTS = frozenset(f"ACC-{n}" for n in range(70001, 70200))
#: closed-incomplete work orders that need a follow-up visit (the follow-up sample refers to these)
DEFAULT_ORIGINAL_ORDERS = tuple(f"WO-2601{n:02d}" for n in range(1, 41))
CALENDAR_ZONE = "America/Chicago"
#: local (start, end) hours of the appointment slots of a working day
DEFAULT_PERIODS = ((8, 10), (10, 12), (13, 15), (15, 17))
DEFAULT_FIRST_DAY = date(2027, 3, 8)  # a Monday; the US clocks go forward on Sunday 14 March 2027
DEFAULT_DAYS = 12  # 8 to 19 March: two working weeks


@dataclass(frozen=True)
class Technician:
    user: str
    name: str
    days_off: frozenset[int] = frozenset()  # date.weekday() numbers


DEFAULT_TECHNICIANS = (
    Technician("jlopez", "Julia Lopez"),
    Technician("mchen", "Marcus Chen", frozenset({2})),  # not on Wednesdays
    Technician("rpatel", "Ravi Patel", frozenset({4})),  # not on Fridays
)


@dataclass
class _Slot:
    id: str
    user: str
    desc: str
    start: datetime
    end: datetime
    booked_by: str | None = None  # the follow-up's OrderNum, or "another client"

    def offer(self) -> dict[str, Any]:
        return {"ID": self.id, "Desc": self.desc, "Type": "Appointment",
                "Period": {"Start": format_utc(self.start), "End": format_utc(self.end)}}


# --- JWT (HS256) -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(claims: Mapping[str, Any], secret: bytes) -> str:
    """An HS256 JWT: ``base64url(header).base64url(claims).base64url(HMAC-SHA256)``."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    signing = f"{_b64(dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(dumps(dict(claims)).encode())}"
    signature = hmac.new(secret, signing.encode("ascii"), hashlib.sha256).digest()
    return f"{signing}.{_b64(signature)}"


def read_jwt(token: str, secret: bytes, now: float | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(claims, "")`` for a valid, unexpired token this secret signed, else ``(None, reason)``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, "the token is not a JWT"
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        return None, "the token is not a JWT"
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None, "the token is not an HS256 JWT"
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        return None, "the token's signature is not valid"
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or (time.time() if now is None else now) >= exp:
        return None, "the token has expired"
    return claims, ""


# --- times -------------------------------------------------------------------------------------------

_UTC_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z")


def parse_utc(text: Any) -> datetime | None:
    """Strict ``YYYY-MM-DDTHH:mm:SS.sssZ`` (millis optional) -> aware UTC datetime."""
    if not isinstance(text, str) or not _UTC_RE.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_utc(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _text(message: str, status: int = 500) -> web.Response:
    return web.Response(text=message, status=status, content_type="text/plain", charset="utf-8")


_EXCLUDED = re.compile(r"unavail|not ?avail|exclu|busy", re.IGNORECASE)


def time_periods(constraints: Any, name: str = "TimeConstraints") -> tuple[list[tuple], list[tuple], str | None]:
    """A request's TimeConstraints as (wanted periods, excluded periods, what is wrong with them or None)."""
    if not isinstance(constraints, list) or not constraints:
        return [], [], f"{name} is required: give the period(s) the customer is available"
    wanted, excluded = [], []
    for i, tc in enumerate(constraints):
        period = tc.get("Period") if isinstance(tc, dict) else None
        if not isinstance(period, dict):
            return [], [], f"{name}[{i}].Period is required"
        start, end = parse_utc(period.get("Start")), parse_utc(period.get("End"))
        for key, value in (("Start", start), ("End", end)):
            if value is None:
                return [], [], (f"{name}[{i}].Period.{key} {period.get(key)!r} is not a UTC date-time "
                                f"(YYYY-MM-DDTHH:mm:SS.sssZ)")
        if end <= start:
            return [], [], f"{name}[{i}].Period ends before it starts"
        (excluded if _EXCLUDED.search(str(tc.get("Type") or "")) else wanted).append((start, end))
    return wanted, excluded, None
