"""Reading a sheet into a Plan: every row mapped to its payload and validated, nothing sent.

Also how a run cuts the rows to send into chunks.
"""
from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from ..hooks import resolve
from ..ledger.ledger import Ledger
from ..mapping.model import MappingFile, Problem, RowMapper, compile_mapping, load_mapping
from ..mapping.transforms import LookupTable
from ..redact import mask_payload, redact_text
from ..workbooks.sheets import Sheet, read_sheet
from .payloads import Shape, pack_payload, unpack_payload

__all__ = [
    "PayloadSource",
    "Plan",
    "PreparedRow",
    "by_column",
    "chunk_size_for",
    "chunked",
    "map_rows",
    "prepare",
]

T = TypeVar("T")


class _NoProblems(list[Problem]):
    """The problems of a row that has none: one shared empty list, not one a row, so it refuses changes
    (give the row a new list instead)."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("NO_PROBLEMS is shared by every valid row: assign a new list instead of changing it")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse


NO_PROBLEMS: list[Problem] = _NoProblems()


class PayloadSource:
    """Where a plan's valid rows get their payload: mapped again from the sheet's cells when read (mapping
    is deterministic given the cells and the looked-up tables the mapper holds)."""

    __slots__ = ("map_row", "rows")

    def __init__(self, mapper: RowMapper, rows: list[list[Any]]) -> None:
        self.map_row = mapper.map_row
        self.rows = rows

    def payload(self, index: int) -> dict[str, Any]:
        return self.map_row(self.rows[index]).payload


class PreparedRow:
    """One row of a plan: where it is, its key, its problems, and (valid rows) the payload to send.

    Compact, since a plan holds one per row of the sheet (a million rows: issue 16): slots, no empty
    list for a row without problems, and no payload held in a big plan: a row :func:`map_rows` made from a
    sheet of more than :data:`KEEP_PAYLOADS_UP_TO` rows maps its cells again when :attr:`payload` is read
    (:class:`PayloadSource`); one given a payload (every valid row of a smaller plan) keeps it packed
    (:func:`~flows.engine.payloads.pack_payload`: its shared shape and a tuple of its values). A payload
    read stays built, the same dict, while its row is among the :data:`RECENT_PAYLOADS` read last; a
    change made to it is kept when the row leaves them (the row then keeps it packed). Use
    :attr:`is_valid` to ask whether a row has a payload without building it."""

    __slots__ = ("_leaves", "_shape", "_source", "index", "key", "line", "problems")

    def __init__(self, index: int, line: int, key: tuple[str, ...], payload: dict[str, Any] | None,
                 problems: Sequence[Problem] = NO_PROBLEMS, *, source: PayloadSource | None = None) -> None:
        self.index = index  # position in Sheet.rows
        self.line = line  # the row number a person sees in the sheet
        self.key = key
        self.problems: list[Problem] = (NO_PROBLEMS if not problems else problems if isinstance(problems, list)
                                        else list(problems))
        self._source = source if payload is None and not problems else None
        self._shape: Shape | None = None
        self._leaves: tuple[Any, ...] | None = None
        if payload is not None:
            self._shape, self._leaves = pack_payload(payload)

    def __repr__(self) -> str:
        return (f"PreparedRow(index={self.index!r}, line={self.line!r}, key={self.key!r}, "
                f"payload={self.payload!r}, problems={self.problems!r})")

    @property
    def is_valid(self) -> bool:
        """The row has a payload to send (without building it)."""
        return self._leaves is not None or self._source is not None

    @property
    def payload(self) -> dict[str, Any] | None:
        """The payload to send; None when the row is invalid."""
        built = _RECENT.built.get(self)
        if built is not None:
            return built[0]
        payload = self._build()
        if payload is not None:
            _RECENT.add(self, payload)
        return payload

    @payload.setter
    def payload(self, value: dict[str, Any] | None) -> None:
        _RECENT.discard(self)
        self._source = None
        self._shape, self._leaves = pack_payload(value) if value is not None else (None, None)

    def _build(self) -> dict[str, Any] | None:
        """A new dict of the payload from what the row holds (packed, or its cells mapped again); None when the
        row is invalid. Not kept: :attr:`payload` keeps it among the recent ones."""
        if self._leaves is not None:
            assert self._shape is not None
            return unpack_payload(self._shape, self._leaves)
        if self._source is not None:
            return self._source.payload(self.index)
        return None

    @property
    def body(self) -> dict[str, Any]:
        """The payload of a valid row, to send (an invalid row has none and is never sent)."""
        payload = self.payload
        if payload is None:
            raise self._invalid()
        return payload

    def payload_for_send(self) -> dict[str, Any]:
        """The payload of a valid row for one send, which holds it until the row is settled: the dict
        :attr:`payload` holds when the row's payload was read lately (so a change made to it is sent), else one
        built for this send and not kept among the recent ones. The engine builds each row's payload once
        this way, to hash it and send it (keeping it recent cost a tenth of the send phase's CPU at 0 ms)."""
        built = _RECENT.built.get(self)
        if built is not None:
            return built[0]
        payload = self._build()
        if payload is None:
            raise self._invalid()
        return payload

    def _invalid(self) -> ValueError:
        return ValueError(f"row {self.line} is invalid: it has no payload to send")

    @property
    def key_text(self) -> str:
        return " / ".join(self.key)

    @property
    def ledger_key(self) -> str:
        """The key as the ledger stores it. Worked out on each read (~1 µs) rather than kept: a million
        rows would hold a million more strings for the whole run."""
        return Ledger.key_text(self.key)


#: a plan of at most this many rows keeps each valid row's payload packed (shape + values, about 200 B a row:
#: 40 MB here) instead of mapping the row again when it is read. Mapping again is what keeps a million-row
#: plan under 1 GiB, but in the send phase it cost about 9 % of the wall time at 0 ms (bench/RESULTS.md's
#: send profile: the row mapped again, packed for the recent window); unpacking costs about a tenth of it
KEEP_PAYLOADS_UP_TO = 200_000

#: rows whose payload dict is kept built (see :class:`PreparedRow`): far more than a run has in flight
RECENT_PAYLOADS = 4096


class _Recent:
    """The payloads built most recently, oldest first, each with its outline when built; past the limit
    the oldest is dropped, or packed into its row when it was changed meanwhile. Locked: a Prefect flow
    may read payloads from more than one thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.built: dict[PreparedRow, tuple[dict[str, Any], Shape, tuple[Any, ...]]] = {}
        self.lock = threading.Lock()

    def add(self, row: PreparedRow, payload: dict[str, Any]) -> None:
        shape, leaves = (row._shape, row._leaves) if row._leaves is not None else pack_payload(payload)
        assert shape is not None
        with self.lock:
            self.built[row] = (payload, shape, leaves)
            while len(self.built) > self.limit:
                oldest = next(iter(self.built))
                _keep_changes(oldest, *self.built.pop(oldest))

    def discard(self, row: PreparedRow) -> None:
        with self.lock:
            self.built.pop(row, None)


def _keep_changes(row: PreparedRow, payload: dict[str, Any], shape: Shape, leaves: tuple[Any, ...]) -> None:
    """A payload leaving the recent ones: a change made to it since it was built is packed into its row."""
    now_shape, now_leaves = pack_payload(payload)
    if now_shape is shape and len(now_leaves) == len(leaves) and all(
            a is b for a, b in zip(now_leaves, leaves, strict=True)):
        return
    row._shape, row._leaves = now_shape, now_leaves


_RECENT = _Recent(RECENT_PAYLOADS)


@dataclass
class Plan:
    mapping: MappingFile
    mapping_path: Path
    sheet: Sheet
    mapper: RowMapper
    rows: list[PreparedRow]

    @property
    def valid(self) -> list[PreparedRow]:
        return [r for r in self.rows if r.is_valid]

    def masked_payload(self, payload: dict[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
        sensitive = {re.sub(r"\[\d+\]", "", p) for p in self.mapping.sensitive_paths()}
        masked: dict[str, Any] = mask_payload(payload, sensitive, secrets)
        return masked


# --- prepare -----------------------------------------------------------------------------------------

_PYDANTIC_MESSAGES = {
    "missing": "is required",
    "string_too_long": "is too long: at most {max_length} characters",
    "string_too_short": "is empty; a value is required",
    "too_long": "has too many items: at most {max_length}",
    "literal_error": "must be one of {expected}",
    "string_type": "must be text",
    "extra_forbidden": "is not a field the provider accepts (check the mapping's fields)",
}


def _contract_problem(err: Mapping[str, Any], mapper: RowMapper) -> Problem:
    loc = [p for p in err["loc"] if not isinstance(p, int)]
    path = ".".join(str(p) for p in loc)
    columns: list[str] = []
    for candidate in (path, str(loc[0]) if loc else ""):
        for field_path, cols in mapper.columns_for.items():
            if re.sub(r"\[\d+\]", "", field_path) == candidate:
                columns = cols
                break
        if columns:
            break
    if not columns and path:  # a rule on an object (bookingFields: "exactly one of username or email_address")
        columns = _columns_under(path, str(err["msg"]), mapper)
    template = _PYDANTIC_MESSAGES.get(err["type"])
    if template:
        try:
            msg = template.format(**(err.get("ctx") or {}))
        except (KeyError, IndexError):
            msg = err["msg"]
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
    column = " + ".join(columns) if columns else None
    if column is None:
        msg = f"{path} {msg}"
    return Problem(column, msg)


def _columns_under(prefix: str, message: str, mapper: RowMapper) -> list[str]:
    """Columns of the fields inside object ``prefix`` that ``message`` names (all of them when it names none)."""
    inside = {p: cols for p, cols in mapper.columns_for.items()
              if cols and re.sub(r"\[\d+\]", "", p).startswith(prefix + ".")}
    words = set(re.findall(r"\w+", message.casefold()))
    named = [cols for p, cols in inside.items() if p.rsplit(".", 1)[-1].casefold() in words]
    return list(dict.fromkeys(c for cols in (named or list(inside.values())) for c in cols))


def prepare(sheet_path: Path | str, mapping_path: Path | str, *, sheet_name: str | None = None,
            mapping: MappingFile | None = None) -> Plan:
    """Read the sheet, map every row and validate it. No network. Raises only for whole-run problems.

    Fields that need a provider list (``remote_lookup``) keep their names here; a run resolves
    them once it is logged in (:meth:`ImportRun.resolve_lookups`) and maps the rows again."""
    mapping_path = Path(mapping_path)
    mapping = mapping or load_mapping(mapping_path)
    src = mapping.source
    sheet = read_sheet(sheet_path, sheet=sheet_name or src.sheet, encoding=src.encoding, delimiter=src.delimiter,
                       header_row=src.header_row, expect=mapping.columns())
    for note in sheet.notes:  # e.g. the header found below title rows: said, not silently assumed
        print(f"note: {note}", file=sys.stderr)
    return map_rows(mapping, mapping_path, sheet)


def map_rows(mapping: MappingFile, mapping_path: Path, sheet: Sheet,
             tables: dict[str, LookupTable] | None = None) -> Plan:
    """Map and validate every row of an already read sheet (``tables``: fetched lookup lists)."""
    mapper = compile_mapping(mapping, sheet.columns, source=Path(sheet.path).name, tables=tables)
    contract: type[BaseModel] | None = resolve(mapping.request.contract) if mapping.request.contract else None
    validate = contract.model_validate if contract is not None else None
    unresolved = {re.sub(r"\[\d+\]", "", p) for p in mapper.unresolved}
    hidden = sorted({mapper.index[c] for c in mapping.sensitive_columns()})  # sheet positions of sensitive columns
    rows: list[PreparedRow] = []
    key_of, map_row = mapper.key_of, mapper.map_row
    # a big sheet's valid rows hold no payload (mapped again when read); a smaller one's keep theirs packed
    source = PayloadSource(mapper, sheet.rows) if len(sheet.rows) > KEEP_PAYLOADS_UP_TO else None
    for i, (cells, line) in enumerate(zip(sheet.rows, sheet.line_numbers, strict=True)):
        mapped = map_row(cells)
        problems = mapped.problems
        key = key_of(cells)
        for col, k in zip(mapping.key, key, strict=True):
            if not k:
                problems.append(Problem(col, "is empty; it identifies the row across runs, so it is required"))
        if validate is not None:
            try:
                validate(mapped.payload)
            except ValidationError as exc:
                seen = {c for p in problems if p.column for c in p.column.split(" + ")}
                for err in exc.errors():
                    if unresolved and err["type"] != "missing" and _under(err["loc"], unresolved):
                        continue  # a name not yet looked up: checked when the run fetches the provider's list
                    problem = _contract_problem(err, mapper)
                    if problem.column is None or not seen.intersection(problem.column.split(" + ")):
                        problems.append(problem)
        if problems and hidden:  # a message quoting a password must not carry it into results or logs
            values = [str(cells[j]) for j in hidden if cells[j] not in (None, "")]
            problems[:] = [Problem(p.column, redact_text(p.message, values)) for p in problems]
        kept = mapped.payload if source is None and not problems else None
        rows.append(PreparedRow(i, line, key, kept, problems, source=source))
    _mark_duplicate_keys(rows, mapping)
    return Plan(mapping, mapping_path, sheet, mapper, rows)


def _under(loc: tuple[int | str, ...], paths: set[str]) -> bool:
    names = [str(p) for p in loc if not isinstance(p, int)]
    return any(".".join(names[:n]) in paths for n in range(1, len(names) + 1))


def _mark_duplicate_keys(rows: list[PreparedRow], mapping: MappingFile) -> None:
    seen: dict[tuple[str, ...], list[PreparedRow]] = {}
    for r in rows:
        if all(r.key):
            seen.setdefault(r.key, []).append(r)
    label = " + ".join(mapping.key)
    for key, group in seen.items():
        if len(group) < 2:
            continue
        for r in group:
            others = ", ".join(str(o.line) for o in group if o is not r)
            r.problems = [*r.problems, Problem(mapping.key[0] if len(mapping.key) == 1 else label,
                                               f"{' / '.join(key)!r} is also the key of row {others}; "
                                               f"each row needs its own key")]
            r.payload = None


#: a chunk of rows is a Prefect task: at least this many rows, and at most MAX_CHUNKS chunks a run unless told
MIN_CHUNK_ROWS = 500
MAX_CHUNKS = 5


def chunk_size_for(rows: int, given: int | None = None) -> int:
    """Rows per chunk: ``given``, else 500 or a fifth of the rows, whichever is more. Each task run cost the
    send phase 25-45 ms on 2 CPUs (Prefect's events, and its server recording them while the rows are
    sent): a 10,000-row run sent in 2.4 s as 20 tasks, ~1.9 s as 10, ~1.7 s as 5 and ~1.6 s as one
    (bench/RESULTS.md). Five still shows a long run's progress in the Prefect UI."""
    return given if given else max(MIN_CHUNK_ROWS, -(-rows // MAX_CHUNKS))


def chunked(items: list[T], size: int | None = None) -> list[list[T]]:
    """``items`` in chunks of ``size`` (None: :func:`chunk_size_for`)."""
    size = chunk_size_for(len(items), size)
    return [items[i:i + size] for i in range(0, len(items), size)] or []


def by_column(problems: Iterable[Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        if p.column:
            out.setdefault(p.column, []).append(p.message)
    return out
