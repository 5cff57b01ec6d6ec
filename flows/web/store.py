"""What the web page keeps: remembered column matches, imports and the audit trail in the ledger database
(SQLite or PostgreSQL, through flows.ledger.Database), and uploads in a private folder.

Uploads are stored under random names in a folder only this process's user can read (mode 0700), never
under a name or path from the browser, and deleted with their state after ``keep_seconds``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ledger.database import Database, _path_from_url, default_ledger_url, is_postgres_url
from ..ledger.ledger import open_ledger

__all__ = ["Upload", "Uploads", "WebStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS web_matches (
    username TEXT NOT NULL, mapping TEXT NOT NULL, needed TEXT NOT NULL, sheet_column TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (username, mapping, needed));
CREATE TABLE IF NOT EXISTS web_imports (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, created_at TEXT NOT NULL, file_name TEXT NOT NULL,
    mapping TEXT NOT NULL, run_ids TEXT NOT NULL, counts TEXT NOT NULL, results TEXT, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS web_actions (
    at TEXT NOT NULL, username TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
"""


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class WebStore:
    """The web page's tables, beside the ledger's own in the same database. Thread-safe (one lock)."""

    def __init__(self, ledger_url: str | None = None) -> None:
        url = ledger_url or default_ledger_url()
        target: Any = url if is_postgres_url(url) else _path_from_url(url)
        if not is_postgres_url(url):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self.ledger_url = url
        open_ledger(url).close()  # the ledger's own tables (rows, runs), read here for progress and history
        self.db = Database(target)
        self.db.create(_DDL)
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:  # never while another thread (a booking finishing) is using the connection
            self.db.close()

    # -- column matches, per user and mapping
    def remembered(self, user: str, mapping: str) -> dict[str, str]:
        with self.lock:
            rows = self.db.execute("SELECT needed, sheet_column FROM web_matches WHERE username=? AND mapping=?",
                                   (user, mapping)).fetchall()
        return {n: c for n, c in rows}

    def remember(self, user: str, mapping: str, matches: dict[str, str]) -> None:
        with self.lock:
            for needed, column in matches.items():
                self.db.execute(
                    "INSERT INTO web_matches (username,mapping,needed,sheet_column,updated_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(username,mapping,needed) DO UPDATE SET sheet_column=excluded.sheet_column, "
                    "updated_at=excluded.updated_at", (user, mapping, needed, column, _now()))

    # -- the audit trail: every action, with who did it
    def record(self, user: str, action: str, detail: str = "") -> None:
        with self.lock:
            self.db.execute("INSERT INTO web_actions (at,username,action,detail) VALUES (?,?,?,?)",
                            (_now(), user, action, detail[:2000]))

    def actions(self, limit: int = 200) -> list[tuple[str, str, str, str]]:
        with self.lock:
            return self.db.execute(f"SELECT at,username,action,detail FROM web_actions ORDER BY at DESC LIMIT {int(limit)}").fetchall()

    # -- imports, for the history page
    def save_import(self, up: Upload) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO web_imports (id,username,created_at,file_name,mapping,run_ids,counts,results,state) "
                "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET run_ids=excluded.run_ids, "
                "counts=excluded.counts, results=excluded.results, state=excluded.state",
                (up.id, up.user, up.created_at, up.file_name, up.mapping_name, json.dumps(up.run_ids),
                 json.dumps(up.final_counts()), str(up.results_path) if up.results_path else None, up.state))

    def imports(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute("SELECT id,username,created_at,file_name,mapping,run_ids,counts,results,state "
                                   f"FROM web_imports ORDER BY created_at DESC LIMIT {int(limit)}").fetchall()
        return [dict(id=r[0], user=r[1], created=r[2], file=r[3], mapping=r[4], run_ids=json.loads(r[5]),
                     counts=json.loads(r[6]), results=r[7], state=r[8]) for r in rows]

    def runs(self, limit: int = 200) -> list[dict[str, Any]]:
        """Every run the ledger knows (CLI, nightly inbox and web), newest first."""
        with self.lock:
            rows = self.db.execute("SELECT run_id,started_at,ended_at,input,mapping,provider,results,counts FROM runs "
                                   f"ORDER BY started_at DESC LIMIT {int(limit)}").fetchall()
        names = ("run_id", "started_at", "ended_at", "input", "mapping", "provider", "results", "counts")
        return [dict(zip(names, r)) for r in rows]

    def run_counts(self, run_id: str) -> dict[str, int]:
        """Rows of a run by status, as the ledger records them while the run goes (live progress)."""
        with self.lock:
            rows = self.db.execute("SELECT status, COUNT(*) FROM rows WHERE run_id=? GROUP BY status", (run_id,)).fetchall()
        return {s: n for s, n in rows}


@dataclass
class Upload:
    """One user's upload, from the file to its results. Only its owner ever sees it."""

    id: str
    user: str
    file_name: str  # the name the browser gave, shown only, never used as a path
    path: Path  # the stored file: a random name in the private folder
    mapping_name: str
    created_at: str = field(default_factory=_now)
    touched: float = field(default_factory=time.monotonic)
    columns: list[str] = field(default_factory=list)  # the sheet's own header
    match: dict[str, str | None] = field(default_factory=dict)  # needed column -> sheet column (None: left empty)
    sheet: Any = None  # flows.sheets.Sheet with the matched names and the user's fixes
    plan: Any = None  # flows.engine.Plan of the rows as they are now
    excluded: set[int] = field(default_factory=set)  # row indexes the user left out
    edited: set[int] = field(default_factory=set)
    state: str = "matching"  # matching, review, booking, done, failed
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    outcomes: dict[int, Any] = field(default_factory=dict)  # row index -> latest Outcome
    sent_rows: list[int] = field(default_factory=list)  # rows handed to the run going now
    results_path: Path | None = None
    flow_run_url: str | None = None
    started: float | None = None
    booking: Any = None  # flows.web.engine_calls.Booking of the run going now, or the last one
    lock: threading.Lock = field(default_factory=threading.Lock)

    def final_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o.status.value] = counts.get(o.status.value, 0) + 1
        if self.excluded:
            counts["excluded"] = len(self.excluded)
        return counts


