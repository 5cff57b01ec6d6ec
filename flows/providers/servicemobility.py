"""ServicePower ServiceMobility: request contracts, and the follow-up booking handler (search, then book).

Facts: ../shared/providers.md, section ServiceMobility. Labels: [C] the ServicePower docs say so,
[I] our reading. Everything that data can say lives in the mappings:
``mappings/servicemobility_workorders.yaml`` (one ``PUT /seiapi/v3/trans/WorkOrder/{WorkOrderNum}``
per row: an upsert keyed by the sheet's own number, so ``idempotent: true``) and
``mappings/servicemobility_followups.yaml`` (``request.handler: servicemobility.book_followup``).

Follow-up bookings take two calls per row, which is why they need code (:func:`book_followup`):

1. ``POST /seiapi/v3/trans/Appointments/OpenSlots`` with the row as an Appointment Search object
   [C]: Account, Location, OrderType, OriginalOrderNum, UserName and, in ``TimeConstraints``, the
   customer's preferred window(s). A search books nothing, so it may be resent freely.
2. ``POST /seiapi/v3/trans/WorkOrder/{OriginalOrderNum}/Followup`` with the Book Job object [C]:
   the same fields, ``TimeConstraints`` now holding only the chosen slot (Period in UTC
   ``YYYY-MM-DDTHH:mm:SS.sssZ``). Success is 200 ``{"OrderNum": ...}``; the row is ``created``
   with the OrderNum as its provider id. Not idempotent: never resent blindly.

The slot is the first one ServiceMobility offers that lies wholly inside a preferred window and
that no other row of the same run is booking (rows of one sheet would otherwise race each other
for the same first slot). No such slot: ``rejected``, naming the window searched.

**A 500 on the booking, and why it never books twice.** ServiceMobility reports every error as a
500 with free text [C], so a 500 alone cannot say whether the follow-up was booked. After any
5xx answer the handler searches again and decides from two facts, the text and the calendar:

================================  ==========================  ================================
500 text says the slot is gone     slot still offered after    outcome
(:data:`SLOT_GONE`)
================================  ==========================  ================================
yes                                either                      the provider refused *this*
                                                               request: book the first slot of
                                                               the new search (once); taken
                                                               again: ``rejected``
no                                 yes                         nothing was booked (a booked
                                                               slot leaves the calendar):
                                                               ``rejected`` with the text
no                                 no                          may be booked: ``unknown``,
                                                               naming the slot; not resent
================================  ==========================  ================================

Slots are compared by their ``ID`` when ServiceMobility gives one, else by Desc, Type and Period,
and by how many times they are offered, so a second technician free at the same time does not
make a booked slot look open. A timeout or a dropped connection is ``unknown`` at once: the request
may still be in progress, and a search now could show the slot open only for it to be booked a
moment later. ServiceMobility documents no way to list a work order's follow-ups, so an ``unknown``
row cannot be checked by a later run (no ``readback``): the engine keeps it ``unknown`` until the
operator checks and reruns with ``--resend-unknown``.

The wording of the "slot gone" text is the tenant CRM's [I]. Text that :data:`SLOT_GONE` does not
recognise leaves the row ``unknown`` (safe, never a double booking), never ``rejected``.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ..hooks import RowContext
from ..http.sender import CallResult, response_messages
from ..outcomes import Action, Outcome, Rule, Status
from ..redact import redact_text
from .types import Email, UtcDateTime

_Email = Email  # field names equal to type names need another name for the type

__all__ = [
    "SEARCH_PATH",
    "SLOT_GONE",
    "Account",
    "AccountLoc",
    "Address",
    "AppointmentSearch",
    "BookJob",
    "Contact",
    "Dispatch",
    "Location",
    "Period",
    "Phone",
    "TimeConstraint",
    "WorkOrder",
    "book_followup",
    "format_utc",
    "parse_utc",
]

#: Appointment Search REST API [C]
SEARCH_PATH = "/seiapi/v3/trans/Appointments/OpenSlots"
#: free text of a 500 that refuses a booking because the slot was taken [I: the CRM's wording]
SLOT_GONE = re.compile(
    r"(slot|appointment|time ?slot)s?\b[^.]*\b(no longer|not|un)\s*available"
    r"|(slot|appointment)s?\b[^.]*\b(already|has been|was)\s+(booked|taken|reserved)",
    re.IGNORECASE,
)
#: a search answers errors with 500 and a reason [C]; that is a refusal, and resending it would not help
SEARCH_RULES = {500: Rule(Action.REJECT, "the appointment search was refused (500)")}
_STATE_KEY = "servicemobility.slots_in_use"


# --- contracts ---------------------------------------------------------------------------------------


class _Obj(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Account(_Obj):
    """Only AccountNum: a managed account, which must exist. Any other property: ad-hoc, passed through [C]."""

    AccountNum: str | None = Field(None, min_length=1, max_length=50)
    AccountType: str | None = None
    Name: str | None = Field(None, max_length=100)
    Notes: str | None = None
    Website: str | None = None

    @model_validator(mode="after")
    def _identified(self) -> Account:
        if not self.AccountNum and not self.Name:
            raise ValueError("needs an AccountNum (a managed account) or a Name (an ad-hoc one)")
        return self


_Account = Account


class Address(_Obj):
    AddrLine1: str | None = Field(None, max_length=100)
    AddrLine2: str | None = Field(None, max_length=100)
    AddrLine3: str | None = Field(None, max_length=100)
    AddrLine4: str | None = Field(None, max_length=100)
    AddrType: str | None = None
    City: str | None = Field(None, max_length=60)
    Country: str | None = None
    Intersection: str | None = None
    Lat: str | None = None
    Lon: str | None = None
    Region: str | None = None
    Zip: str | None = Field(None, max_length=20)


_Address = Address


class Phone(_Obj):
    PhoneNum: str = Field(min_length=1, max_length=30)
    PhoneType: str | None = None


class Contact(_Obj):
    Email: _Email | None = None
    FirstName: str | None = Field(None, max_length=50)
    IsPrimary: bool | None = None
    LastName: str | None = Field(None, max_length=50)
    Phones: list[Phone] | None = None


class Location(_Obj):
    """Where the visit happens (Book Job and Appointment Search objects) [C]."""

    Address: _Address | None = None
    Contacts: list[Contact] | None = None
    Email: _Email | None = None
    LanguageID: str | None = None
    LocationNum: str | None = None
    Name: str | None = Field(None, max_length=100)
    Notes: str | None = Field(None, max_length=2000)
    POReq: bool | None = None
    ServiceAreaID: str | None = None
    SigReq: bool | None = None
    StorageLocationID: str | None = None


_Location = Location


class Period(_Obj):
    Start: UtcDateTime
    End: UtcDateTime

    @field_validator("End")
    @classmethod
    def _after_start(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("Start")
        if start and parse_utc(end) is not None and parse_utc(start) is not None and parse_utc(end) <= parse_utc(start):
            raise ValueError("must be after the start of the window")
        return end


_Period = Period


class TimeConstraint(_Obj):
    """TimeConstraints object [C]; Period times are UTC ``YYYY-MM-DDTHH:mm:SS.sssZ``."""

    ID: str | None = None
    Desc: str | None = None
    Type: str | None = None
    Period: _Period
    Delete: bool | None = None


class AppointmentSearch(_Obj):
    """A follow-up row, as the Appointment Search object [C]: TimeConstraints are the customer's
    preferred window(s). The request contract of ``servicemobility_followups.yaml``."""

    Account: _Account
    Assets: list[dict[str, Any]] | None = None
    FlexAttrs: dict[str, Any] | None = None
    FlexForms: list[str] | None = None
    Location: _Location
    OrderType: str = Field(min_length=1)
    OriginalOrderNum: str = Field(min_length=1, max_length=50)
    RequiredParts: list[dict[str, Any]] | None = None
    TimeConstraints: list[TimeConstraint] = Field(min_length=1, max_length=10)
    UserName: str | None = None


class BookJob(AppointmentSearch):
    """Book Job object [C] (its documented JSON is cut off after RequiredParts; TimeConstraints and
    UserName as in the Appointment Search object [I]): TimeConstraints holds the one chosen slot."""

    TimeConstraints: list[TimeConstraint] = Field(min_length=1, max_length=1)


class Dispatch(_Obj):
    """Work Order Dispatch object [C]: dispatched to the mobile worker once UserName and PlannedStartDate are set."""

    DispatchStatus: int | None = None
    PlannedDur: int | None = Field(None, ge=1, le=24 * 60)
    PlannedEndDate: UtcDateTime | None = None
    PlannedStartDate: UtcDateTime | None = None
    PrimaryUserName: str | None = None
    UserName: str | None = None


_Dispatch = Dispatch


class AccountLoc(_Obj):
    """The work order's location [C: "AccountLoc ... LocNum"]; the other properties as in Location [I]."""

    LocNum: str | None = None
    Name: str | None = Field(None, max_length=100)
    Address: _Address | None = None
    Contacts: list[Contact] | None = None
    Email: _Email | None = None
    Notes: str | None = Field(None, max_length=2000)


