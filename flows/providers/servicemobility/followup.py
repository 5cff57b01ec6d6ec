"""ServiceMobility follow-up bookings: search the open slots, then book the first that fits (see the
package docstring for every outcome, and why a 500 never books twice)."""
from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ...hooks import RowContext
from ...outcomes import Action, Outcome, Rule, Status, response_messages
from ...redact import redact_text
from .contracts import format_utc, parse_utc

if TYPE_CHECKING:  # types only, as in the contract (flows/hooks.py): what RowContext.call returns
    from ...http.sender import CallResult

__all__ = ["SEARCH_PATH", "SLOT_GONE", "book_followup"]

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

#: a slot's identity: ("ID", id) when ServiceMobility gives one, else ("slot", Desc, Type, start, end)
SlotKey = tuple[Any, ...]
#: a window of the row's TimeConstraints, in UTC
Window = tuple[dt.datetime, dt.datetime]


def _span(start: dt.datetime, end: dt.datetime, zone: ZoneInfo | None) -> str:
    if start.date() == end.date():
        utc = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC"
    else:
        utc = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    if zone is None:
        return utc
    ls, le = start.astimezone(zone), end.astimezone(zone)
    if ls.date() == le.date():
        local = f"{ls:%a %d %b %Y %H:%M}-{le:%H:%M}"
    else:
        local = f"{ls:%a %d %b %Y %H:%M} to {le:%a %d %b %Y %H:%M}"
    return f"{local} {zone.key} ({utc})"


# --- slots ------------------------------------------------------------------------------------------------

_EXCLUDED = re.compile(r"unavail|not ?avail|exclu|busy", re.IGNORECASE)


class _Slot:
    """One offered TimeConstraints entry, with its UTC period and its identity."""

    __slots__ = ("end", "key", "raw", "start")

    def __init__(self, raw: dict[str, Any], start: dt.datetime, end: dt.datetime) -> None:
        self.raw, self.start, self.end = raw, start, end
        ident = raw.get("ID")
        self.key: SlotKey = ("ID", str(ident)) if ident not in (None, "") else (
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


def _windows(payload: dict[str, Any]) -> tuple[list[Window], list[Window]]:
    """(preferred windows, excluded windows) from the row's TimeConstraints."""
    wanted: list[Window] = []
    excluded: list[Window] = []
    for tc in payload.get("TimeConstraints") or []:
        period = tc.get("Period") or {}
        start, end = parse_utc(period.get("Start")), parse_utc(period.get("End"))
        if start is None or end is None:
            continue
        (excluded if _EXCLUDED.search(str(tc.get("Type") or "")) else wanted).append((start, end))
    return wanted, excluded


def _fits(slot: _Slot, wanted: list[Window], excluded: list[Window]) -> bool:
    inside = any(s <= slot.start and slot.end <= e for s, e in wanted) if wanted else True
    return inside and not any(slot.start < e and s < slot.end for s, e in excluded)


def _count(slots: list[_Slot], key: SlotKey) -> int:
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

    def outcome(self, status: Status, message: str, result: CallResult | None = None,
                provider_id: str | None = None) -> Outcome:
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
    in_use: set[SlotKey] = ctx.run_state.setdefault(_STATE_KEY, set())
    found = await row.search()
    if isinstance(found, Outcome):
        return found
    offered = found
    lost: list[str] = []
    for _ in range(2):  # the first choice, and one more after the slot was taken meanwhile
        slot = next((s for s in offered if _fits(s, row.wanted, row.excluded) and s.key not in in_use), None)
        if slot is None:
            if lost:
                return row.outcome(Status.REJECTED, f"the slot {lost[-1]} was taken before it could be booked and no "
                                                    f"other open slot is left in the preferred window {row.window()}")
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
            return row.outcome(Status.UNKNOWN, f"ServiceMobility answered {result.status_code} "
                               f"({text or 'no details'}) to booking {what}, and the search that would show "
                               f"whether the slot is still open failed ({after.message}); check work order "
                               f"{row.payload.get('OriginalOrderNum')}'s follow-ups before rerunning with "
                               f"--resend-unknown", result)
        if SLOT_GONE.search(text):
            lost.append(what)
            offered = after
            continue
        if _count(after, slot.key) >= _count(offered, slot.key):
            in_use.discard(slot.key)
            return row.outcome(Status.REJECTED, f"ServiceMobility refused the booking ({result.status_code}): "
                                                f"{text or 'no details'} (the slot {what} is still open, so nothing "
                                                f"was booked)", result)
        return row.outcome(Status.UNKNOWN, f"ServiceMobility answered {result.status_code} "
                           f"({text or 'no details'}) and the slot {what} is no longer offered: the follow-up "
                           f"may have been booked. Check work order {row.payload.get('OriginalOrderNum')}'s "
                           f"follow-ups before rerunning with "
                           f"--resend-unknown", result)
    return row.outcome(Status.REJECTED, "the slot was taken twice between search and booking "
                                        f"({'; then '.join(lost)}); searched the preferred window {row.window()}: "
                                        f"rerun the row to search again")
