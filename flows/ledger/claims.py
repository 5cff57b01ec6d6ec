"""Inbox file claims: which run imports which file, kept in the ledger's database (SQLite or PostgreSQL).

One record per file *content* (SHA-256 of the bytes), in a ``files`` table beside the ledger's
``rows`` and ``runs``, so the same bytes under another name are recognised as a duplicate and two
runs never import one file at once:

=========  ==================================================================================
state      meaning
=========  ==================================================================================
claimed    a run is importing it; ``owner`` (run id), ``host``, ``pid`` and ``lease_until``
           (epoch seconds) say who, and the owner renews the lease while it works
done       imported; ``results``, ``archived_to`` and ``counts`` say where and how it went
released   a run gave it back (a whole-file problem, e.g. refused credentials): the next run
           may claim it again
=========  ==================================================================================

Every change is one SQL statement that only one process can win (an INSERT on the primary key,
or an UPDATE guarded by the owner it expects: compare-and-swap), so the claim is exact whether
the competitors are threads, processes, or Prefect workers on one or several machines. A claim is
*stale* when its lease ran out (the owner stopped renewing: killed, crashed, machine gone) or, when
it was made on this same host, when the owner's process no longer exists (a pid means nothing on
another machine); a later run takes a stale claim over and the import resumes from the ledger's
rows (rows already booked are skipped, rows left ``sending`` are checked with the provider).

Rows are claimed the same way (:class:`RowClaims`, tables ``row_claims`` and ``run_leases`` of the
ledger), so two ``run`` commands on one sheet against one ledger never send the same row: a run claims
every row it is about to send, a batch of keys per statement, before the first request leaves; a
row another live run holds is not sent, and its outcome names that run. The lease is the run's, not
each row's: one heartbeat renews it, and a claim is live while its run's lease is. A run releases
its claims when it ends (normally, on an error, on Ctrl-C); a killed run's claims are taken over
once its lease ran out, or at once on the same host when its process is gone. A taken-over row
left ``sending`` is checked with the provider before anything is resent (flows/engine/resume.py).

Several machines need one database all of them can lock. SQLite in WAL mode works only for
processes on one host (WAL needs shared memory, and network file systems break SQLite's locks),
so a SQLite ledger must be local to the machine that serves the inbox; workers on several machines
share a PostgreSQL ledger (``postgresql://`` URL), where the same statements are just as exact
(PostgreSQL re-checks an UPDATE's guard on the row it locked). Leases are in each worker's clock:
keep the machines' clocks in sync (NTP), well within the lease.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import LedgerError
from .database import Database, is_postgres_url
from .ledger import Ledger

__all__ = [
    "CLAIMED",
    "DEFAULT_ROW_LEASE_SECONDS",
    "DONE",
    "RELEASED",
    "Claimed",
    "FileClaims",
    "FileRecord",
    "Heartbeat",
    "Holder",
    "Renewable",
    "RowClaims",
    "file_hash",
]

CLAIMED, DONE, RELEASED = "claimed", "done", "released"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    content_hash TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    state        TEXT NOT NULL,
    owner        TEXT,
    host         TEXT,
    pid          INTEGER,
    lease_until  REAL,
    claimed_at   REAL,
    claims       INTEGER NOT NULL DEFAULT 1,
    finished_at  REAL,
    mapping      TEXT,
    results      TEXT,
    archived_to  TEXT,
    counts       TEXT,
    message      TEXT
);
"""
_COLUMNS = ("content_hash,name,state,owner,host,pid,lease_until,claimed_at,claims,finished_at,mapping,results,"
            "archived_to,counts,message")