_AccountLoc = AccountLoc


class WorkOrder(_Obj):
    """The part of the Work Order object [C] a sheet fills, for ``PUT /seiapi/v3/trans/WorkOrder/{WorkOrderNum}``.

    ``WorkOrderNum`` is the URL's key, repeated in the body [I]; the PUT inserts or updates by it [C]."""

    WorkOrderNum: str = Field(min_length=1, max_length=50, pattern=r"^[^/?#\s]+$")
    OrderType: str = Field(min_length=1)
    Account: _Account
    AccountLoc: _AccountLoc | None = None
    Desc: str | None = Field(None, max_length=2000)
    PONum: str | None = Field(None, max_length=50)
    Dispatch: _Dispatch | None = None


# --- times --------------------------------------------------------------------------------------------


def parse_utc(text: Any) -> dt.datetime | None:
    """``2027-03-09T14:00:00.000Z`` (or with an offset) -> aware UTC datetime; None when unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value.astimezone(dt.UTC)


def format_utc(value: dt.datetime) -> str:
    """Aware datetime -> ``YYYY-MM-DDTHH:mm:SS.sssZ``, as ServiceMobility writes UTC [C]."""
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _span(start: dt.datetime, end: dt.datetime, zone: ZoneInfo | None) -> str:
    utc = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC" if start.date() == end.date() else f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if zone is None:
        return utc
    ls, le = start.astimezone(zone), end.astimezone(zone)
    local = f"{ls:%a %d %b %Y %H:%M}-{le:%H:%M}" if ls.date() == le.date() else f"{ls:%a %d %b %Y %H:%M} to {le:%a %d %b %Y %H:%M}"
    return f"{local} {zone.key} ({utc})"


# --- slots ------------------------------------------------------------------------------------------------

_EXCLUDED = re.compile(r"unavail|not ?avail|exclu|busy", re.IGNORECASE)


class _Slot:
    """One offered TimeConstraints entry, with its UTC period and its identity."""

    __slots__ = ("end", "key", "raw", "start")

    def __init__(self, raw: dict[str, Any], start: dt.datetime, end: dt.datetime) -> None:
        self.raw, self.start, self.end = raw, start, end
        ident = raw.get("ID")
        self.key: tuple = ("ID", str(ident)) if ident not in (None, "") else (
            "slot", raw.get("Desc"), raw.get("Type"), start, end)

    def booking(self) -> dict[str, Any]:
        """The slot as the Book Job object's TimeConstraints entry: as offered, Period in ServiceMobility's UTC form."""
        out = {k: v for k, v in self.raw.items() if k != "Period"}
        out["Period"] = {"Start": format_utc(self.start), "End": format_utc(self.end)}
        return out

    def describe(self, zone: ZoneInfo | None) -> str:
        who = self.raw.get("Desc")
        return _span(self.start, self.end, zone) + (f" with {who}" if who else "")


def _slots(offered: list[Any]) -> list[_Slot]:
    out = []
    for raw in offered:
        if not isinstance(raw, dict) or not isinstance(raw.get("Period"), dict):
            continue
        start, end = parse_utc(raw["Period"].get("Start")), parse_utc(raw["Period"].get("End"))
        if start is not None and end is not None and end > start:
            out.append(_Slot(raw, start, end))
    return out


def _windows(payload: dict[str, Any]) -> tuple[list[tuple[dt.datetime, dt.datetime]], list[tuple[dt.datetime, dt.datetime]]]:
    """(preferred windows, excluded windows) from the row's TimeConstraints."""
    wanted, excluded = [], []
    for tc in payload.get("TimeConstraints") or []:
        period = tc.get("Period") or {}
        start, end = parse_utc(period.get("Start")), parse_utc(period.get("End"))
        if start is None or end is None:
            continue
        (excluded if _EXCLUDED.search(str(tc.get("Type") or "")) else wanted).append((start, end))
    return wanted, excluded


