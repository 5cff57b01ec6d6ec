"""A ServicePower ServiceMobility simulator (tenant root URL), served on loopback.

What it implements, from the ServiceMobility REST docs (see shared/providers.md, "3. ServiceMobility"):

* ``POST /createjwt`` ``{"username", "password"}`` -> **200** ``{"token"}``: an HS256 JWT with
  ``iat`` and ``exp`` (lifetime ``token_lifetime`` seconds, fractions allowed for tests; times from
  ``clock``, ``time.time`` unless a test passes its own);
  **401** ``Invalid Logon`` for unknown credentials; **500** for a body that is not JSON.
* every ``/seiapi`` request needs ``x-access-token`` with a token this simulator signed and that
  has not expired, else **401** (``Invalid Logon``, plus why).
* ``POST /seiapi/v3/trans/Appointments/OpenSlots`` (Appointment Search object) -> **200**
  ``{"StatusMsg", "TimeConstraints": [{"ID", "Desc", "Type", "Period": {"Start", "End"}}]}``: the
  free slots of a small technician calendar that overlap the customer's available periods, earliest
  first (at most ``max_offered``). Slots that overlap without fitting are offered too, as a CRM
  might; choosing one that fits is the client's job.
* ``POST /seiapi/v3/trans/WorkOrder/{WorkOrderID}/Followup`` (Book Job object, TimeConstraints =
  the chosen slot) -> **200** ``{"OrderNum", "OrderedParts": []}``; the slot leaves the calendar.
  Every error is **500** with free text, as documented: ``Slot no longer available`` when the
  slot was booked meanwhile, ``Work Order X does not exist``, or what is wrong with the body.
* ``PUT /seiapi/v3/trans/WorkOrder/{WorkOrderNum}``: insert (**201** + ``Location``) or update
  (**200**) by the caller's number, so resending it stores one work order; ``GET`` the same path
  -> **200** the work order, **404** when there is none. Bad bodies: **500** with free text.
* a managed account (an ``Account`` with only ``AccountNum``) must exist [C]: one not in
  :attr:`~ServiceMobilitySimulator.accounts` is refused, as ServiceMobility refuses everything, with
  **500** and a reason: ``Account ACC-79999 does not exist.`` (nothing stored). An ad-hoc account
  (any other property) is passed through unverified [C].

ServiceMobility documents error bodies as free text, so they are ``text/plain`` here. The fault
knobs (:mod:`flows.sandbox.faults`) act on the ``/seiapi`` routes; ``/createjwt`` is exempt (its
faults would stop a run rather than test how rows are handled).

A follow-up books off an existing work order: the simulator starts with the closed-incomplete
orders :data:`DEFAULT_ORIGINAL_ORDERS` (those ``sample_data/servicemobility/followups.xlsx``
refers to). To race a booking, :meth:`~ServiceMobilitySimulator.take_slot` books a slot for
"another client", :meth:`~ServiceMobilitySimulator.steal_next` makes the next N Followup requests
find their slot just taken, and ``before_book`` is a hook called with each Followup body first.
:meth:`~ServiceMobilitySimulator.fail_bookings` makes bookings answer a 500 after (or without)
booking, and :meth:`~ServiceMobilitySimulator.revoke_tokens` invalidates every token issued.

Sandbox-only control routes (no token): ``GET /_sandbox/state``, ``POST /_sandbox/faults``,
``POST /_sandbox/reset``, ``POST /_sandbox/take`` ``{"ID"}``, ``POST /_sandbox/steal`` ``{"next": n}``.
"""
from __future__ import annotations

import collections
import copy
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from .faults import FaultInjector, Faults
from .server import SANDBOX_PREFIX, Simulator, create_app, json_response, read_json
from .servicemobility_api import (
    API,
    CALENDAR_ZONE,
    DEFAULT_ACCOUNTS,
    DEFAULT_DAYS,
    DEFAULT_FIRST_DAY,
    DEFAULT_ORDER_TYPES,
    DEFAULT_ORIGINAL_ORDERS,
    DEFAULT_PASSWORD,
    DEFAULT_PERIODS,
    DEFAULT_TECHNICIANS,
    DEFAULT_USERNAME,
    LOGIN_PATH,
    TOKEN_HEADER,
    Technician,
    _Slot,
    _text,
    format_utc,
    make_jwt,
    parse_utc,
    read_jwt,
    time_periods,
)

