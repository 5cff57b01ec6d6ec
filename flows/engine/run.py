"""The import, as plain functions: prepare (read, map, validate) -> send -> write results.

Prefect (flows/import_sheet.py) and the CLI are thin shells over this module; tests and the
benchmark drive it directly. Nothing here raises for a bad row: every row ends with an
:class:`~flows.outcomes.Outcome`. Exceptions are kept for what stops a run before it starts
(see flows/errors.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from secrets import token_urlsafe
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ImporterError
from ..heap import long_lived_frozen
from ..hooks import Handler, Readback, resolve
from ..http.auth import Auth, build_auth
from ..http.callbacks import check_callback_address, receiving
from ..http.ratelimit import shared_timeline_for
from ..http.sender import CallResult, ReadbackError, Sender, encode_form, response_messages
from ..ledger.claims import DEFAULT_ROW_LEASE_SECONDS, Heartbeat, RowClaims
from ..ledger.ledger import SENDING, Entry, GroupCommit, Ledger, open_ledger, payload_hash, settled_since
from ..mapping.model import MappingFile, Problem, RowMapper, RunValue, compile_mapping, load_mapping
from ..mapping.transforms import LookupTable
from ..outcomes import DONE_STATUSES, Action, Outcome, Status
from ..redact import MASK, mask_payload, masked_fields, redact_text
from ..workbooks.results import input_number_formats, write_results
from ..workbooks.sheets import Sheet, paused_gc, read_sheet

__all__ = [
    "UNSET",
    "ImportRun",
    "Plan",
    "PreparedRow",
    "RowContext",
    "RunOptions",
    "chunk_size_for",
    "chunked",
    "count_statuses",
    "map_rows",
    "prepare",
]


@dataclass
class PreparedRow:
    index: int  # position in Sheet.rows
    line: int  # the row number a person sees in the sheet
    key: tuple[str, ...]
    payload: dict[str, Any] | None  # None when the row is invalid
    problems: list[Problem] = field(default_factory=list)

    @property
    def key_text(self) -> str:
        return " / ".join(self.key)

    @cached_property
    def ledger_key(self) -> str:
        """The key as the ledger stores it (worked out once: a run reads it several times a row)."""
        return Ledger.key_text(self.key)


@dataclass
class Plan:
    mapping: MappingFile
    mapping_path: Path
    sheet: Sheet
    mapper: RowMapper
    rows: list[PreparedRow]

    @property
    def valid(self) -> list[PreparedRow]:
        return [r for r in self.rows if r.payload is not None]

    def masked_payload(self, payload: dict, secrets: Iterable[str] = ()) -> dict:
        sensitive = {re.sub(r"\[\d+\]", "", p) for p in self.mapping.sensitive_paths()}
        return mask_payload(payload, sensitive, secrets)


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


def _contract_problem(err: dict, mapper: RowMapper) -> Problem:
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


def map_rows(mapping: MappingFile, mapping_path: Path, sheet: Sheet, tables: dict | None = None) -> Plan:
    """Map and validate every row of an already read sheet (``tables``: fetched lookup lists)."""
    with paused_gc():  # a payload dict per row: the cyclic collector would rescan them all, again and again
        return _map_rows(mapping, mapping_path, sheet, tables)


def _map_rows(mapping: MappingFile, mapping_path: Path, sheet: Sheet, tables: dict | None) -> Plan:
    mapper = compile_mapping(mapping, sheet.columns, source=Path(sheet.path).name, tables=tables)
    contract: type[BaseModel] | None = resolve(mapping.request.contract) if mapping.request.contract else None
    validate = contract.model_validate if contract is not None else None
    unresolved = {re.sub(r"\[\d+\]", "", p) for p in mapper.unresolved}
    hidden = sorted({mapper.index[c] for c in mapping.sensitive_columns()})  # sheet positions of sensitive columns
    rows: list[PreparedRow] = []
    key_of, map_row = mapper.key_of, mapper.map_row
    for i, (cells, line) in enumerate(zip(sheet.rows, sheet.line_numbers)):
        mapped = map_row(cells)
        problems = mapped.problems
        key = key_of(cells)
        for col, k in zip(mapping.key, key):
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
        rows.append(PreparedRow(i, line, key, None if problems else mapped.payload, problems))
    _mark_duplicate_keys(rows, mapping)
    return Plan(mapping, mapping_path, sheet, mapper, rows)


def _under(loc: tuple, paths: set[str]) -> bool:
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
            r.problems.append(Problem(mapping.key[0] if len(mapping.key) == 1 else label,
                                      f"{' / '.join(key)!r} is also the key of row {others}; each row needs its own key"))
            r.payload = None


# --- run ---------------------------------------------------------------------------------------------

UNSET: Any = object()


@dataclass
class RunOptions:
    concurrency: int | None = None  # None: the mapping's
    rate: float | None = UNSET  # UNSET: the mapping's; None: no limit
    ledger_url: str | None = None
    out: Path | None = None
    env: Mapping[str, str] | None = None
    transport: httpx.AsyncBaseTransport | None = None
    resend_unknown: bool = False
    progress: Callable[[ImportRun], None] | None = None
    #: address of a callback receiver serving this run (flows.http.callbacks); <PROVIDER>_CALLBACK_URL wins
    callback_url: str | None = None
    #: rows settled before anything is sent, by row index (a rerun carries these over from the results
    #: workbook, or refuses them); never sent, and kept when the rows are mapped again after lookups
    settled: Mapping[int, Outcome] | None = None
    #: extra Summary entries, computed when the workbook is written (a rerun: what changed)
    describe: Callable[[ImportRun], Mapping[str, object]] | None = None
    #: how long this run's row claims outlive it if it is killed (flows/ledger/claims.py RowClaims); None: 60 s
    lease_seconds: float | None = None


#: a chunk of rows is a Prefect task: at least this many rows, and at most MAX_CHUNKS chunks a run unless told
MIN_CHUNK_ROWS = 500
MAX_CHUNKS = 5


def chunk_size_for(rows: int, given: int | None = None) -> int:
    """Rows per chunk: ``given``, else 500 or a fifth of the rows, whichever is more. Each task run cost the
    send phase 25-45 ms on 2 CPUs (Prefect's events, and its server recording them while the rows are
    sent): a 10,000-row run sent in 2.4 s as 20 tasks, ~1.9 s as 10, ~1.7 s as 5 and ~1.6 s as one
    (bench/RESULTS.md). Five still shows a long run's progress in the Prefect UI."""
    return given if given else max(MIN_CHUNK_ROWS, -(-rows // MAX_CHUNKS))


def chunked(items: list, size: int | None = None) -> list[list]:
    """``items`` in chunks of ``size`` (None: :func:`chunk_size_for`)."""
    size = chunk_size_for(len(items), size)
    return [items[i:i + size] for i in range(0, len(items), size)] or []


_DONE_VALUES = frozenset(s.value for s in DONE_STATUSES)


def count_statuses(outcomes: Iterable[Outcome | None]) -> dict[str, int]:
    counts = Counter(o.status.value if o is not None else Status.SKIPPED.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in Status}


class ImportRun:
    """One run of one sheet. Checks credentials and the ledger on creation, before any request."""

    def __init__(self, plan: Plan, options: RunOptions | None = None) -> None:
        self.plan = plan
        self.options = options = options or RunOptions()
        m = plan.mapping
        env = options.env if options.env is not None else os.environ
        self.run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.base_url = (env.get(f"{m.env_prefix}_BASE_URL") or m.connection.base_url).rstrip("/")
        if not re.match(r"^https?://", self.base_url):
            raise ConfigError(f"{m.env_prefix}_BASE_URL={self.base_url!r} is not an http(s) URL")
        if (httpx.URL(self.base_url).host or "").endswith(".invalid"):  # RFC 2606: a placeholder, never a real host
            raise ConfigError(f"the base URL {self.base_url} is a placeholder: {m.provider} addresses differ per "
                              f"customer, so set {m.env_prefix}_BASE_URL to yours (e.g. in a .env file)")
        self.auth: Auth = build_auth(m.connection.auth, m.provider, env)
        self.concurrency = options.concurrency or m.connection.concurrency
        self.rate = m.connection.rate if options.rate is UNSET else options.rate
        self.readback: Readback | None = resolve(m.request.readback) if m.request.readback else None
        self.handler: Handler | None = resolve(m.request.handler) if m.request.handler else None
        #: sensitive field paths as _dig reads them (a[0].b -> a.0.b), worked out once, not per row
        self._sensitive_dig_paths = [re.sub(r"\[(\d+)\]", r".\1", p) for p in m.sensitive_paths()]
        self.lookup_sizes: dict[str, int] = {}
        #: shared by every row's handler for the length of the run (RowContext.run_state)
        self.handler_state: dict[str, Any] = {}
        self.run_values, self._callback_token = self._make_run_values(env)
        self.callbacks_confirmed = 0  # accepted rows settled by the provider's callback while this run waited
        self.ledger: Ledger = open_ledger(options.ledger_url)
        if self._callback_token:
            self.ledger.add_callback_token(self._callback_token, run_id=self.run_id, scope=m.scope, provider=m.provider)
        self.outcomes: list[Outcome | None] = [None] * len(plan.rows)
        for r in plan.rows:
            if r.payload is None:
                self.outcomes[r.index] = Outcome(Status.INVALID, "; ".join(str(p) for p in r.problems),
                                                 column_messages=_by_column(r.problems))
        self.settled: dict[int, Outcome] = dict(options.settled or {})
        for i, outcome in self.settled.items():
            self.outcomes[i] = outcome
        for r in plan.rows:  # a results workbook's mask (••••••) in a sensitive field is never sent (flows/redact.py)
            if r.payload is not None and self.outcomes[r.index] is None and (masked := self._masked_outcome(r)):
                self.outcomes[r.index] = masked
        self.started = dt.datetime.now().astimezone()
        self.ended: dt.datetime | None = None
        self.done = sum(o is not None for o in self.outcomes)
        self.interrupted = False
        self._in_flight: set[int] = set()
        self._entries: dict[str, Entry] = {}
        self._sender: Sender | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self.results_path: Path | None = None
        self.ledger.start_run(self.run_id, input=str(plan.sheet.path), mapping=str(plan.mapping_path), provider=m.provider)
        # two runs at once: rows are claimed before they are sent (pending(), send()); the lease is recorded now
        self.claims = RowClaims(self.ledger, self.run_id, lease_seconds=options.lease_seconds or DEFAULT_ROW_LEASE_SECONDS)
        self.claims.start()
        self._claimed: set[int] = set()  # row indexes this run holds
        self.held_elsewhere = 0  # rows not sent because another live run holds them
        self.taken_over = 0  # rows taken over from a run that is gone
        self._heartbeat: Heartbeat | None = None
        self._lease_lost = False

    # -- run values (``run_value:`` fields) and callbacks ----------------------------------------------

    def _make_run_values(self, env: Mapping[str, str]) -> tuple[dict[str, str | None], str | None]:
        """The values ``run_value:`` fields get in this run, and the callback token (None when not used)."""
        m = self.plan.mapping
        wanted = m.run_value_paths()
        if "callback_url" not in wanted.values():
            return {}, None
        var = f"{m.env_prefix}_CALLBACK_URL"
        base = (env.get(var) or self.options.callback_url or "").strip().rstrip("/")
        if not base:
            paths = [p for p, name in wanted.items() if name == "callback_url"]
            if any(m.fields[p].required for p in paths):
                raise ConfigError(f"fields.{paths[0]} needs this run's callback address: set {var} to the public URL "
                                  f"of `booking-import callbacks`, or run with --wait-callbacks SECONDS to receive "
                                  f"the callbacks in-process")
            return {"callback_url": None}, None
        if not re.match(r"^https?://[^\s/]+", base):
            raise ConfigError(f"{var}={base!r} is not an http(s) URL")
        check_callback_address(m, env, base_url=self.base_url, in_process=self.options.callback_url)
        token = token_urlsafe(24)
        return {"callback_url": f"{base}/{m.provider}/{token}"}, token

    def with_run_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload as sent: ``run_value`` placeholders replaced by this run's values (left out when None)."""
        return _fill_run_values(payload, self.run_values) if self.run_values else payload

    def refresh_from_ledger(self) -> int:
        """Rows this run left ``accepted`` (or ``unknown``) that the ledger now records as settled (a callback
        came): take that outcome. Returns how many changed."""
        waiting = {r.index: (r.ledger_key, o) for r in self.plan.rows
                   if (o := self.outcomes[r.index]) is not None and o.status in (Status.ACCEPTED, Status.UNKNOWN)}
        changed = settled_since(self.ledger, self.plan.mapping.scope, waiting, run_id=self.run_id)
        for i, outcome in changed.items():
            self.outcomes[i] = outcome
        return len(changed)

    async def await_callbacks(self, seconds: float, poll: float = 0.1) -> int:
        """Wait up to ``seconds`` for the provider's callbacks (received by flows.http.callbacks into the ledger) to
        settle this run's accepted rows; stops early once none is left waiting. Returns how many were settled."""
        deadline = time.monotonic() + seconds
        changed = 0
        while True:
            changed += self.refresh_from_ledger()
            if time.monotonic() >= deadline or not any(o is not None and o.status is Status.ACCEPTED for o in self.outcomes):
                break
            await asyncio.sleep(poll)
        self.callbacks_confirmed += changed
        return changed

    # -- the rows to send, after the ledger has had its say -------------------------------------------

    def pending(self) -> list[PreparedRow]:
        """Valid rows not yet settled in this run, minus those the ledger says are done (skipped here), minus
        those another live run holds (skipped, naming it). The rest are claimed for this run, in one batch."""
        scope = self.plan.mapping.scope
        todo = [r for r in self.plan.rows if r.payload is not None and self.outcomes[r.index] is None]
        self._entries = self.ledger.get_many(scope, [r.ledger_key for r in todo])
        out = []
        for r in todo:
            entry = self._entries.get(r.ledger_key)
            if entry is not None and entry.status in _DONE_VALUES:
                self._skip_done(r, entry)
            else:
                out.append(r)
        return self._claim(out, reread=True)

    def _skip_done(self, r: PreparedRow, entry: Entry) -> None:
        note = ""
        if entry.payload_hash and entry.payload_hash != payload_hash(r.payload):
            note = "; the row's values differ from what was sent then: change it at the provider, not by rerunning"
        self._settle(r, Outcome(Status.SKIPPED, f"already {entry.status} by run {entry.run_id} "
                                                f"(provider id {entry.provider_id or 'not given'}){note}",
                                provider_id=entry.provider_id, http_status=entry.http_status))

    def _claim(self, rows: list[PreparedRow], *, reread: bool = False) -> list[PreparedRow]:
        """Claim these rows in the ledger (a batch of keys per statement, not a transaction per row). Returns
        those this run may send; a row another live run holds is settled ``skipped``, naming that run.
        ``reread``: read the ledger again for the rows won, since the run that held one until a moment ago
        may have settled it (then it is skipped as done), or left it ``sending`` (then it is checked)."""
        new = [r for r in rows if r.index not in self._claimed]
        if not new:
            return rows
        scope = self.plan.mapping.scope
        got = self.claims.claim(scope, [r.ledger_key for r in new])
        self.taken_over += len(got.taken_over)
        if reread and got.won:
            self._entries.update(self.ledger.get_many(scope, [r.ledger_key for r in new if r.ledger_key in got.won]))
        out = []
        for r in rows:
            key = r.ledger_key
            if r.index in self._claimed:  # held already (claimed by an earlier pending())
                out.append(r)
            elif key in got.won:
                self._claimed.add(r.index)
                entry = self._entries.get(key) if reread else None
                if entry is not None and entry.status in _DONE_VALUES:
                    self._skip_done(r, entry)
                else:
                    out.append(r)
            else:
                self.held_elsewhere += 1
                self._settle(r, Outcome(Status.SKIPPED, f"not sent: {got.held[key].describe()}", needs_rerun=True))
        return out

    # -- sending --------------------------------------------------------------------------------------

    def sender(self) -> Sender:
        m = self.plan.mapping
        return Sender(base_url=self.base_url, auth=self.auth, concurrency=self.concurrency, rate=self.rate,
                      timeout=m.connection.timeout_seconds, connect_timeout=m.connection.connect_timeout_seconds,
                      attempts=m.retry.attempts, backoff=m.retry.backoff_seconds, max_backoff=m.retry.max_backoff_seconds,
                      max_retry_after=m.retry.max_retry_after_seconds, rules=m.request.status_rules(),
                      transport=self.options.transport,
                      # one rate for every process importing to this provider (flows/ratelimit.py)
                      shared_rate=shared_timeline_for(self.ledger, self.base_url) if self.rate else None)

    async def __aenter__(self) -> ImportRun:
        if self.claims.released:  # entered again after an earlier `async with`: a new lease, claims taken anew
            self.claims.start()
        if self._heartbeat is None:  # keeps this run's row claims alive while it works
            self._heartbeat = Heartbeat(self.claims, self.run_id, on_lost=self._lost_lease).__enter__()
        self._sender = self.sender()
        await self._sender.__aenter__()
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self._writer = GroupCommit(self.ledger)
        self.sending_started = self.sending_ended = None
        self.rows_sent = 0
        if self.plan.mapping.lookups:
            try:
                await self.resolve_lookups()
            except BaseException:
                await self._sender.__aexit__(None, None, None)
                raise
        return self

    async def resolve_lookups(self) -> dict[str, LookupTable]:
        """Fetch each provider list the mapping declares (once per run), then map the rows again so
        names resolve to ids; an unknown or ambiguous name makes its row invalid before anything is sent."""
        tables = {name: await fetch_lookup(self._sender, name, spec) for name, spec in self.plan.mapping.lookups.items()}
        plan = self.plan
        self.plan = map_rows(plan.mapping, plan.mapping_path, plan.sheet, tables)
        self.lookup_sizes = {name: len(t.names) for name, t in tables.items()}
        for r in self.plan.rows:
            if r.index in self.settled:
                continue
            if self.outcomes[r.index] is not None and self.outcomes[r.index].status is Status.INVALID:
                self.outcomes[r.index] = None
                self.done -= 1
            if r.payload is None:
                self.outcomes[r.index] = Outcome(Status.INVALID, "; ".join(str(p) for p in r.problems),
                                                 column_messages=_by_column(r.problems))
                self.done += 1
        return tables

    async def __aexit__(self, *exc: Any) -> None:
        if exc and exc[0] is not None and issubclass(exc[0], (asyncio.CancelledError, KeyboardInterrupt)):
            self.mark_interrupted()
        try:
            if self._sender is not None:
                await self._sender.__aexit__(*exc)
        finally:  # nothing can be sent any more: settled rows are written, then the claims let go
            self.release_claims()

    def _lost_lease(self) -> None:
        """The heartbeat found this run's lease ran out (the process stalled longer than the lease): another
        run may have taken its rows over, so no further row is sent."""
        self._lease_lost = True

    def release_claims(self) -> None:
        """Write what is queued, stop the heartbeat and release this run's row claims (idempotent). Called when
        the run ends: after sending (``async with``), and by :meth:`close` (an error, Ctrl-C)."""
        if self.claims.released:
            return
        writer = getattr(self, "_writer", None)
        try:
            if writer is not None:  # a settled row must be in the ledger before another run may claim it
                writer.flush_now()
        finally:
            if self._heartbeat is not None:
                self._heartbeat.__exit__(None, None, None)
                self._heartbeat = None
            self._claimed.clear()
            self.claims.release()

    async def send(self, rows: list[PreparedRow]) -> dict[str, int]:
        """Send these rows (a chunk) with the run's concurrency; returns their status counts."""
        assert self._sender is not None and self._semaphore is not None, "use `async with run:` around send()"
        given = rows
        if any(r.index not in self._claimed for r in rows):  # rows that did not come through pending()
            mine = {r.index for r in self._claim(rows)} | self._claimed
            rows = [r for r in rows if r.index in mine and self.outcomes[r.index] is None]
        queue = list(reversed(rows))

        async def worker() -> None:
            while queue:
                row = queue.pop()
                async with self._semaphore:
                    await self._process(row)

        if self.sending_started is None:
            self.sending_started = time.perf_counter()
        with long_lived_frozen():  # the garbage collector walks only what the send creates (flows/heap.py)
            await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(rows)))))
            await self.confirm_writes()
        self.sending_ended = time.perf_counter()
        self.rows_sent += len(rows)
        return count_statuses(self.outcomes[r.index] for r in given)

    async def confirm_writes(self) -> None:
        """Wait until every queued ledger record is committed (raises if one could not be)."""
        await self._writer.confirm()

    async def _process(self, row: PreparedRow) -> None:
        sender = self._sender
        assert sender is not None
        if sender.stopped:
            self._settle(row, Outcome(Status.SKIPPED, f"not sent: the run stopped early: {sender.stopped}"))
            return
        if self._lease_lost or row.index not in self._claimed or self.claims.expired():  # the claim check
            self._settle(row, Outcome(Status.SKIPPED, "not sent: this run's claim on its rows ran out (the process "
                                                      "stalled longer than its lease) and another run may hold the row; "
                                                      "rerun after it ends", needs_rerun=True))
            return
        scope, key = self.plan.mapping.scope, row.ledger_key
        entry = self._entries.get(key)
        self._in_flight.add(row.index)
        try:
            resumable = self.handler is not None and entry is not None and entry.stage and entry.provider_id
            if entry is not None and entry.status in (SENDING, Status.UNKNOWN.value) and not resumable:
                settled = await self._check_earlier(row, entry)
                if isinstance(settled, str):  # found at the provider; a multi-step handler finishes it
                    entry = dataclasses.replace(entry, provider_id=settled, stage="found")
                elif settled is not None:
                    self._settle(row, settled)
                    return
            phash = payload_hash(row.payload)
            await self._writer.mark_sending(scope, key, self.run_id, phash)
            try:
                outcome = await self._send_row(row, entry)
            except asyncio.CancelledError:  # Ctrl-C or a cancelled flow: the request may have left
                self.outcomes[row.index] = Outcome(Status.UNKNOWN, "the run was interrupted while this row was being "
                                                                   "sent; the next run checks it before resending")
                raise
            if outcome.status is Status.REJECTED and _is_conflict(outcome):
                outcome = await self._confirm_conflict(row, entry, outcome)
            outcome = self._masked(row, outcome)
            # committed with the next write of the burst; confirmed at the chunk's end
            if outcome.status is Status.SKIPPED:  # stopped before the request left
                self._writer.record_soon(scope, key, Outcome(Status.FAILED, outcome.message), self.run_id)
            else:
                self._writer.record_soon(scope, key, outcome, self.run_id, phash)
            self._settle(row, outcome)
        finally:
            self._in_flight.discard(row.index)

    async def _check_earlier(self, row: PreparedRow, entry: Entry) -> Outcome | str | None:
        """A row an earlier run may have sent. None: confirmed absent, send it; an Outcome: settled;
        a provider id (text): found, and the mapping's handler should finish it (e.g. schedule it)."""
        scope, key = self.plan.mapping.scope, row.ledger_key
        if self.readback is None:
            if self.options.resend_unknown or (self.plan.mapping.request.idempotent and self.handler is None):
                return None  # the operator checked; or the mapping says a resend cannot book twice (a PUT upsert)
            return Outcome(Status.UNKNOWN, f"run {entry.run_id} may have booked this row ({entry.status}) and "
                                           f"{self.plan.mapping.provider} offers no way to check; check with the provider, "
                                           f"then rerun with --resend-unknown if it is not there")
        try:
            found = await self.readback(self._sender, row.payload, entry=entry)  # e.g. to search around the time the earlier run sent it
        except ReadbackError as exc:
            return Outcome(Status.UNKNOWN, f"run {entry.run_id} may have booked this row and the check failed ({exc}); "
                                           f"it stays unknown until it can be checked")
        if found and self.handler is not None:
            return str(found)
        if found:
            done = Outcome(Status.CREATED, "found at the provider after an earlier uncertain send", provider_id=found)
            self.ledger.record(scope, key, done, self.run_id)
            return Outcome(Status.SKIPPED, f"already created (found at the provider by a check after run {entry.run_id})",
                           provider_id=found)
        return None

    async def _confirm_conflict(self, row: PreparedRow, entry: Entry | None, refused: Outcome) -> Outcome:
        """A "conflict / already exists" answer to a row that may already be at the provider (an earlier run
        left it unknown or sending, or this call was sent more than once) is checked, never taken as a
        rejection: an analyst would move the slot and book the guest twice. Found: created, with the
        provider's id. Not found or unsure: unknown, saying what to check. A fresh row's conflict (sent
        once, nothing before it) stays a rejection, unless the check finds the row is ours after all."""
        uncertain = entry is not None and entry.status in (SENDING, Status.UNKNOWN.value)
        if not uncertain and refused.attempts <= 1:
            return refused
        where = f"run {entry.run_id}" if uncertain and entry is not None else "an earlier attempt of this run"
        said = f"the provider answered {refused.http_status or 'a conflict'} ({refused.message})"
        base = dict(http_status=refused.http_status, attempts=refused.attempts)
        if self.readback is None:
            if not uncertain:
                return refused
            return Outcome(Status.UNKNOWN, f"{said} to a row {where} may have booked, and "
                                           f"{self.plan.mapping.provider} offers no way to check: look for it at the "
                                           f"provider; if it is not there, fix the row or rerun with --resend-unknown",
                           **base)
        try:
            found = await self.readback(self._sender, row.payload, entry=entry)  # e.g. to search around the time the earlier run sent it
        except ReadbackError as exc:
            if not uncertain:
                return refused
            return Outcome(Status.UNKNOWN, f"{said} to a row {where} may have booked, and the check could not be "
                                           f"sure ({exc}): look for it at the provider before changing the row; the "
                                           f"next run checks it again", **base)
        if found:
            if self.handler is not None:  # a multi-step row: the next run finishes it from the found id
                return Outcome(Status.UNKNOWN, f"{said}; {found} found at the provider ({where} created it); the next "
                                               f"run finishes it", provider_id=str(found), stage="found", **base)
            return Outcome(Status.CREATED, f"{said}; the check found it at the provider: {where} had booked it",
                           provider_id=str(found), **base)
        if not uncertain:
            return refused
        return Outcome(Status.UNKNOWN, f"{said} to a row {where} may have booked, but the check did not find it: "
                                       f"look at the provider (e.g. the slot's bookings) before changing the row; "
                                       f"the next run checks it again", **base)

    def _masked_outcome(self, row: PreparedRow) -> Outcome | None:
        """``invalid`` when a sensitive field holds the mask instead of a value (a row copied from a results
        workbook): sending it would set e.g. the customer's password to the mask."""
        m = self.plan.mapping
        paths = self.__dict__.get("_mask_paths")
        if paths is None:  # worked out once per run, not per row
            paths = self._mask_paths = {p: re.sub(r"\[(\d+)\]", r".\1", p) for p in sorted(m.sensitive_paths())}
        hits = masked_fields(row.payload, paths) if paths and row.payload else []
        if not hits:
            return None
        columns = [c for p in hits for c in m.fields[p].columns()] if all(p in m.fields for p in hits) else []
        return Outcome(Status.INVALID, f"{' and '.join(columns or hits)} holds {MASK}, the mask a results workbook shows "
                                       f"instead of the value; it is never sent: type the value again, then rerun",
                       column_messages={c: ["type the value again: this is only the mask"] for c in columns})

    async def _send_row(self, row: PreparedRow, entry: Entry | None = None) -> Outcome:
        if (masked := self._masked_outcome(row)) is not None:  # the last line of defence, whatever built the row
            return masked
        if self.handler is not None:
            return await self.handler(RowContext(self, row, entry))
        return await self.send_default(row)

    async def send_default(self, row: PreparedRow) -> Outcome:
        """The request the mapping describes, as one call."""
        m = self.plan.mapping
        req = m.request
        payload = self.with_run_values(row.payload or {})
        path = req.path
        if "{" in path:  # PUT /WorkOrder/{number}: filled from the row
            try:
                path = path.format_map(_PathValues(payload))
            except KeyError as exc:
                return Outcome(Status.INVALID, f"the request path needs {exc.args[0]}, which is empty")
        if req.body == "form":
            result = await self._sender.call(req.method, path, form=encode_form(payload), idempotent=req.idempotent)
        else:
            result = await self._sender.call(req.method, path, json_body=payload, idempotent=req.idempotent)
        return self.outcome_from(result)

    def outcome_from(self, result: CallResult) -> Outcome:
        req = self.plan.mapping.request
        if result.action is Action.SUCCESS:
            status = Status.ACCEPTED if req.success == "accepted" else Status.CREATED
            pid = _dig(result.json(), req.provider_id) if req.provider_id else None
            return Outcome(status, "", provider_id=None if pid is None else str(pid), http_status=result.status_code,
                           attempts=result.attempts)
        secrets = [*self.auth.secrets(), *([self._callback_token] if self._callback_token else [])]
        base = dict(http_status=result.status_code, attempts=result.attempts)
        if result.action is Action.STOP and result.response is None:
            return Outcome(Status.SKIPPED, f"not sent: the run stopped early: {result.message}", **base)
        if result.action in (Action.STOP, Action.FAIL):
            msg = result.message
            details = _messages_text(result, self.plan.mapper, secrets) if result.response is not None else ""
            if details:  # e.g. an RFC 7807 detail saying which id was not found or which permission is missing
                msg = f"{msg} ({details})"
            return Outcome(Status.FAILED, redact_text(msg, secrets), **base)
        if result.action is Action.UNKNOWN:
            msg = result.message
            if result.response is not None:
                msg = f"{msg} ({_messages_text(result, self.plan.mapper, secrets) or 'no details'})"
            return Outcome(Status.UNKNOWN, redact_text(msg, secrets), **base)
        # REJECT
        pairs = response_messages(result.json(), result.response.text if result.response is not None else "")
        per_column: dict[str, list[str]] = {}
        parts = []
        for fld, msg in pairs:
            col = _column_for(fld, self.plan.mapper) if fld else _column_mentioned(msg, self.plan.mapper)
            msg = redact_text(msg, secrets)
            if col:
                per_column.setdefault(col, []).append(msg)
                parts.append(f"{col}: {msg}")
            else:
                parts.append(f"{fld}: {msg}" if fld else msg)
        detail = "; ".join(parts)
        head = result.message or f"rejected ({result.status_code})"
        return Outcome(Status.REJECTED, f"{head}: {detail}" if detail else head, column_messages=per_column, **base)

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def _masked(self, row: PreparedRow, outcome: Outcome) -> Outcome:
        hidden = self._sensitive_values(row)
        if hidden and outcome.message:  # a provider that echoes a password must not put it in the results or ledger
            outcome = dataclasses.replace(outcome, message=redact_text(outcome.message, hidden), column_messages={
                c: [redact_text(m, hidden) for m in ms] for c, ms in outcome.column_messages.items()})
        return outcome

    def _settle(self, row: PreparedRow, outcome: Outcome) -> None:
        """The row's outcome in this run (the ledger is written by the caller, where the row needs it)."""
        outcome = self._masked(row, outcome)
        self.outcomes[row.index] = outcome
        self.done += 1
        if self.options.progress is not None:
            self.options.progress(self)

    def _sensitive_values(self, row: PreparedRow) -> list[str]:
        paths = self._sensitive_dig_paths
        if not paths or not row.payload:
            return []
        return [str(v) for p in paths if (v := _dig(row.payload, p)) not in (None, "")]

    def mark_interrupted(self) -> None:
        """Ctrl-C or a cancelled flow: rows in flight become unknown, the rest are left 'not sent'."""
        self.interrupted = True
        for i in list(self._in_flight):
            if self.outcomes[i] is None:
                self.outcomes[i] = Outcome(Status.UNKNOWN, "the run was interrupted while this row was being sent; "
                                                           "the next run checks it before resending")
        for r in self.plan.rows:
            if self.outcomes[r.index] is None:
                self.outcomes[r.index] = Outcome(Status.SKIPPED, "not sent: the run was interrupted before this row")

    @property
    def total(self) -> int:
        return len(self.plan.rows)

    def counts(self) -> dict[str, int]:
        return count_statuses(self.outcomes)

    def summary(self) -> dict[str, object]:
        return summarize(self.plan, self.started, self.ended or dt.datetime.now().astimezone(), run=self)

    def _sending_seconds(self) -> float:
        """From the first row handed to the sender to the last settled and committed (not reading,
        checking, logging in or writing the workbook)."""
        started, ended = getattr(self, "sending_started", None), getattr(self, "sending_ended", None)
        return (ended - started) if started is not None and ended is not None else 0.0

    def write_results(self, path: Path | None = None) -> Path:
        self.ended = self.ended or dt.datetime.now().astimezone()
        path = Path(path or self.options.out or default_results_path(self.plan.sheet.path))
        sheet = self.plan.sheet
        self.results_path = write_results(path, columns=sheet.columns, rows=sheet.rows, line_numbers=sheet.line_numbers,
                                          outcomes=self.outcomes, summary=self.summary(),
                                          masked_columns=self.plan.mapping.sensitive_columns(),
                                          number_formats=input_number_formats(sheet.path, sheet.sheet_name,
                                                                              sheet.header_line))
        self.ledger.end_run(self.run_id, results=str(self.results_path), counts=self.counts())
        return self.results_path

    def close(self) -> None:
        writer = getattr(self, "_writer", None)
        try:
            if writer is not None:  # records still queued (a run interrupted mid-burst) are written, not dropped
                writer.flush_now()
        finally:
            try:
                self.release_claims()
            finally:
                self.ledger.close()


