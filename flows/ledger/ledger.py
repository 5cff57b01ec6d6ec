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

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import LedgerError
from ..outcomes import Outcome, Status

__all__ = [
    "SENDING",
    "CallbackToken",
    "Database",
    "Entry",
    "GroupCommit",
    "Ledger",
    "default_ledger_url",
    "is_postgres_url",
    "open_ledger",
    "payload_hash",
]

SENDING = "sending"
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


def payload_hash(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_ledger_url() -> str:
    return os.environ.get("BOOKING_IMPORTER_LEDGER", "sqlite:///booking-ledger.sqlite")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _path_from_url(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if "://" in url:
        raise LedgerError(f"ledger URL {url!r} is not supported; use sqlite:///path/to/ledger.sqlite, "
                          f"postgresql://user@host:5432/dbname or a file path")
    return Path(url)


# --- one connection, SQLite or PostgreSQL ------------------------------------------------------------

_PG_SCHEMES = ("postgresql://", "postgres://")
_PG_LOCK = zlib.crc32(b"booking-importer ledger")  # advisory lock: schema creation, callback settling
_SECRETS: dict[str, str] = {}  # URL without password -> as given, for URLs this process opened


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(_PG_SCHEMES)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _pg_url(url: str) -> str:
    """The URL to connect with: a password-less URL this process opened before gets its password back."""
    if urlsplit(url).password is not None:
        return url
    env = default_ledger_url()
    return _SECRETS.get(url) or (env if is_postgres_url(env) and _redact(env) == url else url)


def parameter_url(url: str | None) -> str | None:
    """``url`` as it may travel where it is stored or shown (a Prefect flow run's parameters are kept in
    Prefect's database): a PostgreSQL URL without its password, which this process remembers, so opening
    the result here connects with the password (other processes: ``BOOKING_IMPORTER_LEDGER`` or libpq's
    ``PGPASSWORD``/``~/.pgpass``)."""
    if not is_postgres_url(url):
        return url
    safe = _redact(url)
    if safe != url:
        _SECRETS[safe] = url
    return safe


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """SQLite-style SQL as psycopg takes it: ``?`` marks become ``%s``; ``x IS ?`` (NULL-safe) becomes
    ``x IS NOT DISTINCT FROM %s``. The ledger's SQL has no ``?`` or ``%`` inside string literals."""
    sql = sql.replace("%", "%%")
    sql = re.sub(r"\bIS \?", "IS NOT DISTINCT FROM ?", sql)
    return sql.replace("?", "%s")


def _pg_ddl(ddl: str) -> str:
    ddl = ddl.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)  # REAL is 4 bytes in PostgreSQL: too coarse for epoch seconds


class Database:
    """One connection to the ledger's database, SQLite (a path) or PostgreSQL (a ``postgresql://`` URL).

    Takes SQLite-style SQL (``?`` marks, ``ON CONFLICT``, ``RETURNING``) and runs it on either. Autocommit:
    each statement commits at once unless inside :meth:`begin` ... :meth:`commit`. ``rowid`` names a
    column giving insertion order; ``errors`` the driver's exception classes. Not locked: callers
    serialise use from several threads (Ledger and FileClaims hold a lock)."""

    def __init__(self, target: Path | str, *, what: str = "the ledger") -> None:
        self.postgres = is_postgres_url(target)
        self.rowid = "seq" if self.postgres else "rowid"
        if not self.postgres:
            self.path: Path | str = Path(target)
            self.errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
            try:
                self.raw: Any = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            except sqlite3.DatabaseError as exc:
                raise LedgerError(f"cannot use {what} at {self.path}: {exc}; give another --ledger or remove the damaged file") from None
            return
        url = _pg_url(str(target))
        self.path = _redact(url)
        if self.path != url:
            _SECRETS[self.path] = url
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a postgresql:// ledger needs the psycopg package: pip install 'psycopg[binary]'") from None
        self.errors = (psycopg.Error,)
        try:
            self.raw = psycopg.connect(url, autocommit=True, connect_timeout=15, application_name="booking-importer")
        except psycopg.Error as exc:
            reason = str(exc).replace(url, self.path).strip().splitlines()
            raise LedgerError(f"cannot connect to {what} at {self.path}: {reason[0] if reason else type(exc).__name__}; "
                              f"check the URL, that the server is up and the database exists "
                              f"(createdb), or give another --ledger") from None

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        if not self.postgres:
            return self.raw.execute(sql, tuple(params))
        return self.raw.execute(_pg_sql(sql), tuple(params))

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        if not self.postgres:
            self.raw.executemany(sql, rows)
            return
        with self.raw.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows)

    def create(self, ddl: str, *extra_pg: str) -> None:
        """Create tables (``CREATE ... IF NOT EXISTS``), safely against other processes doing the same."""
        if not self.postgres:
            self.raw.executescript(ddl)
            return
        self.begin(exclusive=True)
        try:
            self.raw.execute(_pg_ddl(ddl))
            for statement in extra_pg:
                self.raw.execute(statement)
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def begin(self, *, exclusive: bool = False) -> None:
        """Start a transaction; ``exclusive``: one such at a time (SQLite's BEGIN IMMEDIATE; on PostgreSQL an
        advisory lock held until commit). A plain one on PostgreSQL locks only the rows it writes."""
        if not self.postgres:
            self.raw.execute("BEGIN IMMEDIATE")
            return
        self.raw.execute("BEGIN")
        if exclusive:
            self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


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
    "INSERT INTO rows (scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(scope,row_key) DO UPDATE SET status=excluded.status, "
    "provider_id=COALESCE(excluded.provider_id, rows.provider_id), http_status=excluded.http_status, "
    "message=excluded.message, attempts=rows.attempts + excluded.attempts, "
    "payload_hash=COALESCE(excluded.payload_hash, rows.payload_hash), run_id=excluded.run_id, "
    "updated_at=excluded.updated_at, stage=COALESCE(excluded.stage, rows.stage)")
