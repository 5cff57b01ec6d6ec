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

from .contracts import (
    Account,
    AccountLoc,
    Address,
    AppointmentSearch,
    BookJob,
    Contact,
    Dispatch,
    Location,
    Period,
    Phone,
    TimeConstraint,
    WorkOrder,
    format_utc,
    parse_utc,
)
from .followup import SEARCH_PATH, SLOT_GONE, book_followup

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
