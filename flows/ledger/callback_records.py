"""The provider callbacks a ledger records (flows/http/callbacks.py receives them): run tokens, callbacks,
and the rows they settle.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..outcomes import SENDING, Status
from .database import Database, _now

__all__ = [
    "CallbackRecords",
    "CallbackToken",
]


class CallbackRecords:
    """The part of a :class:`~flows.ledger.ledger.Ledger` that records provider callbacks.

    ``Ledger.__init__`` sets the two attributes below; they are declared here for the type checker."""

    _db: Database
    _lock: threading.Lock

    # --- provider callbacks (flows/http/callbacks.py) ----------------------------------------------------

    def add_callback_token(self, token: str, *, run_id: str, scope: str, provider: str) -> None:
        """Remember a run's callback token (its SHA-256 only: the ledger never holds the token itself)."""
        with self._lock:
            self._db.execute("INSERT INTO callback_tokens VALUES (?,?,?,?,?) ON CONFLICT(token_hash) DO UPDATE SET "
                             "run_id=excluded.run_id, scope=excluded.scope, provider=excluded.provider, "
                             "created_at=excluded.created_at", (_token_hash(token), run_id, scope, provider, _now()))

    def callback_token(self, token: str) -> CallbackToken | None:
        """The run a callback token belongs to, or None for a token no run issued."""
        with self._lock:
            r = self._db.execute("SELECT run_id, scope, provider FROM callback_tokens WHERE token_hash=?",
                                 (_token_hash(token),)).fetchone()
        return CallbackToken(*r) if r else None

    def record_callback(self, *, run_id: str, scope: str, provider_id: str, status: str, message: str, body: str,
                        reference: str | None = None, match_key: Iterable[str] = ()) -> str | None:
        """Store a callback (``body``: JSON with secrets already removed) and settle its row.

        The row is the one whose provider id the callback names; failing that, the one ``unknown`` row
        whose key holds every value of ``match_key`` (case-insensitive). An ``accepted`` or ``unknown``
        row takes ``status``; a row settled otherwise is left alone. Returns the row key, or None when
        no row matches yet (kept, and tried again by :meth:`match_waiting_callbacks`)."""
        with self._lock:
            self._db.begin(exclusive=True)
            try:
                cid = self._db.execute(
                    "INSERT INTO callbacks "
                    "(received_at,run_id,scope,provider_id,reference,match_key,status,message,body) "
                    "VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                    (_now(), run_id, scope, provider_id, reference, json.dumps(list(match_key), ensure_ascii=False),
                     status, message[:2000], body)).fetchone()[0]
                key = self._settle_callback(cid, scope, provider_id, list(match_key), status, message, run_id)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
        return key

    def receive_callback(self, *, run_id: str, scope: str, provider_id: str, status: str, message: str, body: str,
                         reference: str | None = None, match_key: Iterable[str] = ()) -> tuple[str, str | None]:
        """What the callback receiver stores: only a callback that can be about a row of the token's run, and
        only once. Returns ``(verdict, row key)``; only ``settled`` and ``waiting`` store anything:

        ==========  =========================================================================================
        settled     it names an ``accepted`` row of the run by provider id (or, by ``match_key``, the one
                    ``unknown`` row of the run with those key values): stored, the row takes ``status``
        waiting     no row has its provider id yet, but ``match_key`` names a row of the run still being sent
                    (its answer not recorded yet): stored, settled by :meth:`match_waiting_callbacks` (one per row)
        duplicate   a callback for this row (or this waiting provider id) is already stored with the same
                    status: the provider resent it, or someone replays it. Nothing stored; the answer is 2xx
        conflict    the row was already settled by an earlier callback, and this one says otherwise; or its
                    ``match_key`` is not the row's key (the echo of another row). Nothing stored
        unknown     it names no row of the run (a forged or foreign hash): nothing stored
        ==========  =========================================================================================
        """
        match_key = list(match_key)
        with self._lock:
            self._db.begin(exclusive=True)
            try:
                verdict, key = self._callback_verdict(run_id, scope, provider_id, match_key, status)
                if verdict in ("settled", "waiting"):
                    cid = self._db.execute(
                        "INSERT INTO callbacks "
                        "(received_at,run_id,scope,provider_id,reference,match_key,status,message,body) "
                        "VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                        (_now(), run_id, scope, provider_id, reference, json.dumps(match_key, ensure_ascii=False),
                         status, message[:2000], body)).fetchone()[0]
                    if verdict == "settled":
                        key = self._settle_callback(cid, scope, provider_id, match_key, status, message, run_id)
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise
        return verdict, key

    def _callback_verdict(self, run_id: str, scope: str, provider_id: str, match_key: list[str],
                          status: str) -> tuple[str, str | None]:
        row = self._row_by_provider_id(scope, provider_id, run_id)
        if row is None and match_key:
            found = self._rows_by_match_key(scope, run_id, match_key, (Status.UNKNOWN.value,))
            row = found[0] if len(found) == 1 else None
        if row is not None:
            key, _status = row
            if match_key and not _key_holds(key, match_key):
                return "conflict", key  # the hash is this row's, the echoed type and reference another's
            earlier = self._db.execute("SELECT status FROM callbacks WHERE scope=? AND row_key=? ORDER BY id",
                                       (scope, key)).fetchall()
            if not earlier:
                return "settled", key
            return ("duplicate" if earlier[0][0] == status else "conflict"), key
        waiting = self._db.execute("SELECT status FROM callbacks WHERE scope=? AND provider_id=? AND run_id=? "
                                   "AND row_key IS NULL", (scope, provider_id, run_id)).fetchall()
        if waiting:
            return ("duplicate" if waiting[0][0] == status else "conflict"), None
        if match_key and len(self._rows_by_match_key(scope, run_id, match_key, (SENDING,))) == 1:
            return "waiting", None
        return "unknown", None

    def match_waiting_callbacks(self, scope: str | None = None) -> int:
        """Settle rows for callbacks that arrived before their row could be matched (e.g. while it was still
        being sent). Returns how many callbacks found their row."""
        with self._lock:
            sql = ("SELECT id, scope, provider_id, match_key, status, message, run_id FROM callbacks "
                   "WHERE row_key IS NULL")
            waiting = self._db.execute(sql + (" AND scope=?" if scope else ""), [scope] if scope else []).fetchall()
            matched = 0
            for cid, sc, pid, mkey, status, message, run_id in waiting:
                self._db.begin(exclusive=True)
                try:
                    if self._db.postgres and self._db.execute("SELECT row_key FROM callbacks WHERE id=?",
                                                              (cid,)).fetchone()[0]:
                        self._db.commit()  # another machine settled it meanwhile
                        continue
                    settled = self._settle_callback(cid, sc, pid, json.loads(mkey or "[]"), status, message, run_id)
                    matched += settled is not None
                    self._db.commit()
                except BaseException:
                    self._db.rollback()
                    raise
        return matched

    def callbacks(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every stored callback, oldest first (what was kept of it: never a password or key)."""
        with self._lock:
            cur = self._db.execute("SELECT * FROM callbacks" + (" WHERE scope=?" if scope else "") + " ORDER BY id",
                                   [scope] if scope else [])
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _row_by_provider_id(self, scope: str, provider_id: str, run_id: str) -> tuple[str, str] | None:
        """(row key, status) of the row of run ``run_id`` with this provider id: an accepted row, else the row
        an earlier callback of the run naming the id settled (the provider sent it again). A callback token
        belongs to one run, so it reaches only the rows that run sent. Both lookups are indexed."""
        row: tuple[str, str] | None = self._db.execute(
            "SELECT row_key, status FROM rows WHERE scope=? AND provider_id=? AND status='accepted' "
            "AND run_id=? ORDER BY updated_at DESC", (scope, provider_id, run_id)).fetchone()
        if row is not None:
            return row
        row = self._db.execute(
            "SELECT r.row_key, r.status FROM callbacks c JOIN rows r ON r.scope=c.scope AND r.row_key=c.row_key "
            "WHERE c.scope=? AND c.provider_id=? AND c.run_id=? AND c.row_key IS NOT NULL ORDER BY c.id DESC",
            (scope, provider_id, run_id)).fetchone()
        return row

    def _rows_by_match_key(self, scope: str, run_id: str, match_key: list[str],
                           statuses: tuple[str, ...]) -> list[tuple[str, str]]:
        """Rows of run ``run_id`` in one of ``statuses`` whose key holds every value of ``match_key``
        (case-insensitive)."""
        marks = ",".join("?" * len(statuses))
        return [r for r in self._db.execute("SELECT row_key, status FROM rows WHERE scope=? AND run_id=? AND "
                                            f"status IN ({marks})",
                                            (scope, run_id, *statuses))
                if _key_holds(r[0], match_key)]

    def _settle_callback(self, cid: int, scope: str, provider_id: str, match_key: list[str], status: str,
                         message: str, run_id: str) -> str | None:
        row = self._row_by_provider_id(scope, provider_id, run_id)
        if row is None and match_key:
            found = self._rows_by_match_key(scope, run_id, match_key, (Status.UNKNOWN.value,))
            row = found[0] if len(found) == 1 else None
        if row is None:
            return None
        key, current = row
        if current in (Status.ACCEPTED.value, Status.UNKNOWN.value):
            self._db.execute("UPDATE rows SET status=?, provider_id=?, message=?, updated_at=? WHERE scope=? AND "
                             "row_key=?",
                             (status, provider_id, message[:2000], _now(), scope, key))
        self._db.execute("UPDATE callbacks SET row_key=? WHERE id=?", (key, cid))
        return key


@dataclass(frozen=True)
class CallbackToken:
    run_id: str
    scope: str
    provider: str


def _key_holds(row_key: str, match_key: Iterable[str]) -> bool:
    """Whether a row's key (JSON list) holds every value of ``match_key``, trimmed and case-insensitive."""
    have = {str(v).strip().casefold() for v in json.loads(row_key)}
    return {str(v).strip().casefold() for v in match_key} <= have


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
