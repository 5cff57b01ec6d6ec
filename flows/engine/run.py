"""The import: :class:`ImportRun` (log in, reconcile, send, stop, workbook) and :func:`run_import`, the one
sequence every caller uses; a :class:`~flows.engine.plan.Plan` (flows/engine/plan.py) is what it imports.

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
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, ImporterError
from ..hooks import Handler, Readback, resolve
from ..http.auth import Auth, build_auth
from ..http.callbacks import receiving
from ..http.ratelimit import shared_timeline_for
from ..http.sender import Sender, Transport, encode_form
from ..ledger.claims import DEFAULT_ROW_LEASE_SECONDS, Heartbeat, RowClaims
from ..ledger.group_commit import GroupCommit
from ..ledger.ledger import SENDING, Entry, Ledger, open_ledger, payload_hash
from ..mapping.transforms import LookupTable
from ..outcomes import Outcome, Status
from ..workbooks.results import input_number_formats, write_results
from .answers import is_conflict
from .context import RowContext
from .lookups import fetch_lookup
from .payloads import PathValues, fill_run_values
from .plan import Plan, PreparedRow, by_column, chunked, map_rows
from .resume import Reconciling
from .run_values import run_values
from .sendqueue import Premark, SendQueue, mark_window
from .summary import RunResult, count_statuses, default_results_path, summarize, validated

__all__ = [
    "UNSET",
    "ImportRun",
    "RunOptions",
    "run_import",
    "send_pending",
]


# --- run ---------------------------------------------------------------------------------------------

UNSET: Any = object()


@dataclass
class RunOptions:
    concurrency: int | None = None  # None: the mapping's
    rate: float | None = UNSET  # UNSET: the mapping's; None: no limit
    ledger_url: str | None = None
    out: Path | None = None
    env: Mapping[str, str] | None = None
    transport: Transport | None = None  # tests: an aiohttp connector to send through (flows/http/client.py)
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


class ImportRun(Reconciling):
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
        if (urlsplit(self.base_url).hostname or "").endswith(".invalid"):  # RFC 2606: a placeholder, never a real host
            raise ConfigError(f"the base URL {self.base_url} is a placeholder: {m.provider} addresses differ per "
                              f"customer, so set {m.env_prefix}_BASE_URL to yours (e.g. in a .env file)")
        self.auth: Auth = build_auth(m.connection.auth, m.provider, env)
        self.concurrency = options.concurrency or m.connection.concurrency
        self.rate = m.connection.rate if options.rate is UNSET else options.rate
        self.readback: Readback | None = resolve(m.request.readback) if m.request.readback else None
        self.handler: Handler | None = resolve(m.request.handler) if m.request.handler else None
        #: sensitive field paths as dig reads them (a[0].b -> a.0.b), worked out once, not per row
        self._sensitive_dig_paths = [re.sub(r"\[(\d+)\]", r".\1", p) for p in m.sensitive_paths()]
        self.lookup_sizes: dict[str, int] = {}
        #: shared by every row's handler for the length of the run (RowContext.run_state)
        self.handler_state: dict[str, Any] = {}
        self.run_values, self._callback_token = run_values(m, env, base_url=self.base_url,
                                                           in_process=options.callback_url)
        self.callbacks_confirmed = 0  # accepted rows settled by the provider's callback while this run waited
        self.ledger: Ledger = open_ledger(options.ledger_url)
        if self._callback_token:
            self.ledger.add_callback_token(self._callback_token, run_id=self.run_id, scope=m.scope, provider=m.provider)
        self.outcomes: list[Outcome | None] = [None] * len(plan.rows)
        for r in plan.rows:
            if not r.is_valid:
                self.outcomes[r.index] = Outcome(Status.INVALID, "; ".join(str(p) for p in r.problems),
                                                 column_messages=by_column(r.problems))
        self.settled: dict[int, Outcome] = dict(options.settled or {})
        for i, outcome in self.settled.items():
            self.outcomes[i] = outcome
        for r in plan.rows:  # a results workbook's mask (••••••) in a sensitive field is never sent (flows/redact.py)
            if r.is_valid and self.outcomes[r.index] is None and (masked := self._masked_outcome(r)):
                self.outcomes[r.index] = masked
        self.started = dt.datetime.now().astimezone()
        self.ended: dt.datetime | None = None
        self.done = sum(o is not None for o in self.outcomes)
        self.interrupted = False
        self._in_flight: set[int] = set()
        self._entries: dict[str, Entry] = {}
        self._premarked: dict[int, Premark] = {}  # rows marked "sending" ahead, not yet handed to a worker
        self._sender: Sender | None = None
        self._semaphore: asyncio.Semaphore | None = None
        #: the ledger's writes while sending, batched (flows/ledger/group_commit.py); a new one each `async with`
        self._writer = GroupCommit(self.ledger)
        self.sending_started: float | None = None
        self.sending_ended: float | None = None
        self.rows_sent = 0
        self.results_path: Path | None = None
        self.ledger.start_run(self.run_id, input=str(plan.sheet.path), mapping=str(plan.mapping_path),
                              provider=m.provider)
        # two runs at once: rows are claimed before they are sent (pending(), send()); the lease is recorded now
        self.claims = RowClaims(self.ledger, self.run_id,
                                lease_seconds=options.lease_seconds or DEFAULT_ROW_LEASE_SECONDS)
        self.claims.start()
        self._claimed: set[int] = set()  # row indexes this run holds
        self.held_elsewhere = 0  # rows not sent because another live run holds them
        self.taken_over = 0  # rows taken over from a run that is gone
        self._heartbeat: Heartbeat | None = None
        self._lease_lost = False

    # -- run values (``run_value:`` fields: flows/engine/run_values.py) ------------------------------

    def with_run_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload as sent: ``run_value`` placeholders replaced by this run's values (left out when None)."""
        return fill_run_values(payload, self.run_values) if self.run_values else payload

    # -- sending --------------------------------------------------------------------------------------

    def sender(self) -> Sender:
        m = self.plan.mapping
        return Sender(base_url=self.base_url, auth=self.auth, concurrency=self.concurrency, rate=self.rate,
                      timeout=m.connection.timeout_seconds, connect_timeout=m.connection.connect_timeout_seconds,
                      attempts=m.retry.attempts, backoff=m.retry.backoff_seconds,
                      max_backoff=m.retry.max_backoff_seconds,
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
        tables = {name: await fetch_lookup(self._open_sender, name, spec)
                  for name, spec in self.plan.mapping.lookups.items()}
        plan = self.plan
        self.plan = map_rows(plan.mapping, plan.mapping_path, plan.sheet, tables)
        self.lookup_sizes = {name: len(t.names) for name, t in tables.items()}
        for r in self.plan.rows:
            if r.index in self.settled:
                continue
            if (earlier := self.outcomes[r.index]) is not None and earlier.status is Status.INVALID:
                self.outcomes[r.index] = None
                self.done -= 1
            if not r.is_valid:
                self.outcomes[r.index] = Outcome(Status.INVALID, "; ".join(str(p) for p in r.problems),
                                                 column_messages=by_column(r.problems))
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
        for premark in self._premarked.values():  # marked ahead but never handed out (interrupted): taken back
            self._unmark(premark)
        self._premarked.clear()
        try:  # a settled row must be in the ledger before another run may claim it
            self._writer.flush_now()
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
        queue = SendQueue(rows, self._writer, self._premarked, scope=self.plan.mapping.scope, run_id=self.run_id,
                          window=mark_window(self.concurrency, self.rate), before=self._markable)
        semaphore = self._semaphore

        async def worker() -> None:
            while (item := queue.pop()) is not None:
                async with semaphore:
                    await self._process(*item)

        if self.sending_started is None:
            self.sending_started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(rows)))))
        await self.confirm_writes()
        self.sending_ended = time.perf_counter()
        self.rows_sent += len(rows)
        return count_statuses(self.outcomes[r.index] for r in given)

    async def confirm_writes(self) -> None:
        """Wait until every queued ledger record is committed (raises if one could not be)."""
        await self._writer.confirm()

    async def _process(self, row: PreparedRow, premark: Premark | None = None) -> None:
        sender = self._sender
        assert sender is not None
        if sender.stopped:
            self._unmark(premark)
            self._settle(row, Outcome(Status.SKIPPED, f"not sent: the run stopped early: {sender.stopped}"))
            return
        if self._lease_lost or row.index not in self._claimed or self.claims.expired():  # the claim check
            self._unmark(premark)
            self._settle(row, Outcome(Status.SKIPPED, "not sent: this run's claim on its rows ran out (the process "
                                                      "stalled longer than its lease) and another run may hold the "
                                                      "row; rerun after it ends", needs_rerun=True))
            return
        scope = self.plan.mapping.scope
        key = premark.key if premark is not None else row.ledger_key
        entry = self._entries.get(key)
        self._in_flight.add(row.index)
        try:
            resumable = self.handler is not None and entry is not None and entry.stage and entry.provider_id
            if premark is not None:  # marked ahead, nothing to check first: sent once its mark is committed
                phash = premark.phash
                await premark.committed
            elif entry is not None and entry.status in (SENDING, Status.UNKNOWN.value) and not resumable:
                settled = await self._check_earlier(row, entry)
                if isinstance(settled, str):  # found at the provider; a multi-step handler finishes it
                    entry = dataclasses.replace(entry, provider_id=settled, stage="found")
                elif settled is not None:
                    self._settle(row, settled)
                    return
            if premark is None:
                phash = payload_hash(row.body)
                await self._writer.mark_sending(scope, key, self.run_id, phash)
            try:
                outcome = await self._send_row(row, entry, premark.body if premark is not None else None)
            except asyncio.CancelledError:  # Ctrl-C or a cancelled flow: the request may have left
                self.outcomes[row.index] = Outcome(Status.UNKNOWN, "the run was interrupted while this row was being "
                                                                   "sent; the next run checks it before resending")
                raise
            if outcome.status is Status.REJECTED and is_conflict(outcome):
                outcome = await self._confirm_conflict(row, entry, outcome)
            outcome = self._masked(row, outcome)
            # committed with the next write of the burst; confirmed at the chunk's end
            if outcome.status is Status.SKIPPED:  # stopped before the request left
                self._writer.record_soon(scope, key, Outcome(Status.FAILED, outcome.message), self.run_id)
            elif outcome.status is Status.INVALID:  # never left (a mask, an empty path value): not recorded
                self._unmark(premark)
            else:
                self._writer.record_soon(scope, key, outcome, self.run_id, phash)
            self._settle(row, outcome)
        finally:
            self._in_flight.discard(row.index)

    async def _send_row(self, row: PreparedRow, entry: Entry | None = None,
                        body: dict[str, Any] | None = None) -> Outcome:
        """``body``: the row's payload as built for this send (:meth:`PreparedRow.payload_for_send`), else read."""
        if (masked := self._masked_outcome(row, body)) is not None:  # the last line of defence, whatever built the row
            return masked
        if self.handler is not None:
            return await self.handler(RowContext(self, row, entry))
        return await self.send_default(row, body)

    async def send_default(self, row: PreparedRow, body: dict[str, Any] | None = None) -> Outcome:
        """The request the mapping describes, as one call (``body``: the row's payload, when already built)."""
        m = self.plan.mapping
        req = m.request
        payload = self.with_run_values(body if body is not None else (row.payload or {}))
        path = req.path
        if "{" in path:  # PUT /WorkOrder/{number}: filled from the row
            try:
                path = path.format_map(PathValues(payload))
            except KeyError as exc:
                return Outcome(Status.INVALID, f"the request path needs {exc.args[0]}, which is empty")
        if req.body == "form":
            result = await self._open_sender.call(req.method, path, form=encode_form(payload),
                                                  idempotent=req.idempotent)
        else:
            result = await self._open_sender.call(req.method, path, json_body=payload, idempotent=req.idempotent)
        return self.outcome_from(result)


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
        started, ended = self.sending_started, self.sending_ended
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
        try:  # records still queued (a run interrupted mid-burst) are written, not dropped
            self._writer.flush_now()
        finally:
            try:
                self.release_claims()
            finally:
                self.ledger.close()


# --- the one import sequence ---------------------------------------------------------------------------

#: chunk tasks in flight at once (``send_chunk``): two keep the request pipe full across chunk boundaries
CHUNKS_IN_FLIGHT = 2

#: ``send_chunk(run, chunks, number)``: sends ``chunks[number]`` (the Prefect flow makes it a task)
SendChunk = Callable[["ImportRun", list[list[PreparedRow]], int], Awaitable[dict[str, int]]]


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
        return validated(plan, options.out)
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
