"""Named single-value transforms used by mapping files.

A transform takes one value (text, a date/time from an Excel cell, or ``None`` for an empty
cell) and returns the new value, or raises :class:`TransformProblem` with a message that says
what is wrong with *this cell*. Empty values (``None``) pass through every transform except
``default``: emptiness is decided by the field (``required`` / ``when_empty``).

In a mapping file a transform is written either as its bare name or as a one-key mapping
with its parameter::

    transforms: [trim, lower, email, {max_length: 64}, {lookup: {"In person": inPerson}}]

Every transform below documents itself with In/Out examples; ``booking-import transforms``
prints them and the README lists them (a test keeps that list complete).
No expression strings, no eval: the set is closed and checked when the mapping loads.
"""
from __future__ import annotations

import datetime as dt
import decimal
import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable
from zoneinfo import ZoneInfo, available_timezones

__all__ = [
    "TransformProblem",
    "TransformDoc",
    "REGISTRY",
    "build_transform",
    "is_iana_zone",
    "closest",
    "to_text",
    "LookupTable",
]

Value = Any
Fn = Callable[[Value], Value]


class TransformProblem(ValueError):
    """A cell's value cannot be transformed; the message is shown next to the column."""


@dataclass(frozen=True)
class TransformDoc:
    name: str
    param: str | None  # what the parameter is, or None for a bare name
    summary: str
    examples: tuple[tuple[str, str], ...]  # (In, Out) as shown to users
    factory: Callable[..., Fn]


REGISTRY: dict[str, TransformDoc] = {}


def _register(name: str, summary: str, examples: list[tuple[str, str]], param: str | None = None):
    def deco(factory: Callable[..., Fn]) -> Callable[..., Fn]:
        REGISTRY[name] = TransformDoc(name, param, summary, tuple(examples), factory)
        return factory

    return deco


def to_text(value: Value) -> str | None:
    """The text form of a cell: dates as ISO, everything else ``str``; empty -> None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def closest(value: str, choices: list[str] | tuple[str, ...] | set[str], n: int = 3) -> list[str]:
    """Up to ``n`` choices that look like ``value`` (case-insensitive)."""
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(value.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


# --- text -------------------------------------------------------------------------------


@_register("trim", "Remove spaces at both ends (also non-breaking spaces); an all-space cell becomes empty.",
           [("'  Ann Lee '", "'Ann Lee'"), ("'   '", "(empty)")])
def _trim() -> Fn:
    def trim(v: Value) -> Value:
        if v.__class__ is str:
            return v.strip() or None  # str.strip() also removes non-breaking and other Unicode spaces
        return v

    return trim


@_register("collapse_spaces", "Replace runs of white space inside the text with one space.",
           [("'Ann   Lee'", "'Ann Lee'")])
def _collapse() -> Fn:
    ws = re.compile(r"\s+")

    def collapse_spaces(v: Value) -> Value:
        return ws.sub(" ", v) if isinstance(v, str) else v

    return collapse_spaces


@_register("lower", "Lower-case the text.", [("'Ann@Example.COM'", "'ann@example.com'")])
def _lower() -> Fn:
    return lambda v: v.lower() if isinstance(v, str) else v


@_register("upper", "Upper-case the text.", [("'gb'", "'GB'")])
def _upper() -> Fn:
    return lambda v: v.upper() if isinstance(v, str) else v


@_register("default", "Use this value when the cell is empty.", [("(empty)", "'Europe/London'"), ("'Asia/Tokyo'", "'Asia/Tokyo'")],
           param="the value to use")
def _default(value: Any) -> Fn:
    def default(v: Value) -> Value:
        return value if v is None or v == "" else v

    return default


def _whole_number(n: Any) -> int:
    """A transform's N parameter; ValueError with a readable message otherwise."""
    try:
        value = int(str(n).strip())
    except ValueError:
        raise ValueError(f"N must be a whole number, not {n!r}") from None
    if value < 0 or isinstance(n, bool):
        raise ValueError(f"N must be a whole number of 0 or more, not {n!r}")
    return value


@_register("max_length", "Reject text longer than N characters (the row becomes invalid).",
           [("'Ann' with 3", "'Ann'"), ("'Annabelle' with 3", "problem: is 9 characters long; at most 3 are allowed")],
           param="N, a whole number")
def _max_length(n: int) -> Fn:
    n = _whole_number(n)

    def max_length(v: Value) -> Value:
        if isinstance(v, str) and len(v) > n:
            raise TransformProblem(f"is {len(v)} characters long; at most {n} are allowed")
        return v

    return max_length


