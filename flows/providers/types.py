"""Reusable field types for provider request contracts (see flows/providers/)."""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import AfterValidator

from ..mapping.datetimes import is_iana_zone

__all__ = ["Email", "IanaZone", "UtcDateTime"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z$")


def _email(v: str) -> str:
    if not _EMAIL.match(v):
        raise ValueError("is not a valid e-mail address")
    return v


def _zone(v: str) -> str:
    if not is_iana_zone(v):
        raise ValueError(f"{v!r} is not an IANA time zone such as Europe/London")
    return v


def _utc(v: str) -> str:
    if not _UTC.match(v):
        raise ValueError(f"{v!r} is not a UTC date-time like 2026-03-16T02:00:00.000Z")
    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{v!r} is not a real date-time") from None
    return v


Email = Annotated[str, AfterValidator(_email)]
IanaZone = Annotated[str, AfterValidator(_zone)]
UtcDateTime = Annotated[str, AfterValidator(_utc)]