@dataclass
class RowContext:
    """What a provider handler (``request.handler``) gets for one row.

    A handler sends the row with :meth:`call` (retries, rate limit, auth and the stop rule
    included), turns answers into outcomes with :meth:`outcome_from`, and records part-way
    progress with :meth:`checkpoint` so a rerun resumes instead of repeating a step.
    ``entry`` is the ledger's record from an earlier run (``provider_id`` and ``stage`` set when
    that run got part-way), or None.
    """

    run: ImportRun
    row: PreparedRow
    entry: Entry | None

    @property
    def payload(self) -> dict[str, Any]:
        return self.run.with_run_values(self.row.payload or {})

    @property
    def mapping(self) -> MappingFile:
        return self.run.plan.mapping

    @property
    def sender(self) -> Sender:
        assert self.run._sender is not None
        return self.run._sender

    async def call(self, method: str, path: str, **kwargs: Any) -> CallResult:
        return await self.sender.call(method, path, **kwargs)

    def outcome_from(self, result: CallResult) -> Outcome:
        return self.run.outcome_from(result)

    def checkpoint(self, provider_id: str | None, stage: str) -> None:
        self.run.ledger.checkpoint(self.mapping.scope, self.row.ledger_key, self.run.run_id,
                                   provider_id=provider_id, stage=stage)

    async def send_default(self) -> Outcome:
        return await self.run.send_default(self.row)

    @property
    def run_state(self) -> dict[str, Any]:
        """A dict every row's handler shares for the length of the run, e.g. the slots other rows are booking."""
        return self.run.handler_state

    def secrets(self) -> list[str]:
        """The run's credentials, to mask in messages."""
        return self.run.auth.secrets()

    def cell(self, column: str) -> Any:
        """The row's value in this sheet column as read (None when the sheet has no such column)."""
        try:
            return self.run.plan.sheet.rows[self.row.index][self.run.plan.mapper.index[column]]
        except (IndexError, KeyError, AttributeError):
            return None

    def request_path(self, payload: dict[str, Any] | None = None) -> str | None:
        """The mapping's ``request.path`` with its ``{placeholders}`` filled from the payload; None when one is empty."""
        try:
            return self.mapping.request.path.format_map(_PathValues(self.payload if payload is None else payload))
        except KeyError:
            return None


