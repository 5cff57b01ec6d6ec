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

import decimal
import re
from typing import Any

from .datetimes import (
    format_problem,
    is_iana_zone,
    parse_date,
    parse_datetime,
    parse_time,
    suggest_format,
    time_forms,
)
from .registry import (
    REGISTRY,
    Fn,
    TransformDoc,
    TransformProblem,
    Value,
    cell_text,
    closest,
    quoted,
    register,
    to_text,
)

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

# --- text -------------------------------------------------------------------------------


@register("trim", "Remove spaces at both ends (also non-breaking spaces); an all-space cell becomes empty.",
           [("'  Ann Lee '", "'Ann Lee'"), ("'   '", "(empty)")])
def _trim() -> Fn:
    def trim(v: Value) -> Value:
        if v.__class__ is str:
            return v.strip() or None  # str.strip() also removes non-breaking and other Unicode spaces
        return v

    return trim


@register("collapse_spaces", "Replace runs of white space inside the text with one space.",
           [("'Ann   Lee'", "'Ann Lee'")])
def _collapse() -> Fn:
    ws = re.compile(r"\s+")

    def collapse_spaces(v: Value) -> Value:
        if not isinstance(v, str):
            return v
        out = ws.sub(" ", v)
        return v if v.__class__ is str and out == v else out  # unchanged: the cell's own str, not a copy a row

    return collapse_spaces


@register("lower", "Lower-case the text.", [("'Ann@Example.COM'", "'ann@example.com'")])
def _lower() -> Fn:
    def lower(v: Value) -> Value:
        if not isinstance(v, str):
            return v
        out = v.lower()
        return v if v.__class__ is str and out == v else out  # unchanged: the cell's own str, not a copy a row

    return lower


@register("upper", "Upper-case the text.", [("'gb'", "'GB'")])
def _upper() -> Fn:
    return lambda v: v.upper() if isinstance(v, str) else v


@register("default", "Use this value when the cell is empty.",
          [("(empty)", "'Europe/London'"), ("'Asia/Tokyo'", "'Asia/Tokyo'")], param="the value to use")
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


@register("max_length", "Reject text longer than N characters (the row becomes invalid).",
           [("'Ann' with 3", "'Ann'"), ("'Annabelle' with 3", "problem: is 9 characters long; at most 3 are allowed")],
           param="N, a whole number")
def _max_length(n: int) -> Fn:
    n = _whole_number(n)

    def max_length(v: Value) -> Value:
        if isinstance(v, str) and len(v) > n:
            raise TransformProblem(f"is {len(v)} characters long; at most {n} are allowed")
        return v

    return max_length


@register("truncate", "Cut text to at most N characters (no problem reported).",
           [("'Annabelle' with 3", "'Ann'")], param="N, a whole number")
def _truncate(n: int) -> Fn:
    n = _whole_number(n)
    return lambda v: v[:n] if isinstance(v, str) else v


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # one part of a domain name
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _LABEL + r"(?:\." + _LABEL + r")+$")


@register("email", "Check the text is an e-mail address (name@domain.tld).",
           [("'ann@example.com'", "'ann@example.com'"), ("'ann@'", "problem: is not a valid e-mail address")])
def _email() -> Fn:
    def email(v: Value) -> Value:
        if v is None:
            return v
        if not isinstance(v, str) or not _EMAIL.match(v):
            raise TransformProblem(f"{quoted(to_text(v))} is not a valid e-mail address")
        return v

    return email


@register("digits", "Keep only the digits (and a leading +).",
          [("'07700 900-123'", "'07700900123'"), ("'+44 7700'", "'+447700'")])
def _digits() -> Fn:
    def digits(v: Value) -> Value:
        if not isinstance(v, str):
            return v
        plus = v.strip().startswith("+")
        out = "".join(ch for ch in v if ch.isdigit())
        return ("+" + out if plus and out else out) or None

    return digits


@register("integer", "Turn text into a whole number. Bare: '45', '45.0', '-3', '1 500' and grouping that can only "
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
        text = cell_text(v).strip()
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



@register("lookup", "Translate sheet values to provider values with a table (case and surrounding spaces ignored); "
           "a value not in the table makes the row invalid and names the closest entries.",
           [("'In person' with {In person: inPerson}", "'inPerson'"), ("'Massage'", "problem: 'Massage' is not one of: "
                                                                                    "...")],
           param="a table of sheet value: provider value")
def _lookup(table: dict[str, Any]) -> Fn:
    if not isinstance(table, dict) or not table:
        raise ValueError("lookup needs a non-empty table of `sheet value: provider value`")
    folded = {str(k).strip().casefold(): val for k, val in table.items()}
    keys = [str(k) for k in table]

    def lookup(v: Value) -> Value:
        if v is None:
            return v
        text = cell_text(v)
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
                                   f"({', '.join(map(str, hits[:5]))}); make the name unique at the provider or use "
                                   "the id")
        return hits[0]


@register("remote_lookup", "Translate a name to a provider id with a list fetched from the provider once per run "
           "(declared under lookups:); matching ignores case and surrounding spaces; an unknown or ambiguous name "
           "makes the row invalid and names the closest known names. Offline commands (validate, render) leave the "
           "name as it is.",
           [("'Boiler Service' with job_types", "1042"),
            ("'Boiler Servise' with job_types", "problem: is not in the provider's job_types list; closest: Boiler "
                                                "Service")],
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
        return table.resolve(cell_text(v))

    return remote_lookup



def build_transform(spec: Any, tables: dict[str, LookupTable] | None = None) -> tuple[str, Fn]:
    """Turn ``'trim'`` or ``{'max_length': 64}`` into (name, function). Raises ValueError.

    ``tables`` are the run's fetched lookup tables, for ``remote_lookup`` (None when offline)."""
    args: tuple[Any, ...]
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
