"""The ledger: each row's state at the provider, written as the run goes, in SQLite or PostgreSQL.

One record per (scope, key): scope is the provider id (or the mapping's ``key_scope``), key
the row's key columns. The sender writes ``sending`` *before* a request leaves and the final
state right after the answer, each in its own committed transaction (WAL mode), so a run
killed at any moment leaves every row it touched either settled or marked ``sending``. A
``sending`` row found by a later run is treated like ``unknown``: checked with the provider
before anything is resent.

Where: a file path or ``sqlite:///path`` (one machine), or ``postgresql://user@host:port/db``
(several machines serving one inbox: :class:`Database` runs the same SQL on both; psycopg is
imported only for such URLs). The password is best left to ``PGPASSWORD`` or ``~/.pgpass``;
one given in the URL is used but never shown (``Ledger.path`` and results workbooks hold the URL
without it).

The ledger never stores a payload, only its SHA-256, so passwords and personal data stay out.

Providers that answer later (Systems X Bridge's ``return_url``) post callbacks to
flows/http/callbacks.py: ``callback_tokens`` holds the SHA-256 of each run's callback token, and
``callbacks`` each callback received (secrets removed), linked to the row it settled.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import orjson

from ..errors import LedgerError
from ..outcomes import SENDING, Outcome, Status
from .callback_records import CallbackRecords
from .database import Database, Statement, _now, _path_from_url, default_ledger_url, is_postgres_url

__all__ = [
    "SENDING",
    "Entry",
    "Ledger",
    "open_ledger",
    "payload_hash",
    "same_payload",
    "settled_since",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    scope        TEXT NOT NULL,
    row_key      TEXT NOT NULL,
    status       TEXT NOT NULL,
    provider_id  TEXT,
    http_status  INTEGER,
    message      TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    payload_hash TEXT,
    run_id       TEXT,
    updated_at   TEXT NOT NULL,
    stage        TEXT,
    PRIMARY KEY (scope, row_key)
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    input       TEXT,
    mapping     TEXT,
    provider    TEXT,
    results     TEXT,
    counts      TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
-- provider callbacks (flows/http/callbacks.py): a run's callback address carries a token; only its hash is kept
CREATE TABLE IF NOT EXISTS callback_tokens (
    token_hash  TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    provider    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    reference    TEXT,
    match_key    TEXT,
    status       TEXT NOT NULL,
    message      TEXT,
    row_key      TEXT,
    body         TEXT NOT NULL
);
-- a callback names its row by provider id (Bridge: the hash of an accepted import). Only accepted rows are
-- indexed: every other row would pay for it on each write and never be looked up (a row a callback settled is
-- found again through its callback). Ledgers before this had every row indexed:
DROP INDEX IF EXISTS rows_by_provider_id;
CREATE INDEX IF NOT EXISTS accepted_rows_by_provider_id ON rows (scope, provider_id) WHERE status = 'accepted';
CREATE INDEX IF NOT EXISTS callbacks_by_provider_id ON callbacks (scope, provider_id);
-- two runs at once (flows/ledger/claims.py RowClaims): a row is claimed by one run before it is sent. The lease is the
-- run's (renewed by its heartbeat, NULL once the run ended), not each row's: a claim is live while its run's is
CREATE TABLE IF NOT EXISTS run_leases (
    run_id      TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    lease_until REAL,
    machine     TEXT
);
CREATE TABLE IF NOT EXISTS row_claims (
    scope       TEXT NOT NULL,
    row_key     TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    claimed_at  TEXT NOT NULL,
    PRIMARY KEY (scope, row_key)
);
CREATE INDEX IF NOT EXISTS row_claims_by_run ON row_claims (run_id);
"""