async def fetch_lookup(sender: Sender, name: str, spec: Any) -> LookupTable:
    """Every item of a provider list (all pages), as a name -> value table."""
    pairs: list[tuple[str, Any]] = []
    paging = spec.paging
    page = paging.first_page if paging else None
    for _ in range(paging.max_pages if paging else 1):
        params = dict(spec.params)
        if paging:
            params.update({paging.page_param: page, paging.size_param: paging.size})
        try:
            data = await sender.get_json(spec.path, params=params)
        except ReadbackError as exc:
            raise ConfigError(f"could not fetch the provider's {name} list from {spec.path} ({exc}); "
                              f"the names in the sheet cannot be checked, so nothing was sent") from None
        items = _dig(data, spec.items) if spec.items else data
        if not isinstance(items, list):
            raise ConfigError(f"the provider's {name} list at {spec.path} has no list at {spec.items or 'the top level'!r}; "
                              f"check lookups.{name}.items in the mapping")
        pairs.extend((_dig(i, spec.match), _dig(i, spec.value)) for i in items if isinstance(i, dict))
        if not paging or len(items) < paging.size:
            break
        page += 1
    return LookupTable(name, pairs)


# --- the one import sequence ---------------------------------------------------------------------------

#: chunk tasks in flight at once (``send_chunk``): two keep the request pipe full across chunk boundaries
CHUNKS_IN_FLIGHT = 2

