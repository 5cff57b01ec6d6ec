"""Compiling a mapping against a sheet: :func:`compile_mapping` checks the sheet has every column the
mapping names and returns a :class:`RowMapper` that turns one row of cells into a payload plus the
list of its problems, each naming its sheet column."""
from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..errors import InputError
from .datetimes import is_iana_zone, parse_date, parse_datetime, parse_time, zone_problem
from .fields import PLACEHOLDER, DateTimeSource, FieldSpec, RunValue
from .paths import prune, set_path, split_path
from .registry import Fn, TransformProblem, cell_text, closest, to_text
from .transforms import LookupTable, build_transform

if TYPE_CHECKING:
    from .model import MappingFile

__all__ = ["MappedRow", "Problem", "RowMapper", "compile_mapping", "to_utc"]


# --- compiling against a sheet ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row; ``column`` names the sheet column (None: the row as a whole)."""

    column: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.column}: {self.message}" if self.column else self.message


@dataclass
class MappedRow:
    payload: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


_SHOWN_MISSING = 10


def _resolve_columns(mapping: MappingFile, columns: list[str], source: str) -> dict[str, int]:
    index = {c: i for i, c in enumerate(columns)}
    folded: dict[str, list[str]] = {}
    for c in columns:
        folded.setdefault(c.casefold(), []).append(c)
    resolved: dict[str, int] = {}
    missing: list[str] = []
    for name in mapping.columns():
        if name in index:
            resolved[name] = index[name]
        elif len(folded.get(name.casefold(), [])) == 1:
            resolved[name] = index[folded[name.casefold()][0]]
        else:
            missing.append(name)
    if missing:
        # imported here for start-up speed: workbooks/sheets.py loads pandas (seconds), which loading or
        # rendering a mapping never needs; only this error message does
        from ..workbooks.sheets import shown, shown_list

        wanted = mapping.columns()
        if len(missing) == len(wanted) and len(wanted) > 1:
            raise InputError(
                f"{source} lacks the columns the mapping needs, 0 of {len(wanted)} columns found: is this the right "
                f"mapping? It is a {mapping.provider} "
                f"mapping and needs {shown_list([repr(c) for c in wanted], 8)}; the sheet's columns are: "
                f"{shown_list([repr(c) for c in columns], 8) or 'none'}"
            )
        parts = []
        for name in missing[:_SHOWN_MISSING]:
            near = closest(name, columns[:2000], n=1)
            parts.append(f"'{shown(name)}'" + (f" (closest: '{shown(near[0])}')" if near else ""))
        if len(missing) > _SHOWN_MISSING:
            parts.append(f"… and {len(missing) - _SHOWN_MISSING} more")
        found = shown_list([f"'{c}'" for c in columns]) or "none"
        raise InputError(
            f"{source} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(parts)} that the mapping needs "
            f"({len(wanted) - len(missing)} of {len(wanted)} found); "
            f"columns found: {found}. Rename the sheet's header or change the mapping."
        )
    return resolved


#: a row's cells, as the sheet reader gives them
Row = list[Any]
Getter = Callable[[Row], Any]


def _chain(fns: list[Fn]) -> Fn:
    if not fns:
        return lambda v: v
    if len(fns) == 1:
        return fns[0]

    def run(v: Any) -> Any:
        for fn in fns:
            v = fn(v)
        return v

    return run


def _blank_to_none(v: Any) -> Any:
    if isinstance(v, str) and (not v or v.isspace()):
        return None
    return v