#: the payload hashes written since the ledger's writes were batched ahead: SHA-256 of orjson's sorted encoding
_HASH_V2 = "v2:"
_HASH_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def payload_hash(payload: Mapping[str, Any]) -> str:
    """A fingerprint of a payload as sent, the same whatever the order of its keys ("v2:" and SHA-256 hex).
    orjson encodes it several times faster than the standard encoder, which the hashes before "v2:" were
    made with; :func:`same_payload` compares with either."""
    try:
        text = orjson.dumps(payload, option=_HASH_OPTIONS, default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits
        text = _legacy_text(payload).encode("utf-8", "surrogatepass")
    return _HASH_V2 + hashlib.sha256(text).hexdigest()


def _legacy_text(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def same_payload(recorded: str, payload: Mapping[str, Any]) -> bool:
    """Is ``recorded`` (a ledger's payload hash, of any version) the hash of ``payload``?"""
    if recorded.startswith(_HASH_V2):
        return recorded == payload_hash(payload)
    try:
        return recorded == hashlib.sha256(_legacy_text(payload).encode("utf-8")).hexdigest()
    except (TypeError, ValueError):  # a payload the hashes before "v2:" could not be made of
        return False


@dataclass(frozen=True)
class Entry:
    scope: str
    key: str
    status: str
    provider_id: str | None
    http_status: int | None
    message: str | None
    attempts: int
    payload_hash: str | None
    run_id: str | None
    updated_at: str
    stage: str | None = None  # multi-step providers: how far the row got


#: outcomes that leave the ledger as it was: an invalid row was never sent; a skipped one was settled by an
#: earlier run or never left
_NOT_RECORDED = frozenset({Status.INVALID, Status.SKIPPED})
_SENDING_SQL = (
    "INSERT INTO rows (scope,row_key,status,payload_hash,run_id,updated_at,attempts) VALUES (?,?,?,?,?,?,0) "
    "ON CONFLICT(scope,row_key) DO UPDATE SET status=excluded.status, payload_hash=excluded.payload_hash, "
    "run_id=excluded.run_id, updated_at=excluded.updated_at")
_RECORD_SQL = (
    "INSERT INTO rows "
    "(scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(scope,row_key) DO UPDATE SET status=excluded.status, "
    "provider_id=COALESCE(excluded.provider_id, rows.provider_id), http_status=excluded.http_status, "
    "message=excluded.message, attempts=rows.attempts + excluded.attempts, "
    "payload_hash=COALESCE(excluded.payload_hash, rows.payload_hash), run_id=excluded.run_id, "
    "updated_at=excluded.updated_at, stage=COALESCE(excluded.stage, rows.stage)")
#: a "sending" mark taken back: the row's request never left (marked ahead, then the run stopped first). Only a
#: mark of this run still standing is taken back; the row was new to the ledger, so its record goes
_UNMARK_NEW_SQL = "DELETE FROM rows WHERE scope=? AND row_key=? AND run_id=? AND status='sending'"
#: ... or it had a record before (e.g. failed in an earlier run), which is put back as it was
_UNMARK_SQL = ("UPDATE rows SET status=?, payload_hash=?, run_id=?, updated_at=? "
               "WHERE scope=? AND row_key=? AND run_id=? AND status='sending'")
_COLUMNS = "scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage"


class Ledger(CallbackRecords):
    """A small store in SQLite or PostgreSQL (see :class:`Database`). Safe to use from one process's threads;
    several processes share a SQLite file via WAL, several machines a PostgreSQL database.

    ``path``: the SQLite file, or the PostgreSQL URL without its password."""

    def __init__(self, path: Path | str) -> None:
        if not is_postgres_url(path):
            path = Path(path)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerError(f"cannot create the ledger's folder {path.parent}: {exc.strerror or exc}; "
                                  f"give another --ledger") from None
        self._db = db = Database(path)
        self.path = db.path
        try:
            if not db.postgres:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process
            db.create(_SCHEMA, "ALTER TABLE rows ADD COLUMN IF NOT EXISTS seq BIGINT GENERATED BY DEFAULT AS IDENTITY")
            if not db.postgres:
                have = {r[1] for r in db.execute("PRAGMA table_info(rows)")}
                if "stage" not in have:  # ledgers written before multi-step providers
                    db.execute("ALTER TABLE rows ADD COLUMN stage TEXT")
            row = db.execute("SELECT value FROM meta WHERE name='ledger_id'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('ledger_id', ?) ON CONFLICT(name) DO NOTHING",
                           (secrets.token_hex(8),))
                row = db.execute("SELECT value FROM meta WHERE name='ledger_id'").fetchone()
            self.ledger_id: str = row[0]
        except db.errors as exc:
            db.close()
            raise LedgerError(f"cannot use the ledger at {self.path}: {exc}; give another --ledger or remove the "
                              "damaged file") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def key_text(key: Iterable[str]) -> str:
        """The key as the ledger stores it: a JSON list. Texts are quoted by the standard encoder's own (C)
        function, as ``json.dumps(..., ensure_ascii=False)`` does, without its set-up per call (the same text,
        several times faster: a key is made for every row before the first is sent)."""
        if key.__class__ is tuple and len(key) == 1 and key[0].__class__ is str:  # the usual one-column key
            return "[" + encode_basestring(key[0]) + "]"
        parts = list(key)
        if all(type(p) is str for p in parts):
            return "[" + ", ".join(map(encode_basestring, parts)) + "]"
        return json.dumps(parts, ensure_ascii=False)

    # --- reads ---------------------------------------------------------------------------------

    def get_many(self, scope: str, keys: Iterable[str]) -> dict[str, Entry]:
        keys = list(keys)
        out: dict[str, Entry] = {}
        with self._lock:
            for chunk, marks in _batches(keys):
                for r in self._db.execute(
                    f"SELECT {_COLUMNS} "
                    f"FROM rows WHERE scope=? AND row_key IN ({marks})", [scope, *chunk]
                ):
                    out[r[1]] = Entry(*r)
        return out

    def get(self, scope: str, key: str) -> Entry | None:
        return self.get_many(scope, [key]).get(key)

    def all(self, scope: str | None = None) -> list[Entry]:
        sql = f"SELECT {_COLUMNS} FROM rows"
        args: list[Any] = []
        if scope:
            sql += " WHERE scope=?"
            args.append(scope)
        with self._lock:
            return [Entry(*r) for r in self._db.execute(sql + f" ORDER BY updated_at, {self._db.rowid}", args)]

    # --- writes (each commits at once) -------------------------------------------------------------

    @staticmethod
    def _sending_sql(scope: str, key: str, run_id: str, phash: str, now: str | None = None) -> Statement:
        return (_SENDING_SQL, (scope, key, SENDING, phash, run_id, now or _now()))

    @staticmethod
    def _record_sql(scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None,
                    now: str | None = None) -> Statement | None:
        if outcome.status in _NOT_RECORDED:
            return None
        return (_RECORD_SQL, (scope, key, outcome.status.value, outcome.provider_id, outcome.http_status,
                              outcome.message[:2000], outcome.attempts, phash, run_id, now or _now(), outcome.stage))

    @staticmethod
    def _unmark_sql(scope: str, key: str, run_id: str, before: Entry | None, now: str | None = None) -> Statement:
        """Take back this run's "sending" mark of a row whose request never left: the row's record as it was
        ``before`` the mark (none: no record)."""
        if before is None:
            return (_UNMARK_NEW_SQL, (scope, key, run_id))
        return (_UNMARK_SQL, (before.status, before.payload_hash, before.run_id, before.updated_at, scope, key, run_id))

    def mark_sending(self, scope: str, key: str, run_id: str, phash: str) -> None:
        """Record that a request for this row is about to leave. Committed before it does."""
        self.write_many([self._sending_sql(scope, key, run_id, phash)])

    def record(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        """Record a row's settled state (never invalid/skipped: those leave the ledger as it was)."""
        statement = self._record_sql(scope, key, outcome, run_id, phash)
        if statement is not None:
            self.write_many([statement])

    def write_many(self, statements: list[Statement]) -> None:
        """Run the statements in one committed transaction (all or nothing). Runs of the same SQL
        go to the driver together (executemany)."""
        if not statements:
            return
        with self._lock:
            if len(statements) == 1:
                self._db.execute(*statements[0])
                return
            self._db.begin()
            try:
                start = 0
                while start < len(statements):
                    sql, end = statements[start][0], start + 1
                    while end < len(statements) and statements[end][0] is sql:
                        end += 1
                    if end - start == 1:
                        self._db.execute(sql, statements[start][1])
                    else:
                        self._db.executemany(sql, [params for _, params in statements[start:end]])
                    start = end
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()

    def checkpoint(self, scope: str, key: str, run_id: str, *, provider_id: str | None, stage: str) -> None:
        """A multi-step row got part-way (e.g. the job exists, not yet scheduled): keep its id and stage now,
        so a run killed before the next step resumes from here instead of creating it again."""
        with self._lock:
            self._db.execute(
                "UPDATE rows SET provider_id=COALESCE(?, provider_id), stage=?, run_id=?, updated_at=? WHERE "
                "scope=? AND row_key=?",
                (provider_id, stage, run_id, _now(), scope, key),
            )

    def start_run(self, run_id: str, *, input: str, mapping: str, provider: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO runs (run_id,started_at,input,mapping,provider) VALUES (?,?,?,?,?) "
                             "ON CONFLICT(run_id) DO UPDATE SET started_at=excluded.started_at, ended_at=NULL, "
                             "input=excluded.input, mapping=excluded.mapping, provider=excluded.provider, "
                             "results=NULL, "
                             "counts=NULL", (run_id, _now(), input, mapping, provider))

    def end_run(self, run_id: str, *, results: str | None, counts: dict[str, int]) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET ended_at=?, results=?, counts=? WHERE run_id=?",
                             (_now(), results, json.dumps(counts), run_id))

    def run_info(self, run_id: str) -> dict[str, str | None] | None:
        """What the ``runs`` table remembers of a run (input, mapping, provider, results, ...), or None."""
        with self._lock:
            r = self._db.execute("SELECT run_id,started_at,ended_at,input,mapping,provider,results,counts FROM runs "
                                 "WHERE run_id=?", (run_id,)).fetchone()
        if r is None:
            return None
        names = ("run_id", "started_at", "ended_at", "input", "mapping", "provider", "results", "counts")
        return dict(zip(names, r, strict=True))

    # --- row claims: two runs at once (policy in flows/ledger/claims.py RowClaims) ---------------------------

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The database driver's exception classes."""
        return self._db.errors

    def start_lease(self, run_id: str, *, host: str, pid: int, lease_until: float, machine: str = "") -> None:
        """The run's lease, committed before it claims any row (so a claim's owner always has one to read)."""
        with self._lock:
            self._db.execute("INSERT INTO run_leases (run_id,host,pid,started_at,lease_until,machine) VALUES "
                             "(?,?,?,?,?,?) "
                             "ON CONFLICT(run_id) DO UPDATE SET host=excluded.host, pid=excluded.pid, "
                             "started_at=excluded.started_at, lease_until=excluded.lease_until, "
                             "machine=excluded.machine",
                             (run_id, host, pid, _now(), lease_until, machine))

    def renew_lease(self, run_id: str, *, now: float, lease_until: float) -> bool:
        """Extend a live lease; False when it ran out (or ended) meanwhile: its rows may have been taken over."""
        with self._lock:
            cur = self._db.execute("UPDATE run_leases SET lease_until=? WHERE run_id=? AND lease_until >= ?",
                                   (lease_until, run_id, now))
        return cur.rowcount == 1

    def insert_claims(self, scope: str, keys: list[str], run_id: str) -> list[str]:
        """Claim the keys nobody has claimed, in one transaction; returns those won. One statement per 500 keys,
        each an INSERT that only one run can win per key. Keys go in sorted order, so two runs claiming
        overlapping batches on PostgreSQL lock them in the same order (no deadlock)."""
        keys = sorted(set(keys))
        won: list[str] = []
        if not keys:
            return won
        now = _now()
        with self._lock:
            self._db.begin()
            try:
                for chunk, _marks in _batches(keys):
                    rows = ",".join("(?,?,?,?)" for _ in chunk)
                    params = [v for k in chunk for v in (scope, k, run_id, now)]
                    won += [r[0] for r in self._db.execute(
                        f"INSERT INTO row_claims (scope,row_key,run_id,claimed_at) VALUES {rows} "
                        f"ON CONFLICT(scope,row_key) DO NOTHING RETURNING row_key", params).fetchall()]
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()
        return won

    def claim_holders(self, scope: str, keys: Iterable[str]) -> dict[str, tuple[Any, ...]]:
        """key -> (run id, host, pid, started_at, lease_until, machine) of the run holding it (host...: None when
        that run has no lease record)."""
        keys = list(keys)
        out: dict[str, tuple[Any, ...]] = {}
        with self._lock:
            for chunk, marks in _batches(keys):
                for r in self._db.execute(
                        "SELECT c.row_key, c.run_id, l.host, l.pid, l.started_at, l.lease_until, l.machine FROM "
                        "row_claims c "
                        f"LEFT JOIN run_leases l ON l.run_id = c.run_id WHERE c.scope=? AND c.row_key IN ({marks})",
                        [scope, *chunk]):
                    out[r[0]] = tuple(r[1:])
        return out

    def take_claims(self, scope: str, keys: list[str], run_id: str, from_run: str) -> list[str]:
        """Take over claims still held by ``from_run`` (compare-and-swap on the owner: of several takers one
        wins each key); returns the keys taken."""
        keys = sorted(set(keys))
        won: list[str] = []
        now = _now()
        with self._lock:
            for chunk, marks in _batches(keys):
                won += [r[0] for r in self._db.execute(
                    f"UPDATE row_claims SET run_id=?, claimed_at=? WHERE scope=? AND run_id=? AND row_key IN ({marks}) "
                    f"RETURNING row_key", [run_id, now, scope, from_run, *chunk]).fetchall()]
        return won

    def release_claims(self, run_id: str) -> int:
        """End the run's lease and drop its claims (one transaction). Returns how many claims it held."""
        with self._lock:
            self._db.begin()
            try:
                released = self._db.execute("DELETE FROM row_claims WHERE run_id=?", (run_id,)).rowcount
                self._db.execute("UPDATE run_leases SET lease_until=NULL WHERE run_id=?", (run_id,))
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()
        return released

    def claimed(self, scope: str | None = None) -> dict[tuple[str, str], str]:
        """(scope, key) -> run id of every claim held now (for reports and tests)."""
        with self._lock:
            where = " WHERE scope=?" if scope else ""
            rows = self._db.execute("SELECT scope, row_key, run_id FROM row_claims" + where,
                                    [scope] if scope else []).fetchall()
        return {(s, k): r for s, k, r in rows}


def _batches(keys: list[str]) -> Iterator[tuple[list[str], str]]:
    """Keys in slices of 500 (well under SQLite's limit on parameters), each with its ``?,?,...`` marks."""
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        yield chunk, ",".join("?" * len(chunk))


def settled_since(ledger: Ledger, scope: str, waiting: dict[int, tuple[str, Outcome]], *,
                  run_id: str | None = None) -> dict[int, Outcome]:
    """The one ledger-refresh loop (a run waiting for callbacks, and `booking-import status`): of the rows
    ``waiting`` (index -> (key, outcome shown)), those the ledger now records as settled otherwise (a callback
    came, or a later run finished them), with that outcome. ``run_id``: only what that run recorded."""
    if not waiting:
        return {}
    ledger.match_waiting_callbacks(scope)  # callbacks that came before their row could be matched
    entries = ledger.get_many(scope, [key for key, _ in waiting.values()])
    out: dict[int, Outcome] = {}
    for i, (key, old) in waiting.items():
        entry = entries.get(key)
        status = Status.of(entry.status) if entry is not None else None
        if entry is None or status is None or status is old.status or (run_id is not None and entry.run_id != run_id):
            continue
        out[i] = Outcome(status, entry.message or "", provider_id=entry.provider_id or old.provider_id,
                         http_status=old.http_status, attempts=old.attempts)
    return out


def open_ledger(url: str | None = None) -> Ledger:
    """The ledger at a path, ``sqlite:///path`` or ``postgresql://user[:password]@host[:port]/db`` URL."""
    url = url or default_ledger_url()
    return Ledger(url if is_postgres_url(url) else _path_from_url(url))