#: ``send_chunk(run, chunks, number)``: sends ``chunks[number]`` (the Prefect flow makes it a task)
SendChunk = Callable[["ImportRun", list[list[PreparedRow]], int], Awaitable[dict[str, int]]]


def summarize(plan: Plan, started: dt.datetime, ended: dt.datetime, *, run: ImportRun | None = None,
              mode: str | None = None) -> dict[str, object]:
    """The results workbook's Summary sheet: what was imported, when, and (for a run) how it went."""
    sheet = plan.sheet
    info: dict[str, object] = {"input file": str(sheet.path), "worksheet": sheet.sheet_name or "",
                               "mapping": str(plan.mapping_path), "provider": plan.mapping.provider}
    if run is not None:
        info.update({"base URL": run.base_url, "run id": run.run_id})
    if mode is not None:
        info["mode"] = mode
    info.update({"started": started.isoformat(timespec="seconds"), "ended": ended.isoformat(timespec="seconds"),
                 "duration (s)": round((ended - started).total_seconds(), 3)})
    if run is None:
        info["rows"] = len(plan.rows)
        return info
    sending = run._sending_seconds()
    info.update({
        "sending (s)": round(sending, 3),
        "rows sent per second": round(run.rows_sent / sending) if sending else 0,
        "rows": run.total,
        "concurrency": run.concurrency,
        # no published rate: what adapting did (issue 16), not "none"
        "rate limit (req/s)": run.rate or (run._sender.limiter.describe() if run._sender else "none"),
        "requests sent": run._sender.requests_sent if run._sender else 0,
        "ledger": str(run.ledger.path),
        "ledger id": run.ledger.ledger_id,
        "interrupted": "yes" if run.interrupted else "no",
    })
    if run.held_elsewhere:  # two runs at once: the rows' messages name the run holding each
        info["rows another run was sending (not sent)"] = run.held_elsewhere
    if run.taken_over:
        info["rows taken over from a run that was gone"] = run.taken_over
    if sheet.encoding:
        info["csv encoding"] = sheet.encoding
        info["csv delimiter"] = {"\t": "tab"}.get(sheet.delimiter or "", sheet.delimiter or "")
    if "callback_url" in run.run_values:  # the token is a credential: never shown
        url = run.run_values["callback_url"]
        info["callback URL"] = redact_text(url, [run._callback_token or ""]) if url else "none (no callbacks this run)"
        info["confirmed by callback"] = run.callbacks_confirmed
    if run.options.describe is not None:
        info.update(run.options.describe(run))
    return info