def _datetime_getter(spec: DateTimeSource, idx: dict[str, int], field_name: str) -> tuple[Getter, str]:
    di = idx[spec.date]
    ti = idx[spec.time] if spec.time else None
    zi = idx[spec.timezone_column] if spec.timezone_column else None
    time_format = spec.time_format
    combined_fmt = spec.format
    default_zone = spec.timezone
    out_fmt = spec.output
    blame = spec.date
    choose = spec.ambiguous

    @functools.lru_cache(maxsize=65536)
    def convert(dv: Any, tv: Any, zone: str) -> str:
        if ti is None:
            local = parse_datetime(dv, combined_fmt)
        else:
            day = parse_date(dv, combined_fmt)
            if tv is None:
                raise _ColumnProblem(spec.time, "is empty; a start time is needed")
            try:
                clock = parse_time(tv, time_format)
            except TransformProblem as exc:
                raise _ColumnProblem(spec.time, str(exc)) from None
            local = dt.datetime.combine(day, clock)
        if not is_iana_zone(zone):
            raise _ColumnProblem(spec.timezone_column or blame, zone_problem(zone))
        return to_utc(local, zone, choose, field_name).strftime(out_fmt)

    def get(row: Row) -> Any:
        dv = _blank_to_none(row[di])
        if dv is None:
            return None
        tv = _blank_to_none(row[ti]) if ti is not None else None
        zone = default_zone
        if zi is not None:
            zv = _blank_to_none(row[zi])
            if zv is not None:
                zone = cell_text(zv).strip()
        if zone is None:
            raise _ColumnProblem(spec.timezone_column, "is empty and the mapping has no default timezone")
        return convert(dv, tv, zone)

    return get, blame


def to_utc(local: dt.datetime, zone: str, ambiguous: str = "refuse", field_name: str = "the field") -> dt.datetime:
    """A wall-clock time in ``zone`` as a UTC instant. A time the clocks skip (they go forward) is a
    problem; a time that happens twice (they go back) is a problem naming both instants unless
    ``ambiguous`` is "earlier" or "later"."""
    tz = ZoneInfo(zone)
    local = local.replace(tzinfo=None)
    first = local.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)
    second = local.replace(tzinfo=tz, fold=1).astimezone(dt.UTC)
    if first == second:
        return first
    if first.astimezone(tz).replace(tzinfo=None) != local:  # the wall clock never shows it
        raise TransformProblem(f"{local:%Y-%m-%d %H:%M} does not exist in {zone} (the clocks go forward then)")
    earlier, later = sorted((first, second))
    if ambiguous == "earlier":
        return earlier
    if ambiguous == "later":
        return later
    names = [earlier.astimezone(tz).tzname(), later.astimezone(tz).tzname()]
    raise TransformProblem(
        f"{local:%Y-%m-%d %H:%M} happens twice in {zone} (the clocks go back then): it is either "
        f"{earlier:%Y-%m-%dT%H:%MZ} ({names[0]}) or {later:%Y-%m-%dT%H:%MZ} ({names[1]}); "
        f"set `ambiguous: earlier` or `ambiguous: later` on the mapping's {field_name} datetime to choose")


class _ColumnProblem(TransformProblem):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass
class _CompiledField:
    path: str
    parts: tuple[str | int, ...]
    get: Getter
    blame: str | None  # column named in problems
    required: bool
    send_null: bool
    const: bool
    #: every list-item prefix of the path: ('Contacts', 0) and ('Contacts', 0, 'Phones', 1) for Contacts[0].Phones[1].X
    items: tuple[tuple[str | int, ...], ...] = ()
    remote: bool = False  # uses remote_lookup


