"""Read-backs that can be trusted: the shared rules every provider's read-back follows.

A read-back decides whether a row an earlier run *may* have sent is at the provider. Its answer
is acted on without a human: "absent" resends the row, so "absent" must be proven, never
assumed. Every read-back therefore:

1. asks for a **window that surely contains the booking** (never a zero-width
   ``from=T&to=T``: a provider that compares the filter as text, at another precision, or bounds
   a booking's *end* with the upper filter answers empty for it);
2. reads **every page** (``totalCount`` followed; a page missing, short or a total that moves
   while paging is "unsure", after a few fresh tries);
3. compares **instants as instants** (``...02:00:00.000Z`` == ``...02:00:00Z`` ==
   ``...11:00:00+09:00``) and **identities normalised** (case and whitespace);
4. treats **"could not be sure"** (an error, a truncated or malformed answer, a candidate that
   cannot be told apart, two matches) as still ``unknown``: it raises :class:`ReadbackError`.

A provider's read-back is then a short declaration: a :class:`Listing` (where and how to page)
and a :func:`the_one` call (what a match is)::

    items = await read_all(sender, Listing("/bookings", params={...}, items="data"))
    return the_one(items, id_field="uid", instants={"startedAt": start}, same={"email": email})
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..mapping.paths import dig
from .sender import ReadbackError

__all__ = ["Listing", "ReadbackError", "instant", "norm", "read_all", "same_instant", "the_one", "utc_text"]

#: how often a listing whose total moved while it was paged through is read again from page 1
FRESH_TRIES = 3


@dataclass(frozen=True)
class Listing:
    """A paged list endpoint, as the provider documents it.

    ``items``/``total`` are the answer's keys (dotted for nested ones); ``page``/``size`` the query
    parameters; ``page_size`` what we ask for (the provider may answer with fewer a page: we go by
    ``totalCount``, not by a short page)."""

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    items: str = "data"
    total: str = "totalCount"
    page: str = "page"
    size: str = "perPage"
    page_size: int = 100
    first_page: int = 1
    max_items: int = 20_000


async def read_all(sender: Any, listing: Listing) -> list[dict[str, Any]]:
    """Every item of the listing, all pages. Raises :class:`ReadbackError` when the list cannot be read
    whole: an error answer (after the sender's retries), no item list, no total, a page that ends
    before the total is reached, or a total that keeps moving while we page (other writers)."""
    last_problem = ""
    for _ in range(FRESH_TRIES):
        try:
            return await _read_once(sender, listing)
        except _Moved as exc:
            last_problem = str(exc)
    raise ReadbackError(f"{listing.path}: {last_problem} on {FRESH_TRIES} reads in a row; cannot be sure")


class _Moved(Exception):
    """The list changed while it was paged through; reading it again may succeed."""


async def _read_once(sender: Any, listing: Listing) -> list[dict[str, Any]]:
    seen: dict[Any, dict[str, Any]] = {}
    total: int | None = None
    page = listing.first_page
    while True:
        params = {**listing.params, listing.page: page, listing.size: listing.page_size}
        data = await sender.get_json(listing.path, params=params)  # raises ReadbackError on an error answer
        items = dig(data, listing.items)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ReadbackError(f"{listing.path} answered without a list at {listing.items!r}")
        count = dig(data, listing.total)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ReadbackError(f"{listing.path} answered without a {listing.total!r}: "
                                f"cannot tell whether the list is whole")
        if total is None:
            total = count
            if total > listing.max_items:
                raise ReadbackError(f"{listing.path} lists {total} items in the window, more than the "
                                    f"{listing.max_items} a check reads; cannot be sure")
        elif count != total:
            raise _Moved(f"the total moved from {total} to {count} while paging")
        new = 0
        for item in items:
            key = _key(item)
            key = id(item) if key is None else key
            if key not in seen:
                seen[key] = item
                new += 1
        if len(seen) >= total:
            if len(seen) > total:
                raise _Moved(f"{len(seen)} items read for a total of {total}")
            return list(seen.values())
        if not items:
            raise ReadbackError(f"{listing.path} page {page} was empty after {len(seen)} of {total} items; "
                                f"cannot be sure the list was read whole")
        if not new:
            raise ReadbackError(f"{listing.path} page {page} repeated items already read (does it page as asked?); "
                                f"cannot be sure the list was read whole")
        page += 1


def _key(item: dict[str, Any]) -> Any:
    for k in ("uid", "id"):
        if item.get(k) is not None:
            return str(item[k])
    return None


def the_one(items: Iterable[dict[str, Any]], *, id_field: str, instants: Mapping[str, Any] | None = None,
            same: Mapping[str, Any] | None = None, exclude: Mapping[str, Iterable[Any]] | None = None,
            absent_is_other: Iterable[str] = (), what: str = "booking") -> str | None:
    """The id of the single item matching, or None when the (whole) list holds none.

    ``instants``: field -> the instant it must hold (compared as instants, any precision or offset);
    ``same``: field -> the identity it must hold (compared after :func:`norm`); ``exclude``: field ->
    values that rule an item out (e.g. ``{"status": ["cancel"]}``). An item that matches on everything
    it shows but lacks a field of ``same`` cannot be told apart from ours: unsure, so is a second match;
    except the fields in ``absent_is_other``, which every item of ours shows (a job reference we always
    send): an item without one is someone else's."""
    instants = {k: instant(v) for k, v in (instants or {}).items()}
    if any(v is None for v in instants.values()):
        raise ReadbackError("the row's own time could not be read; cannot look for it")
    same = {k: norm(v) for k, v in (same or {}).items()}
    excluded = {k: {norm(v) for v in vs} for k, vs in (exclude or {}).items()}
    others = set(absent_is_other)
    found: list[str] = []
    blind = 0
    for item in items:
        if any(norm(item.get(k)) in vs for k, vs in excluded.items()):
            continue
        if not all(same_instant(item.get(k), want) for k, want in instants.items()):
            continue
        if any(item.get(k) in (None, "") for k in others):
            continue
        shown = {k: v for k, v in same.items() if item.get(k) not in (None, "")}
        if any(norm(item.get(k)) != v for k, v in shown.items()):
            continue
        if len(shown) < len(same):
            blind += 1
            continue
        found.append(str(item.get(id_field)))
    if len(found) > 1:
        raise ReadbackError(f"{len(found)} {what}s match this row ({', '.join(found[:5])}); "
                            f"cannot tell which one it is: check them at the provider")
    if blind:
        missing = ", ".join(k for k in same)
        raise ReadbackError(f"{blind} {what}(s) at the same time show no {missing} to compare; cannot tell "
                            f"whether one is this row")
    return found[0] if found else None


def instant(value: Any) -> dt.datetime | None:
    """An ISO 8601 date-time in any precision (seconds, milli-, microseconds, nanoseconds truncated), with
    ``Z``, an offset, or none (taken as UTC) -> an aware datetime. None when unreadable."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*([Zz]|[+-]\d{2}:?\d{2})?", text)
    if m is None:
        return None
    date, clock, frac, zone = m.groups()
    if len(clock) == 5:
        clock += ":00"
    micro = (frac or "0")[:6].ljust(6, "0")
    if zone is None or zone in "Zz":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        when = dt.datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}")
    except ValueError:
        return None
    return when


def same_instant(a: Any, b: Any) -> bool:
    """Whether two date-times (text in any precision/offset, or datetimes) are the same instant.
    Unreadable is never the same."""
    x, y = instant(a), instant(b)
    return x is not None and y is not None and x == y


def norm(value: Any) -> str:
    """An identity as compared: text, whitespace collapsed and trimmed, case folded."""
    if value is None:
        return ""
    return " ".join(str(value).split()).casefold()


def utc_text(when: dt.datetime) -> str:
    """A UTC instant as filters are written: ``2026-03-16T02:00:00Z`` (seconds; a window's edges need no more)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