__all__ = [
    "CALENDAR_ZONE",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_ORDER_TYPES",
    "DEFAULT_ORIGINAL_ORDERS",
    "DEFAULT_PASSWORD",
    "DEFAULT_TECHNICIANS",
    "DEFAULT_USERNAME",
    "ServiceMobilitySimulator",
    "Technician",
    "make_jwt",
    "read_jwt",
]

# --- the simulator -----------------------------------------------------------------------------------


class ServiceMobilitySimulator(Simulator):
    """In-memory ServiceMobility: logins, a technician calendar, work orders, follow-ups, fault knobs.

    State changes only on the server's event loop; tests may read :attr:`work_orders`,
    :attr:`followups`, :attr:`put_counts`, :attr:`logins` and :attr:`requests` from their own
    thread once requests are done.
    """

    provider = "servicemobility"

    @classmethod
    def sandbox_env(cls, url: str) -> dict[str, str]:
        """The environment that points a run at this simulator serving at ``url`` (demo, `booking-import sandbox`)."""
        # the tenant's root URL: /createjwt and /seiapi/... hang off it
        return {"SERVICEMOBILITY_BASE_URL": url, "SERVICEMOBILITY_USERNAME": DEFAULT_USERNAME,
                "SERVICEMOBILITY_PASSWORD": DEFAULT_PASSWORD}

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        faults: Faults | None = None,
        *,
        token_lifetime: float = 3600.0,
        technicians: Iterable[Technician] = DEFAULT_TECHNICIANS,
        first_day: date = DEFAULT_FIRST_DAY,
        days: int = DEFAULT_DAYS,
        periods: Iterable[tuple[int, int]] = DEFAULT_PERIODS,
        zone: str = CALENDAR_ZONE,
        original_orders: Iterable[str] = DEFAULT_ORIGINAL_ORDERS,
        order_types: Iterable[str] = DEFAULT_ORDER_TYPES,
        max_offered: int = 12,
        accounts: Iterable[str] | None = DEFAULT_ACCOUNTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.users = dict(users or {DEFAULT_USERNAME: DEFAULT_PASSWORD})
        self.token_lifetime = token_lifetime
        #: the simulator's wall clock (seconds since the epoch): tokens' ``iat``/``exp`` and their expiry; a test
        #: passes its own to let a token expire without waiting for it
        self.clock = clock
        self.technicians = tuple(technicians)
        self._calendar = (first_day, days, tuple(periods), ZoneInfo(zone))
        self._originals = tuple(original_orders)
        self.order_types = frozenset(order_types)
        #: AccountNums of the tenant's managed accounts; None: every account exists
        self.accounts = None if accounts is None else set(accounts)
        self.max_offered = max_offered
        self._secret = secrets.token_bytes(32)
        self._initial_faults = faults or Faults()
        self.injector = FaultInjector(self._initial_faults)
        #: "METHOD /route" -> requests received on the API routes (logins are counted in :attr:`logins`)
        self.requests: collections.Counter[str] = collections.Counter()
        #: called with ``(simulator, WorkOrderID, body)`` before each Followup is booked (tests race it)
        self.before_book: Callable[[ServiceMobilitySimulator, str, dict[str, Any]], None] | None = None
        self._clear()

    def _clear(self) -> None:
        first_day, days, periods, zone = self._calendar
        self._slots: dict[str, _Slot] = {}
        day = first_day
        for _ in range(days):
            if day.weekday() < 5:
                for tech in self.technicians:
                    if day.weekday() in tech.days_off:
                        continue
                    for start_h, end_h in periods:
                        start = datetime(day.year, day.month, day.day, start_h, tzinfo=zone).astimezone(UTC)
                        end = datetime(day.year, day.month, day.day, end_h, tzinfo=zone).astimezone(UTC)
                        slot_id = f"{tech.user}-{day:%Y%m%d}-{start_h:02d}00"
                        self._slots[slot_id] = _Slot(slot_id, tech.user, tech.name, start, end)
            day += timedelta(days=1)
        rank = {t.user: i for i, t in enumerate(self.technicians)}
        self._order = sorted(self._slots.values(), key=lambda s: (s.start, rank[s.user]))
        self._work_orders: dict[str, dict[str, Any]] = {
            num: {"WorkOrderNum": num, "OrderType": "1001", "Status": "Closed-Incomplete",
                  "Account": {"AccountNum": f"ACC-{70000 + i}"}}
            for i, num in enumerate(self._originals, start=1)
        }
        self._followups: list[dict[str, Any]] = []
        self.put_counts: collections.Counter[str] = collections.Counter()
        self.logins = 0
        self.login_failures = 0
        self.tokens_refused = 0
        self._steal = 0
        self._failures: collections.deque[tuple[str, bool]] = collections.deque()

    # -- public, for tests and the CLI -------------------------------------------------------

    @property
    def work_orders(self) -> dict[str, dict[str, Any]]:
        """WorkOrderNum -> work order (the seeded originals, upserted ones and booked follow-ups)."""
        return dict(self._work_orders)

    @property
    def followups(self) -> list[dict[str, Any]]:
        """Every booked follow-up, oldest first: the stored work order plus the Book Job body received."""
        return list(self._followups)

    @property
    def bookings(self) -> list[dict[str, Any]]:
        """What clients stored: upserted work orders (once each, however often they were PUT) and follow-ups."""
        return [self._work_orders[n] for n in self.put_counts] + self.followups

    def slots(self, *, free: bool | None = None) -> list[dict[str, Any]]:
        """The calendar, earliest first: each slot as OpenSlots offers it plus ``BookedBy``."""
        return [{**s.offer(), "BookedBy": s.booked_by} for s in self._order
                if free is None or (s.booked_by is None) == free]

    def take_slot(self, slot_id: str, by: str = "another client") -> bool:
        """Book a slot for someone else (a race with the importer). False when it was already taken."""
        slot = self._slots.get(slot_id)
        if slot is None or slot.booked_by is not None:
            return False
        slot.booked_by = by
        return True

    def steal_next(self, n: int = 1) -> None:
        """The next ``n`` Followup requests find their slot taken by another client just before they arrive."""
        self._steal += n

    def fail_bookings(self, n: int = 1, text: str = "An unexpected error occurred while booking the job",
                      *, book: bool = True) -> None:
        """The next ``n`` Followup requests for a free slot answer 500 with ``text``: after booking it
        (``book=True``, the dangerous case) or without booking anything."""
        self._failures.extend([(text, book)] * n)

    def revoke_tokens(self) -> None:
        """Sign with a new key: every token issued so far is refused (401) from now on."""
        self._secret = secrets.token_bytes(32)

    def token(self, username: str = DEFAULT_USERNAME, lifetime: float | None = None) -> str:
        now = self.clock()
        life = self.token_lifetime if lifetime is None else lifetime
        return make_jwt({"sub": username, "iat": round(now, 3), "exp": round(now + life, 3)}, self._secret)

    def reset(self) -> None:
        """Forget jobs, tokens and counts, and restore the faults given to the constructor."""
        super().reset()

    def state(self) -> dict[str, Any]:
        """What ``GET /_sandbox/state`` answers."""
        free = sum(1 for s in self._order if s.booked_by is None)
        return {
            "provider": self.provider,
            "counts": {
                "work_orders": len(self._work_orders),
                "followups": len(self._followups),
                "puts": sum(self.put_counts.values()),
                "slots_free": free,
                "slots_booked": len(self._order) - free,
                "logins": self.logins,
                "login_failures": self.login_failures,
                "tokens_refused": self.tokens_refused,
                "requests": dict(self.requests),
                "faults": dict(self.injector.counts),
            },
            "faults": self.faults.to_dict(),
            "work_orders": list(self._work_orders.values()),
            "followups": self.followups,
        }

    def app(self) -> web.Application:
        """A fresh aiohttp application over this simulator's state."""
        return create_app(
            self.injector,
            self.requests,
            routes=[
                web.post(LOGIN_PATH, self._createjwt),
                web.post(f"{API}/Appointments/OpenSlots", self._open_slots),
                web.post(f"{API}/WorkOrder/{{WorkOrderID}}/Followup", self._followup),
                web.put(f"{API}/WorkOrder/{{WorkOrderNum}}", self._put_work_order),
                web.get(f"{API}/WorkOrder/{{WorkOrderNum}}", self._get_work_order),
                web.get("/_sandbox/state", self._sandbox_state),
                web.post("/_sandbox/faults", self._sandbox_faults),
                web.post("/_sandbox/reset", self._sandbox_reset),
                web.post("/_sandbox/take", self._sandbox_take),
                web.post("/_sandbox/steal", self._sandbox_steal),
            ],
            middlewares=[self._auth_middleware],
            exempt_prefix=(SANDBOX_PREFIX, LOGIN_PATH),
        )

    # -- login and tokens --------------------------------------------------------------------

    async def _createjwt(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _text('The request body must be JSON: {"username": "", "password": ""}')
        username, password = body.get("username"), body.get("password")
        known = self.users.get(username) if isinstance(username, str) else None
        if known is None or not isinstance(password, str) or not hmac.compare_digest(known.encode(), password.encode()):
            self.login_failures += 1
            return _text("Invalid Logon", 401)
        self.logins += 1
        return json_response({"token": self.token(username)})

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(SANDBOX_PREFIX) or request.path == LOGIN_PATH:
            return await handler(request)
        token = request.headers.get(TOKEN_HEADER)
        if not token:
            self.tokens_refused += 1
            return _text(f"Invalid Logon: no {TOKEN_HEADER} header", 401)
        claims, why = read_jwt(token, self._secret, now=self.clock())
        if claims is None:
            self.tokens_refused += 1
            return _text(f"Invalid Logon: {why}", 401)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _text("Not found", 404)
        except web.HTTPMethodNotAllowed as exc:
            return _text("Method not allowed", exc.status)

    # -- appointment search --------------------------------------------------------------------

    def _order_problems(self, body: dict[str, Any]) -> list[str]:
        problems = []
        account = body.get("Account")
        if not isinstance(account, dict) or not (account.get("AccountNum") or account.get("Name")):
            problems.append("Account is required (an AccountNum, or an ad-hoc account with a Name)")
        elif (self.accounts is not None and set(account) <= {"AccountNum"}
              and account["AccountNum"] not in self.accounts):
            # managed: "the system expands it and errors if it does not exist" [C]
            return [f"Account {account['AccountNum']} does not exist."]
        order_type = body.get("OrderType")
        if not order_type:
            problems.append("OrderType is required")
        elif order_type not in self.order_types:
            problems.append(f"OrderType '{order_type}' is not a Work Order Type")
        return problems

    async def _open_slots(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _text("The request body is not a valid Appointment Search object")
        problems = self._order_problems(body)
        wanted, excluded, problem = time_periods(body.get("TimeConstraints"))
        if problem:
            problems.append(problem)
        if problems:
            return _text("; ".join(problems))
        found = []
        for slot in self._order:
            if slot.booked_by is not None:
                continue
            if wanted and not any(slot.start < e and s < slot.end for s, e in wanted):
                continue
            if any(slot.start < e and s < slot.end for s, e in excluded):
                continue
            found.append(slot.offer())
            if len(found) >= self.max_offered:
                break
        return json_response({"StatusMsg": "" if found else "No open appointment slots in the requested period",
                              "TimeConstraints": found})

    # -- follow-up booking ---------------------------------------------------------------------

    async def _followup(self, request: web.Request) -> web.Response:
        original = request.match_info["WorkOrderID"]
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _text("The request body is not a valid Book Job object")
        if original not in self._work_orders:
            return _text(f"Work Order {original} does not exist")
        problems = self._order_problems(body)
        location = body.get("Location")
        if not isinstance(location, dict) or not isinstance(location.get("Address"), dict):
            problems.append("Location.Address is required")
        if body.get("OriginalOrderNum") not in (None, original):
            problems.append(f"OriginalOrderNum '{body['OriginalOrderNum']}' does not match Work Order {original}")
        constraints = body.get("TimeConstraints")
        if isinstance(constraints, list) and len(constraints) != 1:
            problems.append("TimeConstraints must hold exactly the one appointment slot to book")
        wanted, _, problem = time_periods(constraints)
        if problem:
            problems.append(problem)
        if problems:
            return _text("; ".join(problems))
        if self.before_book is not None:
            self.before_book(self, original, body)
        start, end = wanted[0]
        slot_id = constraints[0].get("ID")
        if slot_id:
            slot = self._slots.get(str(slot_id))
            if slot is None:
                return _text(f"Appointment slot {slot_id} does not exist")
            if (slot.start, slot.end) != (start, end):
                return _text(f"Appointment slot {slot_id} is {format_utc(slot.start)} to {format_utc(slot.end)}, "
                             f"not the period requested")
        else:
            same = [s for s in self._order if (s.start, s.end) == (start, end)]
            if not same:
                return _text(f"There is no appointment slot from {format_utc(start)} to {format_utc(end)}")
            slot = next((s for s in same if s.booked_by is None), same[0])
        if self._steal > 0 and slot.booked_by is None:
            self._steal -= 1
            slot.booked_by = "another client"
        if slot.booked_by is not None:
            return _text("Slot no longer available")
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and not failure[1]:
            return _text(failure[0])
        count = sum(1 for f in self._followups if f["OriginalOrderNum"] == original)
        order_num = f"{original}-F{count + 1}"
        slot.booked_by = order_num
        stored = {
            "WorkOrderNum": order_num,
            "OrderType": body["OrderType"],
            "OriginalOrderNum": original,
            "Account": copy.deepcopy(body["Account"]),
            "AccountLoc": copy.deepcopy(body["Location"]),
            "Dispatch": {"DispatchStatus": 3, "PlannedStartDate": format_utc(slot.start),
                         "PlannedEndDate": format_utc(slot.end),
                         "PlannedDur": int((slot.end - slot.start).total_seconds() // 60), "UserName": slot.user},
            "Status": "Open",
        }
        self._work_orders[order_num] = stored
        self._followups.append({**stored, "SlotID": slot.id, "BookJob": copy.deepcopy(body)})
        if failure is not None:
            return _text(failure[0])
        return json_response({"OrderNum": order_num, "OrderedParts": []})

    # -- work orders ----------------------------------------------------------------------------

    async def _put_work_order(self, request: web.Request) -> web.Response:
        num = request.match_info["WorkOrderNum"]
        ok, body = await read_json(request)
        if not ok or not isinstance(body, dict):
            return _text("The request body is not a valid Work Order object")
        problems = self._order_problems(body)
        if body.get("WorkOrderNum") not in (None, num):
            problems.append(f"WorkOrderNum '{body['WorkOrderNum']}' in the body does not match {num} in the URL")
        dispatch = body.get("Dispatch")
        if dispatch is not None and not isinstance(dispatch, dict):
            problems.append("Dispatch must be an object")
            dispatch = None
        dispatch = dict(dispatch or {})
        for key in ("PlannedStartDate", "PlannedEndDate"):
            if key in dispatch and parse_utc(dispatch[key]) is None:
                problems.append(f"Dispatch.{key} {dispatch[key]!r} is not a UTC date-time (YYYY-MM-DDTHH:mm:SS.sssZ)")
        dur = dispatch.get("PlannedDur")
        if dur is not None and (isinstance(dur, bool) or not isinstance(dur, int) or dur <= 0):
            problems.append(f"Dispatch.PlannedDur {dur!r} must be a whole number of minutes")
        if problems:
            return _text("; ".join(problems))
        if dispatch:
            scheduled, assigned = bool(dispatch.get("PlannedStartDate")), bool(dispatch.get("UserName"))
            dispatch["DispatchStatus"] = 3 if scheduled and assigned else 1 if scheduled else 2 if assigned else 0
        stored = {**copy.deepcopy(body), "WorkOrderNum": num, **({"Dispatch": dispatch} if dispatch else {})}
        created = num not in self._work_orders
        self._work_orders[num] = stored
        self.put_counts[num] += 1
        if created:
            return json_response(stored, status=201, headers={"Location": f"{API}/WorkOrder/{num}"})
        return json_response(stored)

    async def _get_work_order(self, request: web.Request) -> web.Response:
        num = request.match_info["WorkOrderNum"]
        stored = self._work_orders.get(num)
        if stored is None:
            return _text(f"Work Order {num} was not found", 404)
        return json_response(stored)

    # -- sandbox control ----------------------------------------------------------------------

    def _control_error(self, message: str) -> web.Response:
        return _text(message, 400)

    def _emptied(self) -> dict[str, Any]:
        return {"work_orders": len(self._work_orders)}

    async def _sandbox_take(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        slot_id = body.get("ID") if ok and isinstance(body, dict) else None
        if not isinstance(slot_id, str):
            return _text('the body must be {"ID": "<slot id>"}', 400)
        return json_response({"taken": self.take_slot(slot_id)})

    async def _sandbox_steal(self, request: web.Request) -> web.Response:
        ok, body = await read_json(request)
        n = body.get("next", 1) if ok and isinstance(body, dict) else None
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            return _text('the body must be {"next": <number of bookings>}', 400)
        self.steal_next(n)
        return json_response({"steal_next": self._steal})
