"""Jicoo: the Create Booking contract and the read-back used before resending an unknown row.

Everything else about Jicoo (URL, API-key header, status overrides, columns) is data in
mappings/jicoo.yaml. Facts: ../shared/providers.md, section Jicoo.
"""
from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..contracts import Email, IanaZone, UtcDateTime

__all__ = ["CreateBooking", "find_booking"]

LocationId = Literal["inPerson", "phone", "zoom", "googleMeet", "askInvitee", "teams", "custom"]


class Tracking(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str | None = Field(None, max_length=255)
    source: str | None = Field(None, max_length=255)
    medium: str | None = Field(None, max_length=255)
    content: str | None = Field(None, max_length=255)
    term: str | None = Field(None, max_length=255)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    questionUid: str = Field(min_length=1)
    content: str = Field(min_length=1)


class CreateBooking(BaseModel):
    """POST /v1/bookings (JSON). Limits as documented by Jicoo."""

    model_config = ConfigDict(extra="forbid")

    eventTypeId: str = Field(min_length=1)
    startedAt: UtcDateTime
    timeZone: IanaZone
    email: Email = Field(max_length=255)
    name: str = Field(min_length=1, max_length=64)
    locationId: LocationId
    company: str | None = Field(None, max_length=32)
    textRemindCountryCode: str | None = Field(None, max_length=255)
    textRemindNumber: str | None = Field(None, max_length=32)
    phoneNumber: str | None = Field(None, max_length=32)
    ccEmails: list[Email] | None = Field(None, max_length=30)
    message: str | None = Field(None, max_length=2000)
    locale: Literal["ja", "en"] | None = None
    tracking: Tracking | None = None
    answers: list[Answer] | None = None


async def find_booking(sender, payload: dict) -> str | None:
    """Look for a booking matching this row: same start instant, event type and e-mail.

    Lists ``GET /bookings?startedAt=T&endedAt=T`` (Jicoo filters by start time) and returns the
    booking's uid, or None when Jicoo confirms there is none. Raises ``ReadbackError`` when the
    check itself cannot be made (the row then stays ``unknown``).
    """
    started = payload["startedAt"]
    data = await sender.get_json("/bookings", params={"startedAt": started, "endedAt": started, "perPage": 100})
    items = data.get("data", []) if isinstance(data, dict) else []
    want = _instant(started)
    email = str(payload.get("email", "")).casefold()
    for item in items:
        if (
            item.get("eventTypeId") == payload.get("eventTypeId")
            and _instant(item.get("startedAt")) == want
            and str(item.get("email", "")).casefold() == email
            and item.get("status") != "cancel"
        ):
            return str(item.get("uid"))
    return None


def _instant(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
