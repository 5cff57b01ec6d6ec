"""Jicoo: the Create Booking contract and the read-back used before resending an unknown row.

Everything else about Jicoo (URL, API-key header, status overrides, columns) is data in
mappings/jicoo.yaml. Facts: ../shared/providers.md, section Jicoo.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..http.readback import Listing, ReadbackError, instant, read_all, the_one, utc_text
from .types import Email, IanaZone, UtcDateTime

if TYPE_CHECKING:  # types only, as in the contract (flows/hooks.py)
    from ..http.sender import Sender
    from ..ledger.ledger import Entry

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


#: the read-back's window around the row's start. Jicoo documents ``startedAt``/``endedAt`` filters (UTC)
#: but not how they bound a booking (its start only? its end too? as text?) [I]; this window contains the
#: booking under every reading: from an hour before its start to a day after it (event types are
#: shorter than a day), written at seconds so neither a text nor an instant comparison cuts it off.
BEFORE = dt.timedelta(hours=1)
AFTER = dt.timedelta(days=1)
PER_PAGE = 100  # Jicoo's maximum


async def find_booking(sender: Sender, payload: dict[str, Any], *, entry: Entry | None = None) -> str | None:
    """Look for a booking matching this row: same start instant, event type and e-mail, not cancelled.

    Lists ``GET /bookings`` over a window that surely contains the row's start (every page, oldest
    created first) and returns the booking's uid, or None when the whole list has none. Raises
    ``ReadbackError`` when it cannot be sure (an error, a list that cannot be read whole, two matches,
    a booking at that time showing no e-mail); the row then stays ``unknown``.

    Assumption [I]: list items carry the guest's ``email`` (the simulator's do). Jicoo's documented
    booking object shows none; if the real list does not, a booking at the row's start and event
    type cannot be told apart and the row stays unknown (safe, but manual). Jicoo's "Get Booking
    Contacts" would settle it; its path is not in our notes (../shared/providers.md), so it is not guessed.
    """
    start = instant(payload.get("startedAt"))
    if start is None:
        raise ReadbackError(f"the row's startedAt {payload.get('startedAt')!r} is not a date-time")
    window = {"startedAt": utc_text(start - BEFORE), "endedAt": utc_text(start + AFTER),
              "order": "createdAt", "sort": "asc"}
    items = await read_all(sender, Listing("/bookings", params=window, items="data", total="totalCount",
                                           page="page", size="perPage", page_size=PER_PAGE))
    return the_one(items, id_field="uid", instants={"startedAt": start},
                   same={"eventTypeId": payload.get("eventTypeId"), "email": payload.get("email")},
                   exclude={"status": ["cancel"]})