def file_hash(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileRecord:
    content_hash: str
    name: str
    state: str
    owner: str | None
    host: str | None
    pid: int | None
    lease_until: float | None
    claimed_at: float | None
    claims: int
    finished_at: float | None
    mapping: str | None
    results: str | None
    archived_to: str | None
    counts: str | None
    message: str | None

    @property
    def count_map(self) -> dict[str, int]:
        return json.loads(self.counts) if self.counts else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _machine() -> str:
    """This boot of this machine, and this process's pid namespace (Linux); "" elsewhere."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


class FileClaims:
    """Claims on inbox files, in the ``files`` table of the ledger database at ``path`` (a SQLite file,
    or a ``postgresql://`` URL such as ``Ledger.path``)."""

    def __init__(self, path: Path | str, *, owner: str, lease_seconds: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path: Path | str = path if is_postgres_url(path) else Path(path)
        self.owner = owner
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.lease_seconds = float(lease_seconds)
        self.clock = clock
        self._db = db = Database(self.path, what="the ledger for inbox claims")
        self.path = db.path
        self.errors = db.errors
        try:
            if not db.postgres:
                db.execute("PRAGMA journal_mode=WAL")
            db.create(_SCHEMA)
        except db.errors as exc:
            db.close()
            raise LedgerError(f"cannot use the ledger at {self.path} for inbox claims: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FileClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads -----------------------------------------------------------------------------------

    def get(self, content_hash: str) -> FileRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE content_hash=?", (content_hash,)).fetchone()
        return FileRecord(*row) if row else None

    def all(self) -> list[FileRecord]:
        with self._lock:
            return [FileRecord(*r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM files ORDER BY claimed_at")]

    def is_stale(self, record: FileRecord) -> bool:
        """A claim nobody is working on: its lease ran out, or it was made on this host and its process is gone."""
        if record.state != CLAIMED:
            return False
        if record.lease_until is None or record.lease_until < self.clock():
            return True
        return record.host == self.host and record.pid is not None and record.pid != self.pid \
            and not _pid_alive(record.pid)

    # --- claiming --------------------------------------------------------------------------------

    def claim(self, content_hash: str, name: str, mapping: str | None = None) -> tuple[bool, FileRecord]:
        """Try to take the file. Returns (won, the record as it now stands).

        Wins when nobody has the content yet, when the last claim was released, or when it is
        stale (then the import resumes from the ledger). Loses to a live claim and to ``done``."""
        now = self.clock()
        lease = now + self.lease_seconds
        with self._lock:
            # exactly one INSERT of a content hash succeeds; RETURNING says whether it was ours
            row = self._db.execute(
                "INSERT INTO files (content_hash,name,state,owner,host,pid,lease_until,claimed_at,mapping) "
                f"VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(content_hash) DO NOTHING RETURNING {_COLUMNS}",
                (content_hash, name, CLAIMED, self.owner, self.host, self.pid, lease, now, mapping)).fetchone()
            if row is None:
                row = self._db.execute(f"SELECT {_COLUMNS} FROM files WHERE content_hash=?", (content_hash,)).fetchone()
        record = FileRecord(*row)
        if record.state == CLAIMED and record.owner == self.owner:
            return True, record
        if record.state == RELEASED or self.is_stale(record):
            # compare-and-swap on the owner and lease we just read: of several takers, one wins
            with self._lock:
                taken = self._db.execute(
                    "UPDATE files SET state=?, owner=?, host=?, pid=?, lease_until=?, claimed_at=?, claims=claims+1, "
                    "name=?, mapping=COALESCE(?, mapping) WHERE content_hash=? AND state=? AND owner IS ? "
                    f"AND lease_until IS ? RETURNING {_COLUMNS}",
                    (CLAIMED, self.owner, self.host, self.pid, lease, now, name, mapping, content_hash,
                     record.state, record.owner, record.lease_until)).fetchone()
            if taken is not None:
                return True, FileRecord(*taken)
            return False, self.get(content_hash) or record
        return False, record

    def renew(self, content_hash: str) -> bool:
        """Extend the lease; False when the claim is no longer ours (taken over or finished)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE files SET lease_until=? WHERE content_hash=? AND owner=? AND state=?",
                (self.clock() + self.lease_seconds, content_hash, self.owner, CLAIMED))
        return cur.rowcount == 1

    def finish(self, content_hash: str, *, results: str | None, archived_to: str | None,
               counts: dict[str, int], message: str = "") -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE files SET state=?, finished_at=?, results=?, archived_to=?, counts=?, message=?, "
                "lease_until=NULL "
                "WHERE content_hash=? AND owner=? AND state=?",
                (DONE, self.clock(), results, archived_to, json.dumps(counts), message, content_hash, self.owner,
                 CLAIMED))
        return cur.rowcount == 1

    def release(self, content_hash: str, message: str) -> bool:
        """Give the file back (it stays in the inbox; the next run may claim it again)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE files SET state=?, message=?, lease_until=NULL WHERE content_hash=? AND owner=? AND state=?",
                (RELEASED, message[:2000], content_hash, self.owner, CLAIMED))
        return cur.rowcount == 1


#: how long a run's row claims outlive it when it is killed on another machine (on the same machine they are
#: taken over as soon as its process is gone); its heartbeat renews the lease every sixth of this
DEFAULT_ROW_LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Holder:
    """The run holding a row's claim, as its lease records it (host, pid, started_at: None without one)."""

    run_id: str
    host: str | None
    pid: int | None
    started_at: str | None
    lease_until: float | None
    machine: str | None = None  # boot and pid namespace: a pid is checked only where it means the same process

    def describe(self) -> str:
        """What a row's outcome says when another run holds it."""
        started = self.started_at or "?"
        with contextlib.suppress(ValueError):  # not a timestamp: shown as stored
            started = dt.datetime.fromisoformat(started).astimezone().isoformat(timespec="seconds")
        return (f"in flight in run {self.run_id} (started {started} by {self.host or '?'}/{self.pid or '?'}); "
                f"rerun after it ends")


@dataclass
class Claimed:
    """What :meth:`RowClaims.claim` got: the keys this run may send (``won``, including those ``taken_over``
    from a run that is gone) and, for the others, the live run holding each."""

    won: set[str]
    held: dict[str, Holder]
    taken_over: dict[str, Holder]


class RowClaims:
    """This run's claims on ledger rows (tables ``row_claims`` and ``run_leases``, on the ledger's own connection).

    :meth:`start` records the run's lease; :meth:`claim` takes a batch of keys (one INSERT per 500 keys
    for those nobody holds, then a compare-and-swap per stale owner); :meth:`renew` is what
    :class:`Heartbeat` calls; :meth:`release` ends the lease and drops the claims."""

    def __init__(self, ledger: Ledger, run_id: str, *, lease_seconds: float = DEFAULT_ROW_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.machine = _machine()
        self.lease_seconds = float(lease_seconds)
        self.clock = clock
        self.errors = ledger.errors
        self.released = False
        #: the lease as this run last wrote it: past it, another run may take the rows over, so none is sent
        self.lease_until = 0.0

    def start(self) -> None:
        self.released = False
        lease = self.clock() + self.lease_seconds
        self.ledger.start_lease(self.run_id, host=self.host, pid=self.pid, lease_until=lease, machine=self.machine)
        self.lease_until = lease

    def renew(self, run_id: str | None = None) -> bool:
        """Extend the lease; False when it had already run out (its rows may have been taken over: stop sending)."""
        if self.released:
            return True
        now = self.clock()
        if not self.ledger.renew_lease(run_id or self.run_id, now=now, lease_until=now + self.lease_seconds):
            return False
        self.lease_until = now + self.lease_seconds
        return True

    def expired(self) -> bool:
        """This run's lease ran out by its own clock (no renewal got through in time): a cheap check per row."""
        return self.clock() >= self.lease_until

    def is_stale(self, holder: Holder) -> bool:
        """A claim whose run is gone: no lease, lease ended or ran out, or made on this host by a process that
        no longer exists (a pid means nothing on another machine, nor in another container with the same host
        name: the boot id and pid namespace must match too). A run in this same process (another thread) is
        alive until its lease runs out."""
        if holder.lease_until is None or holder.lease_until < self.clock():
            return True
        same_machine = holder.host == self.host and (holder.machine or "") == self.machine
        return same_machine and holder.pid is not None and holder.pid != self.pid and not _pid_alive(holder.pid)

    def claim(self, scope: str, keys: list[str]) -> Claimed:
        """Claim these keys for this run: those nobody holds, those this run holds already, and those whose
        holder is stale (taken over). The rest stay with their live holder (``held``). A few statements per
        500 keys, whatever their number: never a transaction per key."""
        won = set(self.ledger.insert_claims(scope, keys, self.run_id))
        held: dict[str, Holder] = {}
        taken: dict[str, Holder] = {}
        seen: dict[str, Holder] = {}
        rest = [k for k in keys if k not in won]
        for _ in range(3):  # a key released or taken over by someone else meanwhile is looked at again
            if not rest:
                break
            holders = {k: Holder(*v) for k, v in self.ledger.claim_holders(scope, rest).items()}
            seen.update(holders)
            gone = {h.run_id: self.is_stale(h) for h in {h.run_id: h for h in holders.values()}.values()}  # once a run
            free: list[str] = []
            stale: dict[str, list[str]] = {}
            for k in rest:
                holder = holders.get(k)
                if holder is None:  # released since our INSERT: insert again
                    free.append(k)
                elif holder.run_id == self.run_id:
                    won.add(k)
                elif gone[holder.run_id]:
                    stale.setdefault(holder.run_id, []).append(k)
                else:
                    held[k] = holder
            for owner, owned in stale.items():
                got = self.ledger.take_claims(scope, owned, self.run_id, owner)
                won.update(got)
                taken.update({k: holders[k] for k in got})
            if free:
                won.update(self.ledger.insert_claims(scope, free, self.run_id))
            rest = [k for k in rest if k not in won and k not in held]
        for k in rest:  # still contended after three looks: leave it to the others this time
            held[k] = seen.get(k) or Holder("another run", None, None, None, None)
        return Claimed(won, held, taken)

    def release(self) -> int:
        """Drop every claim of this run and end its lease (idempotent)."""
        if self.released:
            return 0
        count = self.ledger.release_claims(self.run_id)
        self.released = True
        return count


class Renewable(Protocol):
    """A claim a :class:`Heartbeat` keeps alive: a file's (:class:`FileClaims`) or a run's rows'
    (:class:`RowClaims`)."""

    lease_seconds: float
    errors: tuple[type[BaseException], ...]

    def renew(self, key: str, /) -> bool: ...


class Heartbeat:
    """Renews a claim from a thread every ``lease/6`` seconds while a file is imported.

    A thread, not an asyncio task, so a long synchronous step (reading a big sheet, writing the
    workbook) cannot starve it. When the claim is found taken over, ``on_lost`` is called once."""

    def __init__(self, claims: Renewable, content_hash: str, on_lost: Callable[[], None] | None = None,
                 every: float | None = None) -> None:
        self.claims = claims
        self.content_hash = content_hash
        self.on_lost = on_lost
        self.every = every if every is not None else max(claims.lease_seconds / 6, 0.05)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"claim-heartbeat-{content_hash[:8]}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                ok = self.claims.renew(self.content_hash)
            except self.claims.errors:
                continue  # busy for longer than the timeout: try again on the next beat
            if not ok:
                self.lost = True
                if self.on_lost is not None:
                    self.on_lost()
                return
