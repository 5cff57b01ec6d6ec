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
import fnmatch
import json
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .engine.plan import prepare
from .engine.run import UNSET, RunOptions, run_import
from .errors import ConfigError, ImporterError, UsageError
from .ledger.claims import DONE, FileClaims, Heartbeat, file_hash
from .outcomes import Status
from .workbooks.sheets import SUPPORTED_SUFFIXES

__all__ = [
    "FILE_STATES",
    "ROUTES_FILE",
    "FileReport",
    "ImportJob",
    "Importer",
    "InboxConfig",
    "InboxReport",
    "import_file",
    "load_routes",
    "mapping_for",
    "process_inbox",
    "run_inbox",
    "send_notification",
]

log = logging.getLogger("booking_importer.inbox")

ROUTES_FILE = "routes.yaml"
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


# --- routing -----------------------------------------------------------------------------------------


def load_routes(inbox: Path, mappings: Path) -> list[tuple[str, Path]]:
    """``routes.yaml`` in the inbox root: ``glob: mapping`` pairs, first match wins.

    A value with a .yaml/.yml suffix is a path (absolute, or relative to the inbox root); a bare
    name such as ``jicoo`` means ``<mappings>/jicoo.yaml``. Globs match the file's path inside the
    inbox with / separators (``*`` also matches across folders)."""
    path = inbox / ROUTES_FILE
    if not path.is_file():
        return []
    from .mapping.yamlfile import load_yaml

    lines = path.read_text(encoding="utf-8-sig").splitlines()
    if not any(line.strip() and not line.lstrip().startswith("#") for line in lines):
        return []  # an empty routes file: the folder rule alone
    data, _ = load_yaml(path)
    if data is None:
        return []
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                             for k, v in data.items()):
        raise ConfigError(f"{path}: write one `glob: mapping` pair per line, e.g. "
                          f"'\"partners/*.csv\": jicoo' or '\"*.xlsx\": mappings/jicoo.yaml'")
    routes = []
    for pattern, target in data.items():
        target = target.strip()
        if target.endswith((".yaml", ".yml")):
            p = Path(target).expanduser()
            routes.append((pattern, p if p.is_absolute() else (inbox / p).resolve()))
        else:
            routes.append((pattern, mappings / f"{target}.yaml"))
    return routes


def mapping_for(rel: str, routes: list[tuple[str, Path]], mappings: Path) -> tuple[Path | None, str]:
    """The mapping for a file at ``rel`` inside the inbox, and how it was chosen (or why there is none)."""
    for pattern, target in routes:
        if fnmatch.fnmatchcase(rel, pattern):
            if target.is_file():
                return target, f"{ROUTES_FILE}: {pattern}"
            return None, f"{ROUTES_FILE} sends it ({pattern!r}) to {target}, which does not exist"
    parts = rel.split("/")
    if len(parts) > 1:
        candidate = mappings / f"{parts[0]}.yaml"
        if candidate.is_file():
            return candidate, f"folder {parts[0]}/"
        return None, (f"no route in {ROUTES_FILE} matches it and there is no {candidate.name} in {mappings} for its "
                      f"folder {parts[0]}/; add the mapping or a route")
    return None, (f"it is in the inbox root and no route in {ROUTES_FILE} matches it; put it in a folder named "
                  f"after its mapping (e.g. jicoo/) or add a route")


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
    from .ledger.ledger import open_ledger

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
        return FileReport(cand.rel, "duplicate", message=message + "; already moved by another run", content_hash=digest)
    return FileReport(cand.rel, "duplicate", mapping=record.mapping, results=record.results,
                      archived_to=_rel_to(config, moved), message=message + "; not imported again",
                      content_hash=digest)


# --- notify ------------------------------------------------------------------------------------------


def _resolve_target(target: str) -> str:
    if target.startswith("env:"):
        name = target[4:]
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigError(f"--notify {target}: the environment variable {name} is not set in the worker")
        return value
    return target


_APPRISE_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)


def is_apprise_url(target: str) -> bool:
    """An Apprise URL (slack://, msteams://, mailto://, json://, form://, ...): any scheme but http(s),
    which stays the plain JSON webhook. A shell command never starts with ``scheme://``."""
    m = _APPRISE_URL.match(target.strip())
    return bool(m) and m.group(1).lower() not in ("http", "https")


