"""What the web page keeps: remembered column matches, imports and the audit trail in the ledger database
(SQLite or PostgreSQL, through flows.ledger.Database), and uploads in a private folder.

Uploads are stored under random names in a folder only this process's user can read (mode 0700), never
under a name or path from the browser, and deleted with their state after ``keep_seconds``. The table
``web_uploads`` in the ledger database keeps what the page knows about each (owner, file name, mapping,
column match, the cells the user fixed, excluded rows, state, runs, outcomes), so uploads survive a
restart of the web process: a new process on the same folder and database reads them back
(:meth:`Uploads.load`) and rebuilds each sheet from the stored file. Sensitive cells (passwords) are
never written there.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ImporterError
from ..ledger.database import Database, _path_from_url, default_ledger_url, is_postgres_url
from ..ledger.ledger import open_ledger
from ..outcomes import Outcome, Status

__all__ = ["Upload", "Uploads", "WebStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS web_matches (
    username TEXT NOT NULL, mapping TEXT NOT NULL, needed TEXT NOT NULL, sheet_column TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (username, mapping, needed));
CREATE TABLE IF NOT EXISTS web_imports (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, created_at TEXT NOT NULL, file_name TEXT NOT NULL,
    mapping TEXT NOT NULL, run_ids TEXT NOT NULL, counts TEXT NOT NULL, results TEXT, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS web_uploads (
    id TEXT PRIMARY KEY, folder TEXT NOT NULL, username TEXT NOT NULL, record TEXT NOT NULL, updated_at TEXT NOT NULL);
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

    # -- uploads, for a restart (Uploads.save / load)
    def save_upload(self, folder: Path, up: Upload) -> None:
        record = json.dumps(up.to_record(), ensure_ascii=False)
        with self.lock:
            self.db.execute(
                "INSERT INTO web_uploads (id,folder,username,record,updated_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET record=excluded.record, updated_at=excluded.updated_at",
                (up.id, str(folder), up.user, record, _now()))

    def uploads(self, folder: Path) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute("SELECT record FROM web_uploads WHERE folder=? ORDER BY updated_at",
                                   (str(folder),)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def forget_upload(self, uid: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM web_uploads WHERE id=?", (uid,))

    # -- the audit trail: every action, with who did it
    def record(self, user: str, action: str, detail: str = "") -> None:
        with self.lock:
            self.db.execute("INSERT INTO web_actions (at,username,action,detail) VALUES (?,?,?,?)",
                            (_now(), user, action, detail[:2000]))

    def actions(self, limit: int = 200) -> list[tuple[str, str, str, str]]:
        with self.lock:
            return self.db.execute("SELECT at,username,action,detail FROM web_actions "
                                   f"ORDER BY at DESC LIMIT {int(limit)}").fetchall()

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
        return [dict(zip(names, r, strict=True)) for r in rows]

    def run_counts(self, run_id: str) -> dict[str, int]:
        """Rows of a run by status, as the ledger records them while the run goes (live progress)."""
        with self.lock:
            rows = self.db.execute("SELECT status, COUNT(*) FROM rows WHERE run_id=? GROUP BY status",
                                   (run_id,)).fetchall()
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
    #: row index -> column -> the value the user typed (not sensitive columns): applied again after a restart
    cells: dict[int, dict[str, str | None]] = field(default_factory=dict)
    state: str = "matching"  # matching, review, booking, done, failed
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)
    outcomes: dict[int, Any] = field(default_factory=dict)  # row index -> latest Outcome
    sent_rows: list[int] = field(default_factory=list)  # rows handed to the run going now
    results_path: Path | None = None
    flow_run_url: str | None = None
    booked_via: str | None = None  # "prefect" (a flow run) or "direct" (engine.run_import, `web --no-prefect`)
    started: float | None = None
    booking: Any = None  # flows.web.engine_calls.Booking of the run going now, or the last one
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_record(self) -> dict[str, Any]:
        """What survives a restart (JSON); the sheet and plan are rebuilt from the stored file."""
        return dict(id=self.id, user=self.user, file_name=self.file_name, stored=self.path.name,
                    mapping=self.mapping_name, created_at=self.created_at, last_used=time.time(),
                    columns=self.columns, match=self.match, excluded=sorted(self.excluded), edited=sorted(self.edited),
                    cells={str(i): c for i, c in self.cells.items()}, state=self.state, error=self.error,
                    run_ids=self.run_ids,
                    outcomes={str(i): dict(asdict(o), status=o.status.value) for i, o in self.outcomes.items()},
                    results=self.results_path.name if self.results_path else None,
                    flow_run_url=self.flow_run_url, booked_via=self.booked_via)

    @classmethod
    def from_record(cls, d: dict[str, Any], folder: Path) -> Upload:
        up = cls(d["id"], d["user"], d["file_name"], folder / Path(d["stored"]).name, d["mapping"],
                 created_at=d["created_at"], columns=list(d["columns"]), match=dict(d["match"]),
                 excluded=set(d["excluded"]), edited=set(d["edited"]),
                 cells={int(i): c for i, c in d["cells"].items()}, state=d["state"], error=d["error"],
                 run_ids=list(d["run_ids"]), results_path=folder / Path(d["results"]).name if d["results"] else None,
                 flow_run_url=d["flow_run_url"], booked_via=d["booked_via"],
                 outcomes={int(i): Outcome(**dict(o, status=Status(o["status"]))) for i, o in d["outcomes"].items()})
        up.touched = time.monotonic() - max(0.0, time.time() - float(d["last_used"]))
        if up.state == "booking":  # the process ended while it booked: what it did is in the ledger
            up.state = "done" if up.outcomes else "review"
            up.error = ("the web page restarted while this import ran: send the rows again; the ledger books "
                        "nothing twice")
        return up

    def final_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes.values():
            counts[o.status.value] = counts.get(o.status.value, 0) + 1
        if self.excluded:
            counts["excluded"] = len(self.excluded)
        return counts


class Uploads:
    """Uploads in memory and on disk; each deleted ``keep_seconds`` after it was last used."""

    def __init__(self, folder: Path, keep_seconds: float = 24 * 3600, records: WebStore | None = None) -> None:
        self.folder = folder
        self.records = records  # where uploads are kept for a restart (None: in memory only)
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
        self.save(up)

    def save(self, up: Upload) -> None:
        """Keep the upload's record (in the ledger database) for a restart."""
        if self.records is not None:
            self.records.save_upload(self.folder.resolve(), up)

    def load(self, rebuild: Callable[[Upload], None]) -> list[str]:
        """Read back every upload a process before this one kept (``rebuild`` makes its sheet and plan again);
        the ones that cannot be read back any more (file or mapping gone) are reported, not deleted."""
        problems = []
        for record in self.records.uploads(self.folder.resolve()) if self.records is not None else []:
            try:
                up = Upload.from_record(record, self.folder)
                if not up.path.is_file():  # deleted after its keep time, or by hand: nothing to read back
                    self.records.forget_upload(up.id)
                    raise ImporterError("its file is gone")
                rebuild(up)
            except (ImporterError, OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"upload {record.get('id')}: {exc}")
                continue
            with self._lock:
                self._items[up.id] = up
        return problems

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
            if self.records is not None:
                self.records.forget_upload(u.id)
            if u.results_path is not None:
                _remove(u.results_path)
        return len(old)

    def remove_all(self) -> None:
        with self._lock:
            items, self._items = list(self._items.values()), {}
        for u in items:
            _remove(u.path)
            if self.records is not None:
                self.records.forget_upload(u.id)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
