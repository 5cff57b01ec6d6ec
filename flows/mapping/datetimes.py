"""Dates, times and time zones: the ``date`` and ``iana_zone`` transforms, strict strftime formats
(checked when a mapping loads, with the likely intended format for an Excel-style one), and the
parsers a mapping's ``datetime`` fields read cells with."""
from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Any
from zoneinfo import available_timezones

from .registry import Fn, TransformProblem, Value, cell_text, closest, quoted, register

__all__ = [
    "TIME_FORMS_12",
    "TIME_FORMS_24",
    "format_problem",
    "is_iana_zone",
    "is_twelve_hour",
    "parse_date",
    "parse_datetime",
    "parse_time",
    "strict_parse",
    "suggest_format",
    "time_forms",
    "zone_problem",
]

# --- dates, times, zones -------------------------------------------------------------------

_ZONES: frozenset[str] | None = None


def is_iana_zone(name: str) -> bool:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return name in _ZONES


@register("iana_zone", "Check the text is an IANA time zone name.",
           [("'Europe/London'", "'Europe/London'"), ("'Mars/Olympus'", "problem: is not an IANA time zone")])
def _iana_zone() -> Fn:
    def iana_zone(v: Value) -> Value:
        if v is None:
            return v
        if not isinstance(v, str) or not is_iana_zone(v):
            raise TransformProblem(zone_problem(cell_text(v)))
        return v

    return iana_zone


def zone_problem(text: str) -> str:
    """The message for a value that is not an IANA zone, with the closest names."""
    is_iana_zone("UTC")  # loads the zone list
    near = closest(text[:100], sorted(_ZONES or ()))
    hint = f" (closest: {', '.join(near)})" if near else ""
    return f"{quoted(text)} is not an IANA time zone such as Europe/London{hint}"


@register("date", "Parse a date with an explicit strftime format and write it as ISO (YYYY-MM-DD). "
           "Real Excel date cells are taken as they are. The text must have exactly the format's form "
           "(day and month may drop a leading zero; %Y is four digits); a format with no % directives "
           "('dd/mm/yyyy') is refused when the mapping loads, naming the likely intended one.",
           [("'21/11/2026' with '%d/%m/%Y'", "'2026-11-21'"), ("'31/02/2026'", "problem: is not a date in the form "
                                                                               "31/12/2026")],
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
    if " " in fmt:
        text, fmt = " ".join(text.split()), " ".join(fmt.split())
    return dt.datetime.strptime(text, fmt)


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
    has_date = {"d", "j"} & has and ({"m", "b", "B"} & has or "j" in has) and {"Y", "y"} & has
    if need in ("date", "datetime") and not has_date:
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
    text = cell_text(v).strip()
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
    text = cell_text(v).strip()
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
    text = cell_text(v).strip()
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