class RowMapper:
    """Turns rows of cells into payloads. Build with :func:`compile_mapping`."""

    def __init__(self, mapping: MappingFile, columns: list[str], source: str = "the sheet",
                 tables: dict[str, LookupTable] | None = None) -> None:
        self.mapping = mapping
        self.tables = tables
        self.index = _resolve_columns(mapping, columns, source)
        self.key_indexes = [self.index[c] for c in mapping.key]
        self.fields = [self._compile(path, spec) for path, spec in mapping.fields.items()]
        self.flat = all(len(f.parts) == 1 for f in self.fields)
        #: payload paths whose value needs a provider list (left as names while offline)
        self.unresolved = {f.path for f in self.fields if f.remote} if tables is None else set()
        #: run_value fields hold a placeholder until sending: the contract does not judge them
        self.unresolved |= set(mapping.run_value_paths())
        #: payload path (top-level name or full path) -> sheet columns, for contract errors
        self.columns_for: dict[str, list[str]] = {p: s.columns() for p, s in mapping.fields.items()}

    def _compile(self, path: str, spec: FieldSpec) -> _CompiledField:
        fns = [build_transform(t, self.tables)[1] for t in spec.transforms]
        post = _chain(fns)
        get: Getter
        blame: str | None
        if spec.column is not None:
            i = self.index[spec.column]

            chain = tuple(fns)  # inlined rather than through _chain: this runs for every cell mapped

            def column(row: Row, i: int = i, chain: tuple[Fn, ...] = chain) -> Any:
                v = row[i]
                if v.__class__ is str and (not v or v.isspace()):
                    v = None
                for fn in chain:
                    v = fn(v)
                return v

            get, blame = column, spec.column
        elif spec.template is not None:
            names = PLACEHOLDER.findall(spec.template)
            idxs = [self.index[n] for n in names]
            pieces = PLACEHOLDER.split(spec.template)  # text, name, text, name, ...

            def template(row: Row, idxs: list[int] = idxs, pieces: list[str] = pieces, post: Fn = post) -> Any:
                vals = [to_text(_blank_to_none(row[i])) for i in idxs]
                if all(v is None for v in vals):
                    return post(None)
                out = []
                for j, piece in enumerate(pieces):
                    out.append((vals[j // 2] or "") if j % 2 else piece)
                return post(" ".join("".join(out).split()) or None)

            get, blame = template, names[0] if len(names) == 1 else " + ".join(names)
        elif spec.datetime is not None:
            dget, blame = _datetime_getter(spec.datetime, self.index, path)

            def local_datetime(row: Row, dget: Getter = dget, post: Fn = post) -> Any:
                return post(dget(row))

            get = local_datetime
        elif spec.run_value is not None:
            placeholder = RunValue(spec.run_value)  # the run fills it in just before sending

            def run_value(row: Row, placeholder: RunValue = placeholder) -> Any:
                return placeholder

            get, blame = run_value, None
        else:
            value = spec.const

            def const(row: Row, value: Any = value, post: Fn = post) -> Any:
                return post(value)

            get, blame = const, None
        parts = split_path(path)
        items = tuple(parts[:i + 1] for i, p in enumerate(parts) if isinstance(p, int))
        remote = any(isinstance(t, dict) and "remote_lookup" in t for t in spec.transforms)
        return _CompiledField(path, parts, get, blame, spec.required, spec.when_empty == "null",
                              bool({"const", "run_value"} & spec.model_fields_set), items, remote)

    def key_of(self, row: Row) -> tuple[str, ...]:
        return tuple((to_text(row[i]) or "").strip() for i in self.key_indexes)

    def _values(self, row: Row, problems: list[Problem]) -> list[tuple[_CompiledField, Any]]:
        """(field, value) for every field that yields something to send (a value, or an explicit null);
        each field's problem is added to ``problems`` once."""
        out: list[tuple[_CompiledField, Any]] = []
        for f in self.fields:
            try:
                value = f.get(row)
            except TransformProblem as exc:
                problem = Problem(exc.column if isinstance(exc, _ColumnProblem) else f.blame, str(exc))
                if problem not in problems:
                    problems.append(problem)
                continue
            if value is None or value == "":
                if f.required:
                    problems.append(Problem(f.blame, "is empty; a value is required"))
                    continue
                if not f.send_null:
                    continue
                value = None
            out.append((f, value))
        return out

    def map_row(self, row: Row) -> MappedRow:
        problems: list[Problem] = []
        values = self._values(row, problems)
        if self.flat:
            return MappedRow({f.path: value for f, value in values}, problems)
        # nested: a list item is kept only when a column gave one of its fields a value (or an explicit
        # null, "clear it"), so a Phones item built from an empty phone column disappears with its
        # constant PhoneType
        filled: set[tuple[str | int, ...]] = set()
        for f, _ in values:
            if not f.const:
                filled.update(f.items)
        payload: dict[str, Any] = {}
        for f, value in values:
            if f.items and f.items[-1] not in filled:
                continue
            set_path(payload, f.parts, value)
        return MappedRow(prune(payload), problems)


def compile_mapping(mapping: MappingFile, columns: list[str], source: str = "the sheet",
                    tables: dict[str, LookupTable] | None = None) -> RowMapper:
    """``tables``: lookup tables fetched from the provider (None offline: remote_lookup leaves names)."""
    return RowMapper(mapping, columns, source, tables)