def _fits(slot: _Slot, wanted: list, excluded: list) -> bool:
    inside = any(s <= slot.start and slot.end <= e for s, e in wanted) if wanted else True
    return inside and not any(slot.start < e and s < slot.end for s, e in excluded)


def _count(slots: list[_Slot], key: tuple) -> int:
    return sum(1 for s in slots if s.key == key)


# --- the handler ----------------------------------------------------------------------------------------------


class _Row:
    """One row's booking: the calls made so far and how to word its outcome."""

    def __init__(self, ctx: RowContext) -> None:
        self.ctx = ctx
        self.payload: dict[str, Any] = ctx.payload
        self.zone = _row_zone(ctx)
        self.wanted, self.excluded = _windows(self.payload)
        self.requests = 0
        self.secrets = ctx.secrets()

    def window(self) -> str:
        if not self.wanted:
            return "the row's TimeConstraints"
        return " or ".join(_span(s, e, self.zone) for s, e in self.wanted)

    def text(self, result: CallResult) -> str:
        """The answer's body, verbatim but trimmed (ServiceMobility's errors are free text [C])."""
        if result.response is None:
            return ""
        body = result.json()
        if isinstance(body, str):
            text = body
        elif isinstance(body, (dict, list)):
            text = "; ".join(f"{f}: {m}" if f else m for f, m in response_messages(body, result.response.text))
        else:
            text = result.response.text
        text = text.strip()
        return redact_text(text[:1000] + ("..." if len(text) > 1000 else ""), self.secrets)

    def outcome(self, status: Status, message: str, result: CallResult | None = None, provider_id: str | None = None) -> Outcome:
        return Outcome(status, message, provider_id=provider_id, attempts=self.requests,
                       http_status=result.status_code if result is not None else None)

    async def search(self) -> list[_Slot] | Outcome:
        result = await self.ctx.call("POST", SEARCH_PATH, json_body=self.payload, idempotent=True, rules=SEARCH_RULES)
        self.requests += result.attempts
        if result.action is not Action.SUCCESS:
            outcome = self.ctx.outcome_from(result)
            outcome.attempts = self.requests
            return outcome
        body = result.json()
        offered = body.get("TimeConstraints") if isinstance(body, dict) else None
        if offered is None and isinstance(body, dict) and not body.get("StatusMsg"):
            return self.outcome(Status.FAILED, "the appointment search answered without a TimeConstraints list; "
                                               "nothing was booked", result)
        return _slots(offered or [])


