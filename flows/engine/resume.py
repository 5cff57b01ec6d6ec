"""Reconciling a run with the ledger: rows done skipped, rows claimed, rows an earlier run may have sent checked."""
from __future__ import annotations

import asyncio
import time

from ..hooks import Handler, Readback
from ..http.sender import ReadbackError, Sender
from ..ledger.claims import RowClaims
from ..ledger.group_commit import GroupCommit
from ..ledger.ledger import SENDING, Entry, Ledger, same_payload, settled_since
from ..outcomes import DONE_STATUSES, Outcome, Status
from .answers import Answering, CallFacts
from .plan import PreparedRow
from .sendqueue import Premark

__all__ = [
    "Reconciling",
]


_DONE_VALUES = frozenset(s.value for s in DONE_STATUSES)


class Reconciling(Answering):
    """The part of an :class:`~flows.engine.run.ImportRun` that asks the ledger and the provider what happened before.

    The attributes below are set by ``ImportRun``; they are declared here for the type checker."""

    run_id: str
    ledger: Ledger
    claims: RowClaims
    readback: Readback | None
    handler: Handler | None
    _sender: Sender | None
    #: the ledger's record of each row about to be sent, by ledger key (read by pending())
    _entries: dict[str, Entry]
    _claimed: set[int]
    #: the ledger's writes while sending, and the rows marked "sending" ahead (flows/engine/sendqueue.py)
    _writer: GroupCommit
    _premarked: dict[int, Premark]
    held_elsewhere: int
    taken_over: int
    callbacks_confirmed: int

    @property
    def _open_sender(self) -> Sender:
        """The sender of a run inside ``async with run:`` (a programming error elsewhere)."""
        if self._sender is None:
            raise RuntimeError("use `async with run:` around sending")
        return self._sender

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
            waiting = any(o is not None and o.status is Status.ACCEPTED for o in self.outcomes)
            if time.monotonic() >= deadline or not waiting:
                break
            await asyncio.sleep(poll)
        self.callbacks_confirmed += changed
        return changed

    # -- the rows to send, after the ledger has had its say -------------------------------------------

    def _markable(self, row: PreparedRow, key: str) -> tuple[bool, Entry | None]:
        """May the row (``key``: its ledger key) be marked "sending" ahead (flows/engine/sendqueue.py), and its
        ledger record now."""
        entry = self._entries.get(key)
        return (self.handler is None and row.index in self._claimed
                and (entry is None or entry.status not in (SENDING, Status.UNKNOWN.value))), entry

    def _unmark(self, premark: Premark | None) -> None:
        """A row marked ahead is not sent after all: its mark is taken back (committed with the next batch)."""
        if premark is not None:
            self._writer.unmark_soon(self.plan.mapping.scope, premark.key, self.run_id, premark.before)


    def pending(self) -> list[PreparedRow]:
        """Valid rows not yet settled in this run, minus those the ledger says are done (skipped here), minus
        those another live run holds (skipped, naming it). The rest are claimed for this run, in one batch."""
        scope = self.plan.mapping.scope
        todo = [r for r in self.plan.rows if r.is_valid and self.outcomes[r.index] is None]
        keys = [r.ledger_key for r in todo]  # worked out once here (a million rows: a second or more each time)
        self._entries = entries = self.ledger.get_many(scope, keys)
        out, out_keys = [], []
        for r, key in zip(todo, keys, strict=True):
            entry = entries.get(key)
            if entry is not None and entry.status in _DONE_VALUES:
                self._skip_done(r, entry)
            else:
                out.append(r)
                out_keys.append(key)
        del todo, keys
        return self._claim(out, reread=True, keys=out_keys)

    def _skip_done(self, r: PreparedRow, entry: Entry) -> None:
        note = ""
        if entry.payload_hash and not same_payload(entry.payload_hash, r.body):
            note = "; the row's values differ from what was sent then: change it at the provider, not by rerunning"
        self._settle(r, Outcome(Status.SKIPPED, f"already {entry.status} by run {entry.run_id} "
                                                f"(provider id {entry.provider_id or 'not given'}){note}",
                                provider_id=entry.provider_id, http_status=entry.http_status))

    def _claim(self, rows: list[PreparedRow], *, reread: bool = False,
               keys: list[str] | None = None) -> list[PreparedRow]:
        """Claim these rows in the ledger (a batch of keys per statement, not a transaction per row). Returns
        those this run may send; a row another live run holds is settled ``skipped``, naming that run.
        ``reread``: read the ledger again for the rows won, since the run that held one until a moment ago
        may have settled it (then it is skipped as done), or left it ``sending`` (then it is checked).
        ``keys``: the rows' ledger keys, when the caller has them."""
        claimed = self._claimed
        if all(r.index in claimed for r in rows):
            return rows
        keys = keys if keys is not None else [r.ledger_key for r in rows]
        scope = self.plan.mapping.scope
        new = [k for r, k in zip(rows, keys, strict=True) if r.index not in claimed]
        got = self.claims.claim(scope, new)
        self.taken_over += len(got.taken_over)
        if reread and got.won:
            self._entries.update(self.ledger.get_many(scope, [k for k in new if k in got.won]))
        out = []
        for r, key in zip(rows, keys, strict=True):
            if r.index in claimed:  # held already (claimed by an earlier pending())
                out.append(r)
            elif key in got.won:
                claimed.add(r.index)
                entry = self._entries.get(key) if reread else None
                if entry is not None and entry.status in _DONE_VALUES:
                    self._skip_done(r, entry)
                else:
                    out.append(r)
            else:
                self.held_elsewhere += 1
                self._settle(r, Outcome(Status.SKIPPED, f"not sent: {got.held[key].describe()}", needs_rerun=True))
        return out

    async def _check_earlier(self, row: PreparedRow, entry: Entry) -> Outcome | str | None:
        """A row an earlier run may have sent. None: confirmed absent, send it; an Outcome: settled;
        a provider id (text): found, and the mapping's handler should finish it (e.g. schedule it)."""
        scope, key = self.plan.mapping.scope, row.ledger_key
        if self.readback is None:
            if self.options.resend_unknown or (self.plan.mapping.request.idempotent and self.handler is None):
                return None  # the operator checked; or the mapping says a resend cannot book twice (a PUT upsert)
            return Outcome(Status.UNKNOWN, f"run {entry.run_id} may have booked this row ({entry.status}) and "
                                           f"{self.plan.mapping.provider} offers no way to check; check with the "
                                           f"provider, then rerun with --resend-unknown if it is not there")
        try:
            # entry: e.g. to search around the time the earlier run sent it
            found = await self.readback(self._open_sender, row.body, entry=entry)
        except ReadbackError as exc:
            return Outcome(Status.UNKNOWN, f"run {entry.run_id} may have booked this row and the check failed ({exc}); "
                                           f"it stays unknown until it can be checked")
        if found and self.handler is not None:
            return str(found)
        if found:
            done = Outcome(Status.CREATED, "found at the provider after an earlier uncertain send", provider_id=found)
            self.ledger.record(scope, key, done, self.run_id)
            return Outcome(Status.SKIPPED, "already created (found at the provider by a check after run "
                                           f"{entry.run_id})",
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
        base: CallFacts = {"http_status": refused.http_status, "attempts": refused.attempts}
        if self.readback is None:
            if not uncertain:
                return refused
            return Outcome(Status.UNKNOWN, f"{said} to a row {where} may have booked, and "
                                           f"{self.plan.mapping.provider} offers no way to check: look for it at the "
                                           f"provider; if it is not there, fix the row or rerun with --resend-unknown",
                           **base)
        try:
            # entry: e.g. to search around the time the earlier run sent it
            found = await self.readback(self._open_sender, row.body, entry=entry)
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