class Uploads:
    """Uploads in memory and on disk; each deleted ``keep_seconds`` after it was last used."""

    def __init__(self, folder: Path, keep_seconds: float = 24 * 3600) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        self.keep_seconds = keep_seconds
        self._items: dict[str, Upload] = {}
        self._lock = threading.Lock()

    def new_path(self, suffix: str) -> tuple[str, Path]:
        uid = secrets.token_urlsafe(16)
        return uid, self.folder / f"{secrets.token_hex(16)}{suffix}"

    def add(self, up: Upload) -> None:
        with self._lock:
            self._items[up.id] = up

    def bookings(self) -> list[Any]:
        """The bookings of every upload (running or finished), for a shutdown that lets them finish."""
        with self._lock:
            return [u.booking for u in self._items.values() if u.booking is not None]

    def get(self, uid: str, user: str) -> Upload | None:
        """The upload, when it exists and belongs to ``user`` (someone else's reads as missing)."""
        self.expire()
        with self._lock:
            up = self._items.get(uid)
        if up is None or up.user != user:
            return None
        up.touched = time.monotonic()
        return up

    def expire(self) -> int:
        now = time.monotonic()
        with self._lock:
            old = [u for u in self._items.values() if now - u.touched > self.keep_seconds and u.state != "booking"]
            for u in old:
                del self._items[u.id]
        for u in old:
            _remove(u.path)
            if u.results_path is not None:
                _remove(u.results_path)
        return len(old)

    def remove_all(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for u in items:
            _remove(u.path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