@_register("truncate", "Cut text to at most N characters (no problem reported).",
           [("'Annabelle' with 3", "'Ann'")], param="N, a whole number")
def _truncate(n: int) -> Fn:
    n = _whole_number(n)
    return lambda v: v[:n] if isinstance(v, str) else v


_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


@_register("email", "Check the text is an e-mail address (name@domain.tld).",
           [("'ann@example.com'", "'ann@example.com'"), ("'ann@'", "problem: is not a valid e-mail address")])
def _email() -> Fn:
    def email(v: Value) -> Value:
        if v is None:
            return v
        if not isinstance(v, str) or not _EMAIL.match(v):
            raise TransformProblem(f"{to_text(v)!r} is not a valid e-mail address")
        return v

    return email


@_register("digits", "Keep only the digits (and a leading +).", [("'07700 900-123'", "'07700900123'"), ("'+44 7700'", "'+447700'")])
def _digits() -> Fn:
    def digits(v: Value) -> Value:
        if not isinstance(v, str):
            return v
        plus = v.strip().startswith("+")
        out = "".join(ch for ch in v if ch.isdigit())
        return ("+" + out if plus and out else out) or None

    return digits


@_register("integer", "Turn text into a whole number.", [("'45'", "45"), ("'45.0'", "45"), ("'4.5'", "problem: is not a whole number")])
def _integer() -> Fn:
    def integer(v: Value) -> Value:
        if v is None or isinstance(v, int):
            return v
        text = to_text(v).strip().replace(",", "")
        try:  # Decimal, not float: long numbers (ids, phone-like codes) keep every digit
            d = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise TransformProblem(f"{text!r} is not a whole number") from None
        if not d.is_finite() or d != d.to_integral_value():
            raise TransformProblem(f"{text!r} is not a whole number")
        return int(d)

    return integer


@dataclass(frozen=True)
class _LookupParam:
    table: dict[str, Any]


@_register("lookup", "Translate sheet values to provider values with a table (case and surrounding spaces ignored); "
           "a value not in the table makes the row invalid and names the closest entries.",
           [("'In person' with {In person: inPerson}", "'inPerson'"), ("'Massage'", "problem: 'Massage' is not one of: ...")],
           param="a table of sheet value: provider value")
def _lookup(table: dict[str, Any]) -> Fn:
    if not isinstance(table, dict) or not table:
        raise ValueError("lookup needs a non-empty table of `sheet value: provider value`")
    folded = {str(k).strip().casefold(): val for k, val in table.items()}
    keys = [str(k) for k in table]

    def lookup(v: Value) -> Value:
        if v is None:
            return v
        text = to_text(v)
        hit = folded.get(text.strip().casefold(), _MISSING)
        if hit is _MISSING:
            near = closest(text, keys)
            hint = f" (closest: {', '.join(near)})" if near else ""
            allowed = ", ".join(keys) if len(keys) <= 12 else ", ".join(keys[:12]) + ", ..."
            raise TransformProblem(f"{text!r} is not one of: {allowed}{hint}")
        return hit

    return lookup


_MISSING = object()


class LookupTable:
    """Names -> provider values fetched from a provider list (see the mapping's ``lookups:``)."""

    def __init__(self, name: str, pairs: list[tuple[str, Any]]) -> None:
        self.name = name
        self.names: list[str] = []
        self.by_name: dict[str, list[Any]] = {}
        for label, value in pairs:
            if label is None:
                continue
            label = str(label)
            folded = label.strip().casefold()
            if folded not in self.by_name:
                self.names.append(label.strip())
            values = self.by_name.setdefault(folded, [])
            if value not in values:
                values.append(value)

    def resolve(self, text: str) -> Any:
        hits = self.by_name.get(text.strip().casefold())
        if not hits:
            near = closest(text, self.names)
            hint = f"; closest: {', '.join(near)}" if near else ""
            raise TransformProblem(f"{text!r} is not in the provider's {self.name} list{hint}")
        if len(hits) > 1:
            raise TransformProblem(f"{text!r} matches {len(hits)} entries of the provider's {self.name} list "
                                   f"({', '.join(map(str, hits[:5]))}); make the name unique at the provider or use the id")
        return hits[0]


