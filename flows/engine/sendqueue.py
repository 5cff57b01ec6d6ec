"""The rows of one ``send()``, in order, their "sending" marks committed ahead in batches: :class:`SendQueue`.

The ledger's rule is unchanged: a row's "sending" mark is committed before its request leaves. What
changed is when: instead of one transaction per burst of requests (with answers spread out in time,
nearly one per request), the marks of the next rows in the queue are written together, ``window // 2``
or more in one transaction, before the first of them is handed to a worker. A worker that takes a
row whose mark is committed sends at once; one whose batch is still being written waits for that
commit (the batch's one future).

The price is what a *killed* process leaves behind: up to ``window`` rows marked "sending" whose
requests never left. The next run treats them as it treats any "sending" row: it checks them with
the provider before resending (the mapping's ``readback``), or leaves them ``unknown`` where the
provider offers no check; nothing is sent twice. One cost follows: such a row whose resend is refused
with a conflict (its slot taken by another row meanwhile) stays ``unknown`` rather than ``rejected``,
since the check does not find it and nothing says its request never left. A run that stops in an
orderly way (the credentials refused, Ctrl-C, a lost lease) takes back the marks of the rows it did not send
(:meth:`flows.ledger.ledger.Ledger._unmark_sql`), so they stay as they were.

Only rows that need nothing checked first are marked ahead: new to the ledger, or settled as not
booked (failed, rejected, ...) in an earlier run, and sent with the mapping's one request (no
``handler``). A row an earlier run left "sending" or ``unknown`` is checked with the provider first,
then marked on its own, as before.
"""
from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from ..ledger.group_commit import GroupCommit
from ..ledger.ledger import Entry, payload_hash
from .plan import PreparedRow

__all__ = [
    "Premark",
    "SendQueue",
    "mark_window",
]


class Premark(NamedTuple):
    """A row marked "sending" ahead: the commit to wait for, the payload hash marked, the row's ledger key,
    its ledger record before the mark (to put back if the row is not sent), and the payload hashed, which is
    the one sent (built once for both: :meth:`~flows.engine.plan.PreparedRow.payload_for_send`)."""

    committed: asyncio.Future[None]
    phash: str
    key: str
    before: Entry | None
    body: dict[str, Any]


def mark_window(concurrency: int, rate: float | None) -> int:
    """How many rows are marked ahead at most: twice the concurrency, at least 32; with a published rate, no
    more than a quarter of a second of it (a killed run then leaves few rows to check)."""
    window = max(2 * concurrency, 32)
    if rate:
        window = min(window, max(1, math.ceil(rate / 4)))
    return window


class SendQueue:
    """Hands out ``rows`` in order, each with its :class:`Premark` (None: mark it the usual way). ``marked``
    is the run's record of the rows marked and not yet handed out (shared by the queues of one run)."""

    def __init__(self, rows: list[PreparedRow], writer: GroupCommit, marked: dict[int, Premark], *, scope: str,
                 run_id: str, window: int,
                 before: Callable[[PreparedRow, str], tuple[bool, Entry | None]]) -> None:
        self._rows = rows
        self._writer = writer
        self._marked = marked
        self._scope = scope
        self._run_id = run_id
        self.window = max(1, window)
        #: (may it be marked ahead, its ledger record now), given the row and its ledger key
        self._before = before
        self._next = 0  # the next row handed out
        self._considered = 0  # rows up to here were marked ahead or found not to qualify
        self._waiting = 0  # rows marked ahead, not yet handed out

    def __len__(self) -> int:
        return len(self._rows) - self._next

    def pop(self) -> tuple[PreparedRow, Premark | None] | None:
        """The next row and its mark (None when none is left)."""
        if self._next >= len(self._rows):
            return None
        if self._waiting <= self.window // 2:
            self._mark_ahead()
        row = self._rows[self._next]
        self._next += 1
        premark = self._marked.pop(row.index, None)
        if premark is not None:
            self._waiting -= 1
        return row, premark

    def _mark_ahead(self) -> None:
        """Mark the next rows that qualify, up to ``window`` waiting, in one transaction."""
        rows, i = self._rows, max(self._considered, self._next)
        room = self.window - self._waiting
        taken: list[tuple[PreparedRow, str, Entry | None]] = []
        while i < len(rows) and len(taken) < room:
            row = rows[i]
            i += 1
            key = row.ledger_key  # worked out once here, then carried in the Premark
            ok, before = self._before(row, key)
            if ok:
                taken.append((row, key, before))
        self._considered = i
        if not taken:
            return
        bodies = [row.payload_for_send() for row, _, _ in taken]
        hashes = [payload_hash(body) for body in bodies]
        committed = self._writer.mark_many([(self._scope, key, self._run_id, h)
                                            for (_, key, _), h in zip(taken, hashes, strict=True)])
        for (row, key, before), phash, body in zip(taken, hashes, bodies, strict=True):
            self._marked[row.index] = Premark(committed, phash, key, before, body)
        self._waiting += len(taken)