_COLUMNS = "scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage"


class Ledger:
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
                db.execute("INSERT INTO meta VALUES ('ledger_id', ?) ON CONFLICT(name) DO NOTHING", (secrets.token_hex(8),))
                row = db.execute("SELECT value FROM meta WHERE name='ledger_id'").fetchone()
            self.ledger_id: str = row[0]
        except db.errors as exc:
            db.close()
            raise LedgerError(f"cannot use the ledger at {self.path}: {exc}; give another --ledger or remove the damaged file") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def key_text(key: Iterable[str]) -> str:
        return json.dumps(list(key), ensure_ascii=False)

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
        args: list = []
        if scope:
            sql += " WHERE scope=?"
            args.append(scope)
        with self._lock:
            return [Entry(*r) for r in self._db.execute(sql + f" ORDER BY updated_at, {self._db.rowid}", args)]

    # --- writes (each commits at once) -------------------------------------------------------------

    @staticmethod
    def _sending_sql(scope: str, key: str, run_id: str, phash: str, now: str | None = None) -> tuple[str, tuple]:
        return (_SENDING_SQL, (scope, key, SENDING, phash, run_id, now or _now()))

    @staticmethod
    def _record_sql(scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None,
                    now: str | None = None) -> tuple[str, tuple] | None:
        if outcome.status in _NOT_RECORDED:
            return None
        return (_RECORD_SQL, (scope, key, outcome.status.value, outcome.provider_id, outcome.http_status,
                              outcome.message[:2000], outcome.attempts, phash, run_id, now or _now(), outcome.stage))

    def mark_sending(self, scope: str, key: str, run_id: str, phash: str) -> None:
        """Record that a request for this row is about to leave. Committed before it does."""
        self.write_many([self._sending_sql(scope, key, run_id, phash)])

    def record(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        """Record a row's settled state (never invalid/skipped: those leave the ledger as it was)."""
        statement = self._record_sql(scope, key, outcome, run_id, phash)
        if statement is not None:
            self.write_many([statement])

    def write_many(self, statements: list[tuple[str, tuple]]) -> None:
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
                "UPDATE rows SET provider_id=COALESCE(?, provider_id), stage=?, run_id=?, updated_at=? WHERE scope=? AND row_key=?",
                (provider_id, stage, run_id, _now(), scope, key),
            )

    def start_run(self, run_id: str, *, input: str, mapping: str, provider: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO runs (run_id,started_at,input,mapping,provider) VALUES (?,?,?,?,?) "
                             "ON CONFLICT(run_id) DO UPDATE SET started_at=excluded.started_at, ended_at=NULL, "
                             "input=excluded.input, mapping=excluded.mapping, provider=excluded.provider, results=NULL, "
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
        return dict(zip(("run_id", "started_at", "ended_at", "input", "mapping", "provider", "results", "counts"), r))

    # --- row claims: two runs at once (policy in flows/ledger/claims.py RowClaims) ---------------------------

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        """The database driver's exception classes."""
        return self._db.errors

    def start_lease(self, run_id: str, *, host: str, pid: int, lease_until: float, machine: str = "") -> None:
        """The run's lease, committed before it claims any row (so a claim's owner always has one to read)."""
        with self._lock:
            self._db.execute("INSERT INTO run_leases (run_id,host,pid,started_at,lease_until,machine) VALUES (?,?,?,?,?,?) "
                             "ON CONFLICT(run_id) DO UPDATE SET host=excluded.host, pid=excluded.pid, "
                             "started_at=excluded.started_at, lease_until=excluded.lease_until, machine=excluded.machine",
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

    def claim_holders(self, scope: str, keys: Iterable[str]) -> dict[str, tuple]:
        """key -> (run id, host, pid, started_at, lease_until, machine) of the run holding it (host...: None when
        that run has no lease record)."""
        keys = list(keys)
        out: dict[str, tuple] = {}
        with self._lock:
            for chunk, marks in _batches(keys):
                for r in self._db.execute(
                        f"SELECT c.row_key, c.run_id, l.host, l.pid, l.started_at, l.lease_until, l.machine FROM row_claims c "
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
            rows = self._db.execute("SELECT scope, row_key, run_id FROM row_claims" + (" WHERE scope=?" if scope else ""),
                                    [scope] if scope else []).fetchall()
        return {(s, k): r for s, k, r in rows}

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
                    "INSERT INTO callbacks (received_at,run_id,scope,provider_id,reference,match_key,status,message,body) "
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
                        "INSERT INTO callbacks (received_at,run_id,scope,provider_id,reference,match_key,status,message,body) "
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
            key, current = row
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
            sql = "SELECT id, scope, provider_id, match_key, status, message, run_id FROM callbacks WHERE row_key IS NULL"
            waiting = self._db.execute(sql + (" AND scope=?" if scope else ""), [scope] if scope else []).fetchall()
            matched = 0
            for cid, sc, pid, mkey, status, message, run_id in waiting:
                self._db.begin(exclusive=True)
                try:
                    if self._db.postgres and self._db.execute("SELECT row_key FROM callbacks WHERE id=?", (cid,)).fetchone()[0]:
                        self._db.commit()  # another machine settled it meanwhile
                        continue
                    matched += self._settle_callback(cid, sc, pid, json.loads(mkey or "[]"), status, message, run_id) is not None
                    self._db.commit()
                except BaseException:
                    self._db.rollback()
                    raise
        return matched

    def callbacks(self, scope: str | None = None) -> list[dict]:
        """Every stored callback, oldest first (what was kept of it: never a password or key)."""
        with self._lock:
            cur = self._db.execute("SELECT * FROM callbacks" + (" WHERE scope=?" if scope else "") + " ORDER BY id",
                                   [scope] if scope else [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def _row_by_provider_id(self, scope: str, provider_id: str, run_id: str) -> tuple[str, str] | None:
        """(row key, status) of the row of run ``run_id`` with this provider id: an accepted row, else the row
        an earlier callback of the run naming the id settled (the provider sent it again). A callback token
        belongs to one run, so it reaches only the rows that run sent. Both lookups are indexed."""
        row = self._db.execute("SELECT row_key, status FROM rows WHERE scope=? AND provider_id=? AND status='accepted' "
                               "AND run_id=? ORDER BY updated_at DESC", (scope, provider_id, run_id)).fetchone()
        if row is not None:
            return row
        return self._db.execute(
            "SELECT r.row_key, r.status FROM callbacks c JOIN rows r ON r.scope=c.scope AND r.row_key=c.row_key "
            "WHERE c.scope=? AND c.provider_id=? AND c.run_id=? AND c.row_key IS NOT NULL ORDER BY c.id DESC",
            (scope, provider_id, run_id)).fetchone()

    def _rows_by_match_key(self, scope: str, run_id: str, match_key: list[str], statuses: tuple[str, ...]) -> list[tuple[str, str]]:
        """Rows of run ``run_id`` in one of ``statuses`` whose key holds every value of ``match_key`` (case-insensitive)."""
        marks = ",".join("?" * len(statuses))
        return [r for r in self._db.execute(f"SELECT row_key, status FROM rows WHERE scope=? AND run_id=? AND status IN ({marks})",
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
            self._db.execute("UPDATE rows SET status=?, provider_id=?, message=?, updated_at=? WHERE scope=? AND row_key=?",
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


def _batches(keys: list[str]) -> Iterator[tuple[list[str], str]]:
    """Keys in slices of 500 (well under SQLite's limit on parameters), each with its ``?,?,...`` marks."""
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        yield chunk, ",".join("?" * len(chunk))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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
    "sending" mark: if the process dies before that commit, the row is simply still "sending" in
    the ledger and the next run checks it with the provider, as for a request in flight.
    :meth:`confirm` waits until everything queued is committed."""

    def __init__(self, ledger: Ledger, turns: int = 6) -> None:
        self.ledger = ledger
        #: turns of the event loop a batch stays open, so the answers of more polls for I/O join it. For
        #: 10,000 rows at concurrency 8 and 0 ms: 1 turn, 6,300 transactions; 2: 3,900; 3: 2,700-3,500; 6:
        #: 2,500-2,900 (and 1,050 -> 700 at concurrency 64), each ~50-90 µs of CPU. It levels off there: a
        #: row waiting for its mark is a request not in flight, so about half the workers share a batch. A
        #: turn with nothing else to do is a poll with no wait: microseconds, even at 50 ms latency.
        self.turns = max(1, turns)
        self._turns_left = 0
        self._pending: list[tuple[Callable[..., tuple[str, tuple] | None], tuple]] = []
        self._batch: asyncio.Future | None = None
        self._error: BaseException | None = None
        self.transactions = 0

    def mark_sending(self, scope: str, key: str, run_id: str, phash: str) -> asyncio.Future:
        """Await the result: it resolves once the mark is committed."""
        return self._enqueue(Ledger._sending_sql, (scope, key, run_id, phash))

    async def record(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        if outcome.status not in _NOT_RECORDED:
            await self._enqueue(Ledger._record_sql, (scope, key, outcome, run_id, phash))

    def record_soon(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        """Queue a settled row without waiting: it commits with the next write of the burst (typically
        the same worker's "sending" mark for its next row, so one transaction serves both)."""
        if outcome.status not in _NOT_RECORDED:
            self._enqueue(Ledger._record_sql, (scope, key, outcome, run_id, phash))

    async def confirm(self) -> None:
        """Wait until every queued record is committed; raises if a batch could not be."""
        if self._batch is not None:
            try:
                await asyncio.shield(self._batch)
            except Exception:
                pass
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _enqueue(self, make: Callable[..., tuple[str, tuple] | None], args: tuple) -> asyncio.Future:
        self._pending.append((make, args))
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
        try:
            self._flush()
        except RuntimeError:  # the batch's waiters belong to an event loop already closed
            pass

    def _flush(self) -> None:
        if not self._pending and self._batch is None:  # flushed already (flush_now)
            return
        if self._turns_left > 0:  # let one more round of answers join this transaction
            self._turns_left -= 1
            asyncio.get_running_loop().call_soon(self._flush)
            return
        batch, self._pending = self._pending, []
        done, self._batch = self._batch, None
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


def _records_first(statements: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
    """Settled records before "sending" marks, so each kind reaches the database in one executemany,
    unless a row has both in the batch (then the order they were queued in is kept)."""
    records = [st for st in statements if st[0] is _RECORD_SQL]
    if not records or len(records) == len(statements):
        return statements
    marks = [st for st in statements if st[0] is not _RECORD_SQL]
    if {p[:2] for _, p in records} & {p[:2] for _, p in marks}:  # (scope, key)
        return statements
    return records + marks
