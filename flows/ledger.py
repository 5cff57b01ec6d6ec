"""The ledger: each row's state at the provider, written as the run goes, in SQLite.

One record per (scope, key): scope is the provider id (or the mapping's ``key_scope``), key
the row's key columns. The sender writes ``sending`` *before* a request leaves and the final
state right after the answer, each in its own committed transaction (WAL mode), so a run
killed at any moment leaves every row it touched either settled or marked ``sending``. A
``sending`` row found by a later run is treated like ``unknown``: checked with the provider
before anything is resent.

The ledger never stores a payload, only its SHA-256, so passwords and personal data stay out.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import LedgerError
from .outcomes import Outcome, Status

__all__ = ["Ledger", "Entry", "SENDING", "payload_hash", "default_ledger_url", "open_ledger"]

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
"""


def payload_hash(payload: dict) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def default_ledger_url() -> str:
    return os.environ.get("BOOKING_IMPORTER_LEDGER", "sqlite:///booking-ledger.sqlite")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _path_from_url(url: str) -> Path:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or a plain path."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if "://" in url:
        raise LedgerError(f"ledger URL {url!r} is not supported; use sqlite:///path/to/ledger.sqlite or a file path")
    return Path(url)


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


_COLUMNS = "scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage"


class Ledger:
    """A small SQLite store. Safe to use from one process's threads; several processes share it via WAL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger's folder {path.parent}: {exc.strerror or exc}; "
                              f"give another --ledger") from None
        db: sqlite3.Connection | None = None
        try:
            self._db = db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process
            self._db.executescript(_SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(rows)")}
            if "stage" not in have:  # ledgers written before multi-step providers
                self._db.execute("ALTER TABLE rows ADD COLUMN stage TEXT")
            row = self._db.execute("SELECT value FROM meta WHERE name='ledger_id'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('ledger_id', lower(hex(randomblob(8))))")
                row = self._db.execute("SELECT value FROM meta WHERE name='ledger_id'").fetchone()
            self.ledger_id: str = row[0]
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise LedgerError(f"cannot use the ledger at {path}: {exc}; give another --ledger or remove the damaged file") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Ledger":
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
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
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
            return [Entry(*r) for r in self._db.execute(sql + " ORDER BY updated_at", args)]

    # --- writes (each commits at once) -------------------------------------------------------------

    def mark_sending(self, scope: str, key: str, run_id: str, phash: str) -> None:
        """Record that a request for this row is about to leave. Committed before it does."""
        with self._lock:
            self._db.execute(
                "INSERT INTO rows (scope,row_key,status,payload_hash,run_id,updated_at,attempts) VALUES (?,?,?,?,?,?,0) "
                "ON CONFLICT(scope,row_key) DO UPDATE SET status=excluded.status, payload_hash=excluded.payload_hash, "
                "run_id=excluded.run_id, updated_at=excluded.updated_at",
                (scope, key, SENDING, phash, run_id, _now()),
            )

    def record(self, scope: str, key: str, outcome: Outcome, run_id: str, phash: str | None = None) -> None:
        """Record a row's settled state (never invalid/skipped: those leave the ledger as it was)."""
        if outcome.status in (Status.INVALID, Status.SKIPPED):
            return
        with self._lock:
            self._db.execute(
                "INSERT INTO rows (scope,row_key,status,provider_id,http_status,message,attempts,payload_hash,run_id,updated_at,stage) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(scope,row_key) DO UPDATE SET status=excluded.status, "
                "provider_id=COALESCE(excluded.provider_id, rows.provider_id), http_status=excluded.http_status, "
                "message=excluded.message, attempts=rows.attempts + excluded.attempts, "
                "payload_hash=COALESCE(excluded.payload_hash, rows.payload_hash), run_id=excluded.run_id, "
                "updated_at=excluded.updated_at, stage=COALESCE(excluded.stage, rows.stage)",
                (scope, key, outcome.status.value, outcome.provider_id, outcome.http_status, outcome.message[:2000],
                 outcome.attempts, phash, run_id, _now(), outcome.stage),
            )

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
            self._db.execute("INSERT OR REPLACE INTO runs (run_id,started_at,input,mapping,provider) VALUES (?,?,?,?,?)",
                             (run_id, _now(), input, mapping, provider))

    def end_run(self, run_id: str, *, results: str | None, counts: dict[str, int]) -> None:
        with self._lock:
            self._db.execute("UPDATE runs SET ended_at=?, results=?, counts=? WHERE run_id=?",
                             (_now(), results, json.dumps(counts), run_id))


def open_ledger(url: str | None = None) -> Ledger:
    return Ledger(_path_from_url(url or default_ledger_url()))