@_register("remote_lookup", "Translate a name to a provider id with a list fetched from the provider once per run "
           "(declared under lookups:); matching ignores case and surrounding spaces; an unknown or ambiguous name "
           "makes the row invalid and names the closest known names. Offline commands (validate, render) leave the name as it is.",
           [("'Boiler Service' with job_types", "1042"),
            ("'Boiler Servise' with job_types", "problem: is not in the provider's job_types list; closest: Boiler Service")],
           param="the name of a lookup declared under lookups:")
def _remote_lookup(name: str, tables: dict[str, LookupTable] | None = None) -> Fn:
    if not isinstance(name, str) or not name:
        raise ValueError("remote_lookup needs the name of a lookup declared under lookups:")
    if tables is None:  # offline: nothing to resolve against
        return lambda v: v
    table = tables[name]

    def remote_lookup(v: Value) -> Value:
        if v is None:
            return v
        return table.resolve(to_text(v))

    return remote_lookup


# --- dates, times, zones -------------------------------------------------------------------

_ZONES: frozenset[str] | None = None


def is_iana_zone(name: str) -> bool:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return name in _ZONES


@_register("iana_zone", "Check the text is an IANA time zone name.",
           [("'Europe/London'", "'Europe/London'"), ("'Mars/Olympus'", "problem: is not an IANA time zone")])
def _iana_zone() -> Fn:
    def iana_zone(v: Value) -> Value:
        if v is None:
            return v
        if not isinstance(v, str) or not is_iana_zone(v):
            raise TransformProblem(zone_problem(to_text(v)))
        return v

    return iana_zone


def zone_problem(text: str) -> str:
    """The message for a value that is not an IANA zone, with the closest names."""
    is_iana_zone("UTC")  # loads the zone list
    near = closest(text, sorted(_ZONES or ()))
    hint = f" (closest: {', '.join(near)})" if near else ""
    return f"{text!r} is not an IANA time zone such as Europe/London{hint}"


@_register("date", "Parse a date with an explicit strftime format and write it as ISO (YYYY-MM-DD). "
           "Real Excel date cells are taken as they are.",
           [("'21/11/2026' with '%d/%m/%Y'", "'2026-11-21'"), ("'31/02/2026'", "problem: is not a date in the form 31/12/2026")],
           param="the strftime format, e.g. '%d/%m/%Y'")
def _date(fmt: str) -> Fn:
    def date(v: Value) -> Value:
        if v is None:
            return v
        return parse_date(v, fmt).isoformat()

    return date


def _example(fmt: str) -> str:
    return dt.datetime(2026, 12, 31, 17, 45).strftime(fmt)


@functools.lru_cache(maxsize=65536)  # sheets repeat dates and times; strptime costs ~8 µs a call
def parse_date(v: Value, fmt: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    text = to_text(v).strip()
    try:
        return dt.datetime.strptime(text, fmt).date()
    except ValueError:
        raise TransformProblem(f"{text!r} is not a date in the form {_example(fmt)}") from None


@functools.lru_cache(maxsize=4096)
def parse_time(v: Value, fmts: tuple[str, ...]) -> dt.time:
    if isinstance(v, dt.time):
        return v
    if isinstance(v, dt.datetime):
        return v.time()
    text = to_text(v).strip()
    for fmt in fmts:
        try:
            return dt.datetime.strptime(text, fmt).time()
        except ValueError:
            continue
    raise TransformProblem(f"{text!r} is not a time in the form {_example(fmts[0])}")


def build_transform(spec: Any, tables: "dict[str, LookupTable] | None" = None) -> tuple[str, Fn]:
    """Turn ``'trim'`` or ``{'max_length': 64}`` into (name, function). Raises ValueError.

    ``tables`` are the run's fetched lookup tables, for ``remote_lookup`` (None when offline)."""
    if isinstance(spec, str):
        name, args = spec, ()
    elif isinstance(spec, dict) and len(spec) == 1:
        name, arg = next(iter(spec.items()))
        args = (arg,)
    else:
        raise ValueError(f"a transform is a name or a one-key mapping like {{max_length: 64}}, not {spec!r}")
    doc = REGISTRY.get(name)
    if doc is None:
        near = closest(str(name), list(REGISTRY))
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown transform {name!r}{hint} (known: {', '.join(sorted(REGISTRY))})")
    if doc.param and not args:
        raise ValueError(f"transform {name!r} needs a parameter ({doc.param}), e.g. {{{name}: ...}}")
    if not doc.param and args:
        raise ValueError(f"transform {name!r} takes no parameter; write it as a bare name")
    try:
        if name == "remote_lookup":
            return name, doc.factory(*args, tables=tables)
        return name, doc.factory(*args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"transform {name!r}: {exc}") from None