def _row_zone(ctx: RowContext) -> ZoneInfo | None:
    """The zone the sheet's window is written in (from the mapping's datetime field), for messages."""
    for path, spec in ctx.mapping.fields.items():
        source = spec.datetime
        if source is None or not path.startswith("TimeConstraints"):
            continue
        zone = source.timezone
        if source.timezone_column:
            cell = ctx.cell(source.timezone_column)
            if isinstance(cell, str) and cell.strip():
                zone = cell.strip()
        try:
            return ZoneInfo(zone) if zone else None
        except (ValueError, KeyError, OSError):
            return None
    return None


async def book_followup(ctx: RowContext) -> Outcome:
    """Search ServiceMobility's open slots for the row's window, then book the first that fits as a
    follow-up of ``OriginalOrderNum``. See the module docstring for every outcome."""
    row = _Row(ctx)
    path = ctx.request_path()
    if path is None:
        return Outcome(Status.INVALID, "the booking path needs OriginalOrderNum, which is empty")
    in_use: set = ctx.run_state.setdefault(_STATE_KEY, set())
    found = await row.search()
    if isinstance(found, Outcome):
        return found
    offered = found
    lost: list[str] = []
    for _ in range(2):  # the first choice, and one more after the slot was taken meanwhile
        slot = next((s for s in offered if _fits(s, row.wanted, row.excluded) and s.key not in in_use), None)
        if slot is None:
            if lost:
                return row.outcome(Status.REJECTED, f"the slot {lost[-1]} was taken before it could be booked and no other "
                                                    f"open slot is left in the preferred window {row.window()}")
            inside = sum(1 for s in offered if _fits(s, row.wanted, row.excluded))
            why = (f"ServiceMobility offered {len(offered)} slot(s), none inside it" if offered and not inside else
                   f"the {inside} open slot(s) inside it are being booked by other rows of this sheet" if inside else
                   "ServiceMobility offered none")
            return row.outcome(Status.REJECTED, f"no open slot in the preferred window {row.window()} ({why}); "
                                                f"widen the window or pick another day")
        in_use.add(slot.key)
        body = {**row.payload, "TimeConstraints": [slot.booking()]}
        result = await ctx.call("POST", path, json_body=body)
        row.requests += result.attempts
        what = slot.describe(row.zone)
        if result.action is Action.SUCCESS:
            data = result.json()
            order = data.get("OrderNum") if isinstance(data, dict) else None
            if order not in (None, ""):
                note = f" (first choice {lost[0]} was taken meanwhile)" if lost else ""
                return row.outcome(Status.CREATED, f"booked {what}{note}", result, provider_id=str(order))
            return row.outcome(Status.UNKNOWN, f"ServiceMobility answered {result.status_code} without an OrderNum "
                                               f"({row.text(result) or 'empty body'}) for {what}: the follow-up may "
                                               f"exist; check work order {row.payload.get('OriginalOrderNum')} before "
                                               f"rerunning with --resend-unknown", result)
        if result.action is Action.UNKNOWN and result.response is None:  # timeout or dropped connection
            return row.outcome(Status.UNKNOWN, f"{result.message}: the follow-up for {what} may have been booked; "
                               f"check work order {row.payload.get('OriginalOrderNum')}'s follow-ups before rerunning "
                               f"with --resend-unknown", result)
        if result.action is not Action.UNKNOWN:  # refused, 401 twice, retries used up: nothing was booked
            in_use.discard(slot.key)
            outcome = ctx.outcome_from(result)
            outcome.attempts = row.requests
            return outcome
        # a 5xx answer: the provider finished with the request; the text and the calendar tell what happened
        text = row.text(result)
        after = await row.search()
        if isinstance(after, Outcome):
            return row.outcome(Status.UNKNOWN, f"ServiceMobility answered {result.status_code} ({text or 'no details'}) "
                               f"to booking {what}, and the search that would show whether the slot is still open "
                               f"failed ({after.message}); check work order {row.payload.get('OriginalOrderNum')}'s "
                               f"follow-ups before rerunning with --resend-unknown", result)
        if SLOT_GONE.search(text):
            lost.append(what)
            offered = after
            continue
        if _count(after, slot.key) >= _count(offered, slot.key):
            in_use.discard(slot.key)
            return row.outcome(Status.REJECTED, f"ServiceMobility refused the booking ({result.status_code}): "
                                                f"{text or 'no details'} (the slot {what} is still open, so nothing "
                                                f"was booked)", result)
        return row.outcome(Status.UNKNOWN, f"ServiceMobility answered {result.status_code} ({text or 'no details'}) "
                           f"and the slot {what} is no longer offered: the follow-up may have been booked. Check work "
                           f"order {row.payload.get('OriginalOrderNum')}'s follow-ups before rerunning with "
                           f"--resend-unknown", result)
    return row.outcome(Status.REJECTED, f"the slot was taken twice between search and booking ({'; then '.join(lost)}); "
                                        f"searched the preferred window {row.window()}: rerun the row to search again")
