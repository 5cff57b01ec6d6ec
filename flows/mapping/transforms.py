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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

__all__ = [
    "REGISTRY",
    "LookupTable",
    "TransformDoc",
    "TransformProblem",
    "build_transform",
    "closest",
    "format_problem",
    "is_iana_zone",
    "parse_date",
    "parse_datetime",
    "parse_time",
    "quoted",
    "read_number",
    "suggest_format",
    "time_forms",
    "to_text",
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
    value = value[:200]  # a megabyte-long cell must not cost difflib minutes
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
            raise TransformProblem(f"{quoted(to_text(v))} is not a valid e-mail address")
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


@_register("integer", "Turn text into a whole number. Bare: '45', '45.0', '-3', '1 500' and grouping that can only "
           "mean thousands ('12,345,678'); a decimal comma or a grouping that could be read two ways ('90,0', "
           "'1,500', '1.500') is a problem. {integer: ','} reads the sheet's decimal comma ('.' and spaces "
           "group thousands); {integer: '.'} reads a decimal point (',' and spaces group thousands).",
           [("'45'", "45"), ("'45.0'", "45"), ("'4.5'", "problem: is not a whole number"),
            ("'1,500'", "problem: could be 1500 or 1.5"), ("'1.500' with ','", "1500"), ("'90,0' with ','", "90")],
           param="optional: the sheet's decimal separator, ',' or '.'")
def _integer(decimal_sep: str | None = None) -> Fn:
    if decimal_sep not in (None, ",", "."):
        raise ValueError(f"the decimal separator is ',' or '.', not {decimal_sep!r}")

    def integer(v: Value) -> Value:
        if v is None or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        text = to_text(v).strip()
        if decimal_sep is not None:
            d = read_number(text, decimal_sep)
            if d is None:
                raise TransformProblem(f"{quoted(text)} is not a whole number")
        else:
            point, comma = read_number(text, "."), read_number(text, ",")
            if point is None and comma is not None and "," not in text:
                point = comma  # 1.234.567: dots that can only group thousands
            if point is None and comma is not None:
                raise TransformProblem(
                    f"{quoted(text)} has a decimal comma; if the sheet writes decimals with a comma, "
                    f"write the transform as {{integer: ','}} in the mapping, else type the number without it")
            if point is not None and comma is not None and point != comma:
                raise TransformProblem(
                    f"{quoted(text)} could be {_plain(point)} or {_plain(comma)}; say which separator the sheet uses "
                    f"with {{integer: '.'}} (decimal point) or {{integer: ','}} (decimal comma) in the mapping, "
                    f"or type the number without grouping")
            d = point
            if d is None:
                raise TransformProblem(f"{quoted(text)} is not a whole number")
        if not d.is_finite() or d != d.to_integral_value():
            raise TransformProblem(f"{quoted(text)} is not a whole number")
        return int(d)

    return integer


_GROUP_SPACES = "\u00a0\u202f "


def read_number(text: str, decimal_sep: str) -> decimal.Decimal | None:
    """``text`` as a number whose decimal separator is ``decimal_sep``; thousands may be grouped with
    the other of ',' / '.' or with spaces, in groups of three. None if it is not such a number."""
    group = "." if decimal_sep == "," else ","
    m = re.fullmatch(r"([+-]?)(\d+(?:[" + re.escape(group) + _GROUP_SPACES + r"]\d{3})*)(?:"
                     + re.escape(decimal_sep) + r"(\d*))?", text)
    if not m:
        return None
    whole = re.sub(r"\D", "", m.group(2))
    first = re.split(r"[" + re.escape(group) + _GROUP_SPACES + r"]", m.group(2))[0]
    if len(first) > 3 and whole != m.group(2):  # 1234,567: not a thousands grouping
        return None
    frac = m.group(3) or ""
    try:  # Decimal, not float: long numbers (ids, phone-like codes) keep every digit
        return decimal.Decimal(f"{m.group(1)}{whole}.{frac}0")
    except decimal.InvalidOperation:
        return None


def _plain(d: decimal.Decimal) -> str:
    return format(d.normalize(), "f") if d != d.to_integral_value() else str(int(d))


def quoted(text: object, limit: int = 60) -> str:
    """A cell value quoted in a message: repr (control characters escaped), capped at ``limit`` characters."""
    s = str(text)
    if len(s) > limit:
        return repr(s[:limit]) + f"… ({len(s) - limit:,} more characters)"
    return repr(s)


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
            raise TransformProblem(f"{quoted(text)} is not one of: {allowed}{hint}")
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
            raise TransformProblem(f"{quoted(text)} is not in the provider's {self.name} list{hint}")
        if len(hits) > 1:
            raise TransformProblem(f"{quoted(text)} matches {len(hits)} entries of the provider's {self.name} list "
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
    near = closest(text[:100], sorted(_ZONES or ()))
    hint = f" (closest: {', '.join(near)})" if near else ""
    return f"{quoted(text)} is not an IANA time zone such as Europe/London{hint}"


@_register("date", "Parse a date with an explicit strftime format and write it as ISO (YYYY-MM-DD). "
           "Real Excel date cells are taken as they are. The text must have exactly the format's form "
           "(day and month may drop a leading zero; %Y is four digits); a format with no % directives "
           "('dd/mm/yyyy') is refused when the mapping loads, naming the likely intended one.",
           [("'21/11/2026' with '%d/%m/%Y'", "'2026-11-21'"), ("'31/02/2026'", "problem: is not a date in the form 31/12/2026")],
           param="the strftime format, e.g. '%d/%m/%Y'")
def _date(fmt: str) -> Fn:
    problem = format_problem(fmt, "date")
    if problem:
        raise ValueError(problem)

    def date(v: Value) -> Value:
        if v is None:
            return v
        return parse_date(v, fmt).isoformat()

    return date


def _example(fmt: str) -> str:
    return dt.datetime(2026, 12, 31, 17, 45).strftime(fmt)


# --- strict formats ------------------------------------------------------------------------------
# strptime is lenient: '%H:%M' takes '9:3' as 09:03 and '%Y' two-digit years in some forms. Text is
# first matched against a strict pattern made from the format (minutes and seconds are always two
# digits, day/month/hour may drop a leading zero, %Y has four digits), then parsed by strptime.

_DIRECTIVES = {
    "d": r"0?[1-9]|[12]\d|3[01]", "m": r"0?[1-9]|1[0-2]", "Y": r"\d{4}", "y": r"\d{2}",
    "H": r"[01]?\d|2[0-3]", "I": r"0?[1-9]|1[0-2]", "M": r"[0-5]\d", "S": r"[0-5]\d",
    "p": r"[AaPp]\.?[Mm]\.?", "b": r"[A-Za-z]{3}\.?", "B": r"[A-Za-z]+", "a": r"[A-Za-z]{3}\.?",
    "A": r"[A-Za-z]+", "f": r"\d{1,6}", "j": r"\d{1,3}", "%": "%",
}
_AMPM = re.compile(r"([AaPp])\.?\s*[Mm]\.?")


@functools.lru_cache(maxsize=256)
def _strict(fmt: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            d = fmt[i + 1]
            if d == "p":
                out.append(r"\s*")
            out.append(f"(?:{_DIRECTIVES.get(d, '.+?')})")
            i += 2
        elif ch.isspace():
            out.append(r"\s+")
            i += 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out).replace(r"\s+\s*", r"\s*"))


def strict_parse(text: str, fmt: str) -> dt.datetime:
    """``text`` read with ``fmt``, strictly (see above); ValueError if it does not have that form."""
    if not _strict(fmt).fullmatch(text):
        raise ValueError(text)
    if "%p" in fmt:
        text = _AMPM.sub(lambda m: m.group(1).upper() + "M", text)
    return dt.datetime.strptime(" ".join(text.split()) if " " in fmt else text, " ".join(fmt.split()) if " " in fmt else fmt)


_TOKEN = re.compile(r"(AM/PM|am/pm|A/P|a/p|y+|Y+|d+|D+|m+|M+|h+|H+|s+|S+|tt|TT)")


def suggest_format(fmt: str) -> str | None:
    """The strftime format someone who wrote ``fmt`` (Excel/Java style: dd/mm/yyyy hh:mm) most likely meant."""
    twelve = bool(re.search(r"AM/PM|am/pm|A/P|a/p|tt|TT", fmt))
    pieces = _TOKEN.split(fmt)
    kinds = [p[0].lower() if i % 2 else "" for i, p in enumerate(pieces)]
    out: list[str] = []
    changed = False
    for i, piece in enumerate(pieces):
        if i % 2 == 0:
            out.append(piece.replace("%", "%%"))
            continue
        changed = True
        k, n = piece[0].lower(), len(piece)
        if piece.lower() in ("am/pm", "a/p", "tt"):
            out.append("%p")
        elif k == "y":
            out.append("%Y" if n >= 3 else "%y")
        elif k == "d":
            out.append({3: "%a", 4: "%A"}.get(n, "%d"))
        elif k == "h":
            out.append("%I" if twelve else "%H")
        elif k == "s":
            out.append("%S")
        elif k == "m":
            before = next((kinds[j] for j in range(i - 2, 0, -2)), "")
            after = next((kinds[j] for j in range(i + 2, len(pieces), 2)), "")
            minutes = (before == "h" or after == "s") and n <= 2  # Excel's rule: m after h, or before s
            out.append("%M" if minutes else {3: "%b", 4: "%B"}.get(n, "%m"))
    return "".join(out) if changed else None


def format_problem(fmt: Any, need: str) -> str | None:
    """Why ``fmt`` cannot be the format of a ``need`` ("date", "time", "datetime" or "output") value,
    or None. Run when a mapping loads, so a format mistake is not blamed on every row of the sheet."""
    if not isinstance(fmt, str) or not fmt.strip():
        return "the format must be a strftime text such as '%d/%m/%Y'"
    directives = re.findall(r"%(.)", fmt.replace("%%", ""))
    if not directives:
        near = suggest_format(fmt)
        hint = f"; did you mean {near!r}?" if near else " (e.g. '%d/%m/%Y' or '%H:%M')"
        return f"format {fmt!r} has no % directives, so no sheet value could ever match it{hint}"
    leftover = re.sub(r"%.", "", fmt)
    stray = re.search(r"(?i)yyyy|yy|dd|mm|hh|ss", leftover)
    if stray:
        near = suggest_format(re.sub(r"%(.)", lambda m: {"d": "dd", "m": "MM", "Y": "yyyy", "y": "yy", "H": "HH",
                                                           "M": "mm", "S": "ss"}.get(m.group(1), m.group(0)), fmt))
        hint = f"; did you mean {near!r}?" if near else ""
        return f"format {fmt!r} mixes % directives with {stray.group(0)!r}, which is matched literally{hint}"
    if need == "output":
        return None
    unknown = sorted({d for d in directives if d not in _DIRECTIVES})
    if unknown:
        return (f"format {fmt!r} uses {', '.join('%' + d for d in unknown)}, which sheet values are not read with; "
                f"use %d %m %Y %y %b %B %H %I %M %S %p")
    has = set(directives)
    if need in ("date", "datetime") and not ({"d", "j"} & has and ({"m", "b", "B"} & has or "j" in has) and {"Y", "y"} & has):
        return f"format {fmt!r} lacks a day, month or year (%d, %m, %Y); a date format needs all three, e.g. '%d/%m/%Y'"
    if need in ("time", "datetime"):
        if not ({"H", "I"} & has and "M" in has):
            return (f"format {fmt!r} has no time (%H:%M); give the time column with `time:` or put the time in the "
                    f"format, e.g. {fmt + ' %H:%M'!r}" if need == "datetime" else
                    f"time format {fmt!r} needs an hour and minutes, e.g. '%H:%M' or '%I:%M %p'")
        if ("I" in has) != ("p" in has):
            return (f"format {fmt!r} mixes 12- and 24-hour directives: %I (12-hour) needs %p (AM/PM) and %p needs %I; "
                    f"use '%H:%M' (24-hour) or '%I:%M %p' (12-hour)")
    return None


@functools.lru_cache(maxsize=65536)  # sheets repeat dates and times; strptime costs ~8 µs a call
def parse_date(v: Value, fmt: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    text = to_text(v).strip()
    try:
        return strict_parse(text, fmt).date()
    except ValueError:
        raise TransformProblem(f"{quoted(text)} is not a date in the form {_example(fmt)}") from None


def parse_datetime(v: Value, fmt: str) -> dt.datetime:
    """A date and time from one cell: an Excel date-time cell as it is, else text in ``fmt`` (strictly)."""
    if isinstance(v, dt.datetime):
        return v
    if isinstance(v, dt.date):
        raise TransformProblem(
            f"{v.isoformat()} is a date without a time (an Excel date cell); this column needs a date and a time, "
            f"e.g. {_example(fmt)}: format the cell to show the time, or type it")
    text = to_text(v).strip()
    try:
        return strict_parse(text, fmt)
    except ValueError:
        raise TransformProblem(f"{quoted(text)} is not a date and time in the form {_example(fmt)}") from None


# --- times: a closed list of forms --------------------------------------------------------------
#
# 24-hour column (time_format '%H:%M', the default, '%H:%M:%S' or '%H.%M'):
#     17:45   7:45   17:45:30   17.45 (two-digit minutes)   5:45 PM   5:45PM   5:45 p.m.   5:45:30 PM
# 12-hour column (time_format with %I and %p, e.g. '%I:%M %p'):
#     5:45 PM   5:45PM   5:45 pm   5:45 p.m.   5:45:30 PM   and 24-hour text past noon (13:00-23:59)
# Any other time_format: exactly that form, strictly (see strict_parse).
# Excel time cells (and date-times, whose time part is taken) are accepted in every column.
# Refused, as they could mean two times: 9.3 / 10.5 (a time typed as a number in a General cell
# loses its trailing zero: 09:03 or 09:30?); 3:00 (or 12:30) in a 12-hour column (AM or PM?).

TIME_FORMS_24 = ("17:45", "7:45", "17:45:30", "17.45", "5:45 PM", "5:45:30 PM")
TIME_FORMS_12 = ("5:45 PM", "5:45PM", "5:45 p.m.", "5:45:30 PM", "17:45")
_STANDARD_24 = ("%H:%M", "%H:%M:%S", "%H.%M")
_T12 = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp])\.?\s*[Mm]\.?")
_T24 = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_TDOT = re.compile(r"(\d{1,2})\.(\d{1,2})")