def check_apprise_url(target: str) -> str | None:
    """None when Apprise knows the URL, else a one-line reason (so serve refuses it at start, exit 2)."""
    import apprise

    apprise_log = logging.getLogger("apprise")
    saved, apprise_log.disabled = apprise_log.disabled, True  # its own "Unparseable URL" line: ours says more
    try:
        if apprise.Apprise().add(target.strip()):
            return None
    finally:
        apprise_log.disabled = saved
    scheme = target.split("://", 1)[0]
    return (f"Apprise does not understand the {scheme}:// URL (unknown service or missing parts); see "
            f"https://github.com/caronc/apprise/wiki for the URL of each service, e.g. slack://, msteams://, mailto://")


def _describe_target(target: str) -> str:
    """A webhook's scheme and host only: the path often holds a token."""
    if target.startswith(("http://", "https://")):
        import httpx

        url = httpx.URL(target)
        return f"webhook {url.scheme}://{url.host}"
    if is_apprise_url(target):
        rest = target.split("://", 1)[1]
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]  # never the user:password@ part, nor a path holding a token
        return f"Apprise {target.split('://', 1)[0]}://{host}"
    return f"command {target.split()[0] if target.split() else target!r}"


def _send_apprise(target: str, summary: dict[str, Any], message: str | None, what: str) -> str | None:
    """Notify through Apprise: a title and the human summary (markdown). Assumption (Apprise's docs leave
    it to each service): a service that takes structured data (json://, form://) gets the same text."""
    import apprise

    problem = check_apprise_url(target)
    if problem:
        return f"the notify {what}: {problem}"
    sender = apprise.Apprise()
    sender.add(target.strip())
    title = f"booking-importer: inbox {summary.get('inbox', '')}: " + ("all good" if summary.get("ok") else
                                                                       "needs attention")
    body = message or json.dumps(summary, ensure_ascii=False, default=str)
    try:
        ok = sender.notify(title=title, body=body, body_format=apprise.NotifyFormat.MARKDOWN)
    except Exception as exc:  # a plugin's own failure: reported like an unreachable webhook
        return f"the notify {what} failed ({type(exc).__name__})"
    return None if ok else f"the notify {what} could not deliver the summary (see the worker's log)"


def send_notification(target: str, summary: dict[str, Any], timeout: float = 30.0,
                      message: str | None = None) -> str | None:
    """Send the summary JSON: POSTed to an http(s) URL, through Apprise for any other URL (slack://,
    msteams://, mailto://..., with ``message`` as its text), else on the stdin of a shell command.

    ``env:NAME`` reads the URL or command from the worker's environment (keeps webhook tokens out
    of deployment parameters). Returns None on success, else a one-line reason."""
    try:
        target = _resolve_target(target)
    except ConfigError as exc:
        return str(exc)
    body = json.dumps(summary, ensure_ascii=False, default=str)
    what = _describe_target(target)
    if is_apprise_url(target):
        return _send_apprise(target, summary, message, what)
    if target.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.post(target, content=body.encode(), timeout=timeout,
                                  headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            return f"the notify {what} could not be reached ({type(exc).__name__})"
        if response.status_code >= 400:
            return f"the notify {what} answered {response.status_code}"
        return None
    try:
        done = subprocess.run(target, shell=True, input=body, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"the notify {what} did not finish within {timeout:g} s"
    except OSError as exc:
        return f"the notify {what} could not be started ({exc})"
    if done.returncode != 0:
        tail = " ".join((done.stderr or "").split())[-200:]
        return f"the notify {what} exited with {done.returncode}" + (f": {tail}" if tail else "")
    return None


async def run_inbox(config: InboxConfig, importer: Importer | None = None, *, notify: str | None = None,
                    owner: str | None = None) -> InboxReport:
    """:func:`process_inbox`, then the ``notify`` hook; the caller decides what a failed report means."""
    started = time.monotonic()
    report = await process_inbox(config, importer, owner=owner)
    log.info("inbox pass took %.1f s: %s", time.monotonic() - started, report.markdown())
    if notify:
        report.notify_error = send_notification(notify, report.to_dict(), message=report.message())
    return report
