"""The inbox: import every new sheet dropped into a folder, once, and archive it with its results.

Plain functions; the Prefect flow ``import_inbox`` (flows/import_inbox.py) is a thin shell that adds a
table artifact and fails the flow run when something needs a person. One pass
(:func:`process_inbox`):

1. **Look** at every file under the inbox (not ``archive/``, hidden files, Excel's ``~$`` lock
   files or ``routes.yaml``), wait ``settle_seconds`` and look again: a file whose size or
   modification time changed, that is empty, or that Excel has open is *incomplete*, left for the
   next run.
2. **Hash** each settled file. Content imported before (any name) is a *duplicate*: moved to
   ``archive/YYYY-MM-DD/duplicates/`` and reported, never imported again.
3. **Route** it to a mapping: the first glob in ``routes.yaml`` (inbox root) that matches its
   path, else its top folder (``jicoo/...`` -> ``<mappings>/jicoo.yaml``). No mapping: reported,
   left in place, never guessed.
4. **Claim** it in the ledger (flows/ledger/claims.py): one run wins; a live claim elsewhere means
   *busy*; a stale one (owner killed) is taken over and the import resumes from the ledger.
5. **Import** it (the engine, or the ``import_sheet`` flow as a subflow), renewing the claim from
   a heartbeat thread; write the results workbook to ``archive/YYYY-MM-DD/<folder>/<stem>.results.xlsx``,
   move the sheet beside it, and mark the claim done.

A whole-file problem (unreadable sheet, broken mapping, refused credentials) releases the claim
and leaves the file for the next run. :attr:`InboxReport.ok` is False when any row ended failed
or unknown, a file had no mapping, or a file could not be imported.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..engine.plan import prepare
from ..engine.run import UNSET, RunOptions, run_import
from ..errors import ImporterError, UsageError
from ..ledger.claims import DONE, FileClaims, Heartbeat, file_hash
from ..ledger.ledger import open_ledger
from ..outcomes import Status
from ..workbooks.sheets import SUPPORTED_SUFFIXES
from .notify import send_notification
from .routes import ROUTES_FILE, load_routes, mapping_for

__all__ = [
    "FILE_STATES",
    "FileReport",
    "ImportJob",
    "Importer",
    "InboxConfig",
    "InboxReport",
    "import_file",
    "process_inbox",
    "run_inbox",
]

log = logging.getLogger("booking_importer.inbox")

#: what can happen to a file in one pass, and whether it makes the run fail
FILE_STATES = {
    "imported": False,     # imported (possibly resuming a killed run); counts say how the rows went
    "duplicate": False,    # same content as a file imported before: moved to archive/<day>/duplicates/
    "incomplete": False,   # still being written (size or time changed, empty, open in Excel): next run
    "busy": False,         # another live run has claimed it
    "no_mapping": True,    # no route and no mapping named after its folder
    "error": True,         # a whole-file problem: the file stays for the next run
    "claim_lost": True,    # another run took the claim over mid-import (this run was too slow to renew)
}
#: row statuses that make the run fail (someone must look)
FAILING_STATUSES = (Status.FAILED.value, Status.UNKNOWN.value)


@dataclass
class InboxConfig:
    inbox: Path
    mappings: Path = Path("mappings")
    archive: Path | None = None  # default: <inbox>/archive
    ledger_url: str | None = None
    settle_seconds: float = 2.0
    lease_seconds: float = 120.0
    resend_unknown: bool = False
    concurrency: int | None = None
    rate: float | None = None  # None: the mapping's; 0: no limit
    day: dt.date | None = None  # archive day folder (default: today, local time)

    def __post_init__(self) -> None:
        self.inbox = Path(self.inbox).resolve()
        self.mappings = Path(self.mappings).resolve()
        self.archive = Path(self.archive).resolve() if self.archive else self.inbox / "archive"

    def check(self) -> None:
        if not self.inbox.is_dir():
            raise UsageError(f"the inbox {self.inbox} is not a folder; create it or give another --inbox")
        if not self.mappings.is_dir():
            raise UsageError(f"the mappings folder {self.mappings} does not exist; give it with --mappings")


@dataclass
class ImportJob:
    """One file to import, as an importer gets it."""

    sheet: Path
    mapping: Path
    out: Path
    ledger_url: str | None
    resend_unknown: bool = False
    concurrency: int | None = None
    rate: float | None = None
    name: str = ""  # the file's path inside the inbox


#: imports one file; returns at least {"counts": {status: n}, "results": path, "run_id": id, "summary": {...}}
Importer = Callable[[ImportJob], Awaitable[dict[str, Any]]]


@dataclass
class FileReport:
    file: str  # path inside the inbox, with / separators
    state: str
    mapping: str | None = None
    provider: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    results: str | None = None
    archived_to: str | None = None
    message: str = ""
    content_hash: str | None = None
    run_id: str | None = None

    @property
    def failing(self) -> bool:
        return FILE_STATES.get(self.state, True) or any(self.counts.get(s, 0) for s in FAILING_STATUSES)


@dataclass
class InboxReport:
    inbox: str
    run_id: str
    started: str
    ended: str = ""
    files: list[FileReport] = field(default_factory=list)
    notify_error: str | None = None

    @property
    def ok(self) -> bool:
        return not any(f.failing for f in self.files) and not self.notify_error

    def totals(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for f in self.files:
            for s, n in f.counts.items():
                out[s] = out.get(s, 0) + n
        return out

    def problems(self) -> list[str]:
        lines = []
        for f in self.files:
            if not f.failing:
                continue
            bad = {s: f.counts.get(s, 0) for s in FAILING_STATUSES if f.counts.get(s, 0)}
            if bad:
                rows = ", ".join(f"{n} {s}" for s, n in bad.items())
                lines.append(f"{f.file}: {rows} row(s); see {f.results}")
            else:
                lines.append(f"{f.file}: {f.state.replace('_', ' ')}: {f.message}")
        if self.notify_error:
            lines.append(f"notify: {self.notify_error}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"inbox": self.inbox, "run_id": self.run_id, "started": self.started, "ended": self.ended,
                "ok": self.ok, "totals": self.totals(), "problems": self.problems(),
                "files": [asdict(f) for f in self.files]}

    def table(self) -> list[dict[str, Any]]:
        """One line per file, for the Prefect table artifact: five columns that fit a normal screen (the
        seven status columns, zero for most files, made it 12 wide); rows are the non-zero counts."""
        rows = []
        for f in self.files:
            counts = ", ".join(f"{n} {s}" for s, n in f.counts.items() if n)
            rows.append({"file": f.file, "state": f.state, "rows": counts,
                         "results": f.results or "", "message": f.message})
        return rows

    def markdown(self) -> str:
        counts = {}
        for f in self.files:
            counts[f.state] = counts.get(f.state, 0) + 1
        head = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items()) or "no files"
        text = f"Inbox `{self.inbox}`: {head}. " + ("All good." if self.ok else "**Needs attention:** " +
                                                  "; ".join(self.problems()))
        return text

    def message(self) -> str:
        """The notification a person reads (Apprise: Slack, Teams, e-mail): what happened, what needs doing."""
        lines = [self.markdown(), ""]
        for f in self.files:
            counts = ", ".join(f"{n} {s}" for s, n in f.counts.items() if n)
            lines.append(f"- {f.file}: {f.state.replace('_', ' ')}" + (f" ({counts})" if counts else "")
                         + (f": {f.message}" if f.message else "") + (f"; results {f.results}" if f.results else ""))
        if not self.ok:
            lines += ["", "Fix the marked cells of invalid/rejected rows in the results workbook; check unknown rows "
                          "with the provider first; then `booking-import rerun RESULTS.xlsx`."]
        return "\n".join(lines)


# --- looking at the inbox ------------------------------------------------------------------------------


@dataclass
class _Candidate:
    path: Path
    rel: str


def _scan(config: InboxConfig) -> tuple[list[_Candidate], list[FileReport]]:
    found: list[_Candidate] = []
    skipped: list[FileReport] = []
    archive = config.archive
    for dirpath, dirnames, filenames in os.walk(config.inbox):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != archive)
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(config.inbox).as_posix()
            if name.startswith((".", "~$")) or rel == ROUTES_FILE:
                continue
            if path.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue  # not a sheet (notes, readmes): left alone, not reported every night
            if (here / f"~${name}").exists() or (here / f"~${name[2:]}").exists():  # Excel's owner file
                skipped.append(FileReport(rel, "incomplete", message="open in Excel (a ~$ lock file is beside it); "
                                                                     "left for the next run"))
                continue
            found.append(_Candidate(path, rel))
    return found, skipped


def _look(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


async def _settled(candidates: list[_Candidate], settle_seconds: float) -> tuple[list[_Candidate], list[FileReport]]:
    """Two looks ``settle_seconds`` apart: only files that did not change (and are not empty) go on."""
    first = {c.rel: _look(c.path) for c in candidates}
    if candidates and settle_seconds > 0:
        await asyncio.sleep(settle_seconds)
    ready, waiting = [], []
    for c in candidates:
        before, after = first[c.rel], _look(c.path)
        if after is None:
            continue  # gone: another worker moved it
        if before != after:
            waiting.append(FileReport(c.rel, "incomplete", message="still being written (its size or time changed "
                                                                   "while we looked); left for the next run"))
        elif after[0] == 0:
            waiting.append(FileReport(c.rel, "incomplete", message="empty (0 bytes): still being written?; "
                                                                   "left for the next run"))
        else:
            ready.append(c)
    return ready, waiting


# --- archive -----------------------------------------------------------------------------------------


def _free(path: Path, results: Path | None = None) -> tuple[Path, Path | None]:
    """``path`` (and its results beside it), with -2, -3 ... added to the stem if taken."""
    n = 1
    cand, res = path, results
    while cand.exists() or (res is not None and res.exists()):
        n += 1
        cand = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if results is not None:
            res = results.with_name(results.name.replace(path.stem, f"{path.stem}-{n}", 1))
    return cand, res


def _archive_targets(config: InboxConfig, rel: str, day: dt.date) -> tuple[Path, Path]:
    base = config.archive / day.isoformat() / rel
    return _free(base, base.with_name(f"{base.stem}.results.xlsx"))  # type: ignore[return-value]


def _move(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest, _ = _free(dest)
    shutil.move(str(src), str(dest))
    return dest


def _rel_to(config: InboxConfig, path: str | Path | None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    try:
        return p.resolve().relative_to(config.inbox).as_posix()
    except ValueError:
        return str(p)


# --- importing ------------------------------------------------------------------------------------


async def import_file(job: ImportJob) -> dict[str, Any]:
    """The default importer: engine.run_import, without Prefect (the flow uses ``import_sheet`` instead)."""
    plan = prepare(job.sheet, job.mapping)
    options = RunOptions(concurrency=job.concurrency, rate=UNSET if job.rate is None else (job.rate or None),
                         ledger_url=job.ledger_url, out=job.out, resend_unknown=job.resend_unknown)
    return (await run_import(plan, options)).as_dict()


async def _import_claimed(config: InboxConfig, claims: FileClaims, cand: _Candidate, digest: str, mapping: Path,
                          importer: Importer, day: dt.date, resumed_from: str | None) -> FileReport:
    dest, results = _archive_targets(config, cand.rel, day)
    assert results is not None
    job = ImportJob(sheet=cand.path, mapping=mapping, out=results, ledger_url=config.ledger_url,
                    resend_unknown=config.resend_unknown, concurrency=config.concurrency, rate=config.rate,
                    name=cand.rel)
    report = FileReport(cand.rel, "imported", mapping=str(mapping), content_hash=digest)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(importer(job))
    heartbeat = Heartbeat(claims, digest, on_lost=lambda: loop.call_soon_threadsafe(task.cancel))
    try:
        with heartbeat:
            result = await task
    except asyncio.CancelledError:
        if not heartbeat.lost:
            raise  # the whole run was cancelled: leave the claim to go stale
        report.state, report.message = "claim_lost", ("another run took this file over while it was being imported "
                                                      "(the claim could not be renewed in time); it finishes it")
        return report
    except ImporterError as exc:
        claims.release(digest, str(exc))
        report.state, report.message = "error", str(exc)
        return report
    except Exception as exc:  # a bug: report it, keep going with the other files
        log.exception("importing %s failed", cand.rel)
        claims.release(digest, f"{type(exc).__name__}: {exc}")
        report.state, report.message = "error", f"{type(exc).__name__}: {exc} (the worker's log has the details)"
        return report
    report.counts = dict(result.get("counts") or {})
    report.results = _rel_to(config, result.get("results"))
    report.run_id = result.get("run_id")
    report.provider = (result.get("summary") or {}).get("provider")
    try:
        archived = _move(cand.path, dest)
    except OSError as exc:  # imported all the same: the claim is finished so it is never imported again
        report.state = "error"
        report.message = (f"imported (results: {report.results}), but it could not be moved to the archive "
                          f"({exc.strerror or exc}); move it out of the inbox by hand")
        claims.finish(digest, results=report.results, archived_to=None, counts=report.counts, message=report.message)
        return report
    report.archived_to = _rel_to(config, archived)
    if resumed_from:
        report.message = f"resumed: run {resumed_from} stopped part-way through it; rows it booked were not sent again"
    if not claims.finish(digest, results=report.results, archived_to=report.archived_to, counts=report.counts,
                         message=report.message):
        log.warning("the claim on %s was taken over just as it finished; it is archived at %s", cand.rel, archived)
    return report


async def process_inbox(config: InboxConfig, importer: Importer | None = None, *,
                        owner: str | None = None) -> InboxReport:
    """One pass over the inbox (see the module docstring). Never raises for a single file's problem."""

    config.check()
    importer = importer or import_file
    owner = owner or f"inbox-{dt.datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    day = config.day or dt.date.today()
    report = InboxReport(str(config.inbox), owner, dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    routes = load_routes(config.inbox, config.mappings)  # a broken routes file stops the pass: ConfigError
    with open_ledger(config.ledger_url) as ledger:
        ledger_path = ledger.path
    candidates, waiting = _scan(config)
    ready, changing = await _settled(candidates, config.settle_seconds)

    add = report.files.append
    for f in [*waiting, *changing]:
        add(f)
    with FileClaims(ledger_path, owner=owner, lease_seconds=config.lease_seconds) as claims:
        for cand in ready:
            try:
                digest = file_hash(cand.path)
            except OSError:
                continue  # moved away by another worker between the looks and now
            record = claims.get(digest)
            if record is not None and record.state == DONE:
                if cand.path.exists():  # else another run has just imported and archived this very file
                    add(_duplicate(config, cand, digest, record, day))
                continue
            mapping, how = mapping_for(cand.rel, routes, config.mappings)
            if mapping is None:
                add(FileReport(cand.rel, "no_mapping", message=how, content_hash=digest))
                continue
            previous = record.owner if record is not None and claims.is_stale(record) else None
            won, record = claims.claim(digest, cand.rel, str(mapping))
            if not won:
                if record.state == DONE:
                    if cand.path.exists():
                        add(_duplicate(config, cand, digest, record, day))
                else:
                    until = dt.datetime.fromtimestamp(record.lease_until or 0).strftime("%H:%M:%S")
                    add(FileReport(cand.rel, "busy", mapping=str(mapping), content_hash=digest,
                                   message=f"being imported by run {record.owner} on {record.host} "
                                           f"(its claim runs until {until} unless renewed)"))
                continue
            if not cand.path.exists():  # moved by the run that held it just before we took over
                claims.release(digest, "the file was gone when claimed")
                continue
            add(await _import_claimed(config, claims, cand, digest, mapping, importer, day, previous))
    report.ended = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return report


def _duplicate(config: InboxConfig, cand: _Candidate, digest: str, record: Any, day: dt.date) -> FileReport:
    when = dt.datetime.fromtimestamp(record.finished_at).strftime("%Y-%m-%d %H:%M") if record.finished_at else "earlier"
    message = f"same content as {record.name}, imported {when}"
    if record.results:
        message += f" (results: {record.results})"
    try:
        moved = _move(cand.path, config.archive / day.isoformat() / "duplicates" / cand.rel)
    except FileNotFoundError:
        return FileReport(cand.rel, "duplicate", message=message + "; already moved by another run",
                          content_hash=digest)
    return FileReport(cand.rel, "duplicate", mapping=record.mapping, results=record.results,
                      archived_to=_rel_to(config, moved), message=message + "; not imported again",
                      content_hash=digest)


async def run_inbox(config: InboxConfig, importer: Importer | None = None, *, notify: str | None = None,
                    owner: str | None = None) -> InboxReport:
    """:func:`process_inbox`, then the ``notify`` hook; the caller decides what a failed report means."""
    started = time.monotonic()
    report = await process_inbox(config, importer, owner=owner)
    log.info("inbox pass took %.1f s: %s", time.monotonic() - started, report.markdown())
    if notify:
        report.notify_error = send_notification(notify, report.to_dict(), message=report.message())
    return report