def is_twelve_hour(time_format: str) -> bool:
    return "%I" in time_format or "%p" in time_format


def time_forms(time_format: str) -> tuple[str, ...]:
    """The forms a time column with this ``time_format`` accepts, as examples (for messages and docs)."""
    if is_twelve_hour(time_format):
        return TIME_FORMS_12
    if time_format in _STANDARD_24:
        return TIME_FORMS_24
    return (_example(time_format),)


@functools.lru_cache(maxsize=4096)
def parse_time(v: Value, time_format: str = "%H:%M") -> dt.time:
    if isinstance(v, dt.time):
        return v
    if isinstance(v, dt.datetime):
        return v.time()
    text = to_text(v).strip()
    twelve = is_twelve_hour(time_format)
    forms = time_forms(time_format)
    bad = TransformProblem(f"{quoted(text)} is not a time in the form {forms[0]}"
                           + (f"; accepted forms: {', '.join(forms)}, or an Excel time cell" if len(forms) > 1 else ""))
    if not twelve and time_format not in _STANDARD_24:
        try:
            return strict_parse(text, time_format).time()
        except ValueError:
            raise bad from None
    m = _T12.fullmatch(text)
    if m:
        h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if not 1 <= h <= 12 or mi > 59 or sec > 59:
            raise bad
        h = h % 12 + (12 if m.group(4) in "Pp" else 0)
        return dt.time(h, mi, sec)
    m = _T24.fullmatch(text)
    if m:
        h, mi, sec = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if h > 23 or mi > 59 or sec > 59:
            raise bad
        if twelve and 1 <= h <= 12:
            raise TransformProblem(f"{quoted(text)} has no AM or PM, and this column is 12-hour: "
                                   f"type {text} AM or {text} PM")
        return dt.time(h, mi, sec)
    m = _TDOT.fullmatch(text)
    if m:
        h, mins = int(m.group(1)), m.group(2)
        if len(mins) == 1 and h <= 23:
            raise TransformProblem(
                f"{quoted(text)} could be {h:02d}:0{mins} or {h:02d}:{mins}0 (a time typed as a number loses its "
                f"trailing zero): type it with a colon, as {h:02d}:{mins}0, or format the column as Time in Excel")
        if h > 23 or int(mins) > 59:
            raise bad
        if twelve and 1 <= h <= 12:
            raise TransformProblem(f"{quoted(text)} has no AM or PM, and this column is 12-hour: "
                                   f"type {h}:{mins} AM or {h}:{mins} PM")
        return dt.time(h, int(mins))
    raise bad


def build_transform(spec: Any, tables: dict[str, LookupTable] | None = None) -> tuple[str, Fn]:
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
    if doc.param and not args and not doc.param.startswith("optional"):
        raise ValueError(f"transform {name!r} needs a parameter ({doc.param}), e.g. {{{name}: ...}}")
    if not doc.param and args:
        raise ValueError(f"transform {name!r} takes no parameter; write it as a bare name")
    try:
        if name == "remote_lookup":
            return name, doc.factory(*args, tables=tables)
        return name, doc.factory(*args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"transform {name!r}: {exc}") from None
