"""Many rows' ledger writes in one transaction: :class:`GroupCommit`."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..outcomes import Outcome
from .database import Params, Statement, _now
from .ledger import _NOT_RECORDED, _RECORD_SQL, Entry, Ledger

__all__ = [
    "GroupCommit",
]


class GroupCommit:
    """Many rows' ledger writes in one transaction, each writer still waiting for its own commit.

    With several requests in flight, their "about to send" and "settled" records arrive together;
    committing them one transaction each cost a third of the engine's time per row. Here the first
    write of a burst schedules a flush a few turns of the event loop later, the others join it, and
    every caller resumes only once the batch holding its statement is committed, so "committed
    before the request leaves" holds exactly as before. A batch shares one future and one
    timestamp (its records' ``updated_at``): per-row futures and clock reads were most of what the
    ledger cost a row (bench/RESULTS.md).

    A settled row's record may instead be queued (record_soon) to share the transaction of the next
    "sending" marks: if the process dies before that commit, the row is simply still "sending" in
    the ledger and the next run checks it with the provider, as for a request in flight. Such a
    record opens no transaction of its own: it waits for the next marks, or at most
    ``record_delay`` seconds (0.05). With answers spread out in time (a real network's jitter),
    a transaction per answer had cost more than the requests themselves (bench/README.md).
    :meth:`confirm` waits until everything queued is committed.

    :meth:`mark_many` marks several rows in one transaction, before any of them is sent (the engine
    marks the rows next in its queue ahead: flows/engine/sendqueue.py)."""

    def __init__(self, ledger: Ledger, turns: int = 6, record_delay: float = 0.05) -> None:
        self.ledger = ledger
        #: turns of the event loop a batch stays open, so the answers of more polls for I/O join it. For
        #: 10,000 rows at concurrency 8 and 0 ms: 1 turn, 6,300 transactions; 2: 3,900; 3: 2,700-3,500; 6:
        #: 2,500-2,900 (and 1,050 -> 700 at concurrency 64), each ~50-90 µs of CPU. It levels off there: a
        #: row waiting for its mark is a request not in flight, so about half the workers share a batch. A
        #: turn with nothing else to do is a poll with no wait: microseconds, even at 50 ms latency.
        self.turns = max(1, turns)
        self._turns_left = 0
        self._pending: list[tuple[Callable[..., Statement | None], Params]] = []
        self._batch: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self.record_delay = record_delay
        self._timer: asyncio.TimerHandle | None = None
        self.transactions = 0

    def mark_sending(self, scope: str, key: str, run_id: str, phash: str) -> asyncio.Future[None]:
        """Await the result: it resolves once the mark is committed."""
        return self._enqueue(Ledger._sending_sql, (scope, key, run_id, phash))

    def mark_many(self, marks: list[tuple[str, str, str, str]]) -> asyncio.Future[None]:
        """Mark these rows (scope, key, run id, payload hash) "sending" in one transaction; await the result: it
        resolves once they are committed."""
        for args in marks:
            self._pending.append((Ledger._sending_sql, args))
        return self._open()

    def unmark_soon(self, scope: str, key: str, run_id: str, before: Entry | None) -> None:
        """Queue taking back this run's "sending" mark of a row whose request never left (see
        :meth:`Ledger._unmark_sql`); committed like a :meth:`record_soon`."""
        self._pending.append((Ledger._unmark_sql, (scope, key, run_id, before)))
        self._soon()

    async def record(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        if outcome.status not in _NOT_RECORDED:
            await self._enqueue(Ledger._record_sql, (scope, key, outcome, run_id, phash))

    def record_soon(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        """Queue a settled row without waiting: it commits with the next write of the burst (typically
        the same worker's "sending" mark for its next row, so one transaction serves both)."""
        if outcome.status not in _NOT_RECORDED:
            self._pending.append((Ledger._record_sql, (scope, key, outcome, run_id, phash)))
            self._soon()

    def _soon(self) -> None:
        """A queued write commits with the next batch, or in ``record_delay`` seconds when none comes."""
        if self._batch is None and self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # outside the event loop (a run closing): flush_now writes it
                return
            self._timer = loop.call_later(self.record_delay, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self._pending and self._batch is None:
            self._open()

    async def confirm(self) -> None:
        """Wait until every queued record is committed; raises if a batch could not be."""
        if self._pending and self._batch is None:
            self._open()
        if self._batch is not None:
            with contextlib.suppress(Exception):  # a failed batch leaves its error in _error, raised below
                await asyncio.shield(self._batch)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _enqueue(self, make: Callable[..., Statement | None], args: Params) -> asyncio.Future[None]:
        self._pending.append((make, args))
        return self._open()

    def _open(self) -> asyncio.Future[None]:
        """The batch the writes queued so far commit in (one is opened when none is)."""
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            self._turns_left = self.turns - 1
            loop.call_soon(self._flush)
        return self._batch

    def flush_now(self) -> None:
        """Write what is queued at once, outside the event loop's turns (a run closing after Ctrl-C must
        not leave settled rows unwritten)."""
        self._turns_left = 0
        with contextlib.suppress(RuntimeError):  # the batch's waiters belong to an event loop already closed
            self._flush()

    def _flush(self) -> None:
        if not self._pending and self._batch is None:  # flushed already (flush_now)
            return
        if self._turns_left > 0:  # let one more round of answers join this transaction
            self._turns_left -= 1
            asyncio.get_running_loop().call_soon(self._flush)
            return
        batch, self._pending = self._pending, []
        done, self._batch = self._batch, None
        if self._timer is not None:  # the queued records go with this batch
            self._timer.cancel()
            self._timer = None
        now = _now()
        try:
            statements = [st for make, args in batch if (st := make(*args, now=now)) is not None]
            self.ledger.write_many(_records_first(statements))
            self.transactions += 1
        except BaseException as exc:
            self._error = exc
            if done is not None and not done.done():
                done.set_exception(exc)
                done.exception()  # retrieved here: a queued record may have no waiter but confirm()
            return
        if done is not None and not done.done():
            done.set_result(None)


def _records_first(statements: list[Statement]) -> list[Statement]:
    """Settled records before "sending" marks, so each kind reaches the database in one executemany,
    unless a row has both in the batch (then the order they were queued in is kept)."""
    records = [st for st in statements if st[0] is _RECORD_SQL]
    if not records or len(records) == len(statements):
        return statements
    marks = [st for st in statements if st[0] is not _RECORD_SQL]
    if {p[:2] for _, p in records} & {p[:2] for _, p in marks}:  # (scope, key)
        return statements
    return records + marks