@dataclass
class RunResult:
    """How an import ended: counts by status, the results workbook, and the run (None when validating)."""

    counts: dict[str, int]
    results: Path
    summary: dict[str, object]
    outcomes: list[Outcome | None]
    run: ImportRun | None = None

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run is not None else None

    @property
    def ok(self) -> bool:
        """Every row created, accepted or skipped."""
        return all(o is None or o.ok for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (the Prefect flow's and the inbox's result)."""
        return {"counts": self.counts, "results": str(self.results), "run_id": self.run_id, "summary": self.summary}


async def _send_entered(run: ImportRun, *, send_chunk: SendChunk | None = None, chunk_size: int | None = None,
                        wait_callbacks: float = 0.0) -> None:
    """Send every pending row of an entered run (as one stream, or chunk by chunk through ``send_chunk``),
    wait for callbacks, then leave the run: rows in flight when cancelled become unknown, claims let go."""
    try:
        rows = run.pending()
        if run.options.progress:
            run.options.progress(run)
        if send_chunk is None:  # one stream: sending chunks one after another would drain the pipe at every border
            await run.send(rows)
        else:
            chunks = chunked(rows, chunk_size)
            window = asyncio.Semaphore(CHUNKS_IN_FLIGHT)

            async def one(n: int) -> dict[str, int]:
                async with window:
                    return await send_chunk(run, chunks, n)

            await asyncio.gather(*(one(n) for n in range(len(chunks))))
        if wait_callbacks > 0:  # accepted rows become created as the provider's callbacks arrive
            await run.await_callbacks(wait_callbacks)
    except BaseException as exc:
        await run.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await run.__aexit__(None, None, None)


async def send_pending(run: ImportRun, **how: Any) -> None:
    """Log in, fetch lookups, send every pending row and leave the run (no workbook: :func:`run_import` writes
    it). For callers that build the :class:`ImportRun` themselves; ``how``: send_chunk, chunk_size, wait_callbacks."""
    await run.__aenter__()
    await _send_entered(run, **how)


async def run_import(plan: Plan, options: RunOptions | None = None, *, validate: bool = False,
                     send_chunk: SendChunk | None = None, chunk_size: int | None = None, wait_callbacks: float = 0.0,
                     callback_port: int = 0, on_run: Callable[[ImportRun], None] | None = None) -> RunResult:
    """Import a prepared sheet: reconcile with the ledger (rows done are skipped, rows claimed), send, wait
    for callbacks, write the results workbook. On an error or Ctrl-C the workbook holds what was done; a
    refusal at login or lookups (an ImporterError before anything is sent) writes none.

    ``validate``: send nothing and need no credentials or ledger: invalid rows are marked, the rest skipped.
    ``send_chunk``: send chunk by chunk through it (the Prefect flow makes each a task), else one stream.
    ``wait_callbacks``: for a mapping with a ``run_value: callback_url`` field, receive the provider's
    callbacks in-process (on 127.0.0.1:``callback_port``) and wait up to this many seconds for accepted rows.
    ``on_run``: called with the run once it exists (the CLI keeps it to report a Ctrl-C)."""
    options = options or RunOptions()
    if validate:
        return _validate(plan, options)
    receiver = contextlib.ExitStack()
    with receiver:
        wait = wait_callbacks if "callback_url" in plan.mapping.run_value_paths().values() else 0.0
        if wait > 0 and options.callback_url is None:  # no receiver of the caller's: one in-process
            readers = {plan.mapping.provider: plan.mapping.request.callback} if plan.mapping.request.callback else {}
            url = receiver.enter_context(receiving(options.ledger_url, port=callback_port, readers=readers))
            options = dataclasses.replace(options, callback_url=url)
        run = ImportRun(plan, options)
        if on_run is not None:
            on_run(run)
        written = False
        try:
            try:
                await run.__aenter__()  # logs in and fetches lookups: a refusal here means nothing was sent
            except ImporterError:
                written = True  # no workbook: the caller reports the one-line error
                raise
            await _send_entered(run, send_chunk=send_chunk, chunk_size=chunk_size, wait_callbacks=wait)
            path = run.write_results()
            written = True
        finally:
            if not written:  # interrupted or crashed: still hand back what was done
                run.mark_interrupted()
                run.write_results()
            run.close()
    return RunResult(run.counts(), path, run.summary(), run.outcomes, run)


def _validate(plan: Plan, options: RunOptions) -> RunResult:
    """Everything a run checks, without network, credentials or ledger: a workbook with invalid rows marked."""
    started = dt.datetime.now().astimezone()
    outcomes: list[Outcome | None] = [
        Outcome(Status.INVALID, "; ".join(map(str, r.problems)), column_messages=_by_column(r.problems))  # marks the cells
        if r.payload is None else Outcome(Status.SKIPPED, "valid; not sent (validate only)") for r in plan.rows]
    path = Path(options.out or default_results_path(plan.sheet.path))
    summary = summarize(plan, started, dt.datetime.now().astimezone(), mode="validate (nothing sent)")
    sheet = plan.sheet
    written = write_results(path, columns=sheet.columns, rows=sheet.rows, line_numbers=sheet.line_numbers,
                            outcomes=outcomes, summary=summary, masked_columns=plan.mapping.sensitive_columns(),
                            number_formats=input_number_formats(sheet.path, sheet.sheet_name, sheet.header_line))
    return RunResult(count_statuses(outcomes), written, summary, outcomes)


def default_results_path(sheet_path: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("out") / f"{Path(sheet_path).stem}.results-{stamp}.xlsx"


class _PathValues(dict):
    def __init__(self, payload: dict) -> None:
        super().__init__()
        self._payload = payload

    def __missing__(self, key: str) -> str:
        value = _dig(self._payload, key)
        if value in (None, ""):
            raise KeyError(key)
        return _quote(str(value))


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _dig(data: Any, path: str | None) -> Any:
    if data is None or not path:
        return None
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def _fill_run_values(value: Any, values: Mapping[str, str | None]) -> Any:
    """A copy of a payload with each RunValue placeholder replaced; a placeholder whose value is None is left out."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _fill_run_values(v, values)
            if not isinstance(v, RunValue):
                out[k] = v
        return out
    if isinstance(value, list):
        return [v for v in (_fill_run_values(v, values) for v in value) if not isinstance(v, RunValue)]
    if isinstance(value, RunValue) and values.get(value.name) is not None:
        return values[value.name]
    return value


_CONFLICT_WORDS = re.compile(r"\b(conflict|duplicate|already (exists|booked|taken|created))\b", re.IGNORECASE)


def _is_conflict(outcome: Outcome) -> bool:
    """A refusal that may mean "you sent this before": 409, or a refusal that says it is a duplicate."""
    return outcome.http_status == 409 or bool(_CONFLICT_WORDS.search(outcome.message or ""))


def _by_column(problems: list[Problem]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in problems:
        if p.column:
            out.setdefault(p.column, []).append(p.message)
    return out


def _column_for(field_name: str, mapper: RowMapper) -> str | None:
    """The sheet column of the payload field a provider names: case-insensitive ("OrderNumber"), list indexes
    and a JSON-path "$." ignored; the full path wins over a last-segment match. None when the name fits
    several columns (customFields[0].value: list items are renumbered once empty ones are dropped)."""
    want = re.sub(r"\[\d+\]", "", field_name.strip().removeprefix("$.")).casefold()
    full: dict[str, None] = {}
    last: dict[str, None] = {}
    for path, cols in mapper.columns_for.items():
        if not cols:
            continue
        norm = re.sub(r"\[\d+\]", "", path).casefold()
        if norm == want:
            full[" + ".join(cols)] = None
        elif norm.rsplit(".", 1)[-1] == want:
            last[" + ".join(cols)] = None
    found = full or last
    return next(iter(found)) if len(found) == 1 else None


def _column_mentioned(message: str, mapper: RowMapper) -> str | None:
    """The sheet column(s) of the payload fields a free-text message names.

    Names are compared with case, spaces and ``_ . [ ] -`` ignored, so "bookingReference field is
    Missing or Empty.", "Booking Reference is empty", "bookingFields[username] field ..." and
    "bookingFields.username ..." all find their field; a field's full path beats a sheet column's
    name, which beats a last path segment shared by several fields (then it names none). Where
    names overlap the longest wins; a message naming several fields ("username or email_address")
    gets all their columns, joined with " + ".
    """
    tokens = re.findall(r"[^\W_]+", message.casefold())
    if not tokens:
        return None
    names: dict[str, str | None] = {}  # squashed name -> column text (None: ambiguous)
    tiers: list[dict[str, set[str]]] = [{}, {}, {}]
    for path, cols in mapper.columns_for.items():
        if not cols:
            continue
        col = " + ".join(cols)
        norm = re.sub(r"\[\d+\]", "", path)
        for tier, candidates in zip(tiers, ([norm], cols, [norm.rsplit(".", 1)[-1]])):
            for candidate in candidates:
                key = "".join(re.findall(r"[^\W_]+", candidate.casefold()))
                if len(key) >= 3:
                    tier.setdefault(key, set()).add(col)
    for tier in tiers:
        for key, cols in tier.items():
            if key not in names:
                names[key] = next(iter(cols)) if len(cols) == 1 else None
    longest = max(len(k) for k in names) if names else 0
    spans: list[tuple[int, int, int, str | None]] = []  # (-length, start, end, column)
    for i in range(len(tokens)):
        key = ""
        for j in range(i, len(tokens)):
            key += tokens[j]
            if len(key) > longest:
                break
            if key in names:
                spans.append((-len(key), i, j + 1, names[key]))
    taken: list[tuple[int, int, str | None]] = []
    for _, start, end, col in sorted(spans):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, col))
    found = dict.fromkeys(c for _, _, c in sorted(taken) if c is not None)
    return " + ".join(found) if found else None


def _messages_text(result: CallResult, mapper: RowMapper, secrets: list[str]) -> str:
    text = result.response.text if result.response is not None else ""
    pairs = response_messages(result.json(), text)
    return "; ".join(f"{f}: {m}" if f else m for f, m in pairs)
