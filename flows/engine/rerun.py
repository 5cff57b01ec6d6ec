"""Rerun a results workbook, possibly edited by hand: :func:`load_rerun`.

The workbook is read back as a sheet (its ``_`` result columns set aside, the analyst's own
columns kept, in the order they left them) and mapped with the mapping of the run that wrote
it, found through its Summary sheet and the ledger's ``runs`` table. Each row then goes one of
three ways, decided with the ledger (never with the workbook alone):

* **carried over, not sent**: ``created``/``accepted`` rows whose key the ledger records as
  created or accepted, and rows refused earlier for an edited key once the key is put back (their
  ``_provider_id`` matches the ledger again). They take the ledger's latest status and provider id.
* **refused** (``invalid``, with a message): a row that is, or may be, at the provider
  (``created``, ``accepted``, ``unknown``, or any row with a ``_provider_id``) whose key columns no
  longer lead to that record in the ledger: its key was edited, and sending it would book it
  twice. Putting the key back makes the row carry over again.
* **through the engine**: everything else (``invalid``, ``rejected``, ``failed``, ``skipped``,
  ``unknown``, and rows added by hand with an empty ``_status``). The engine's own ledger check
  then skips rows already done (a ``skipped`` row that an earlier run did create), checks rows
  left ``unknown`` or ``sending`` with the provider's read-back before resending only those
  confirmed absent, and validates and sends the rest with their edited values. A ``skipped`` row
  the ledger has no record of (the run stopped on refused credentials, or was interrupted before
  it) is therefore sent.

A workbook from another ledger (Summary ``ledger id`` differs from the ledger opened) is refused
with exit 2: that ledger cannot say which rows were booked.

**Masked values.** The workbook shows sensitive columns (``sensitive: true``, e.g. a portal password)
as :data:`~flows.redact.MASK`, never the value, so a row going to the engine with the mask in such a
column would send the mask. It never does: the value is taken from the original sheet (the ``input
file`` of the first run, followed back through reruns) when that sheet is still at hand and holds the
same row (same ``_row``) with every other column the mapping reads unchanged; otherwise the row is
``invalid`` with a message asking for the value again. (Assumption: a row whose other values were
edited may now be another person's booking, so its secret is not carried over silently.)
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ImporterError, InputError, LedgerError, UsageError
from ..ledger.database import default_ledger_url, is_postgres_url
from ..ledger.ledger import Entry, Ledger, open_ledger
from ..mapping.model import MappingFile, load_mapping
from ..outcomes import DONE_STATUSES, Outcome, Status
from ..redact import MASK
from ..workbooks.results import RESULT_COLUMNS, RESULTS_SHEET
from ..workbooks.results_reader import load_results, read_summary
from ..workbooks.sheets import Cell, Sheet, read_sheet
from .plan import Plan, PreparedRow, map_rows

if TYPE_CHECKING:  # types only: the run module is the engine, loaded when a run starts
    from .run import ImportRun

__all__ = ["Rerun", "change_lines", "default_rerun_path", "load_rerun", "read_summary"]

_STATUS_WORDS = {s.value for s in Status}
#: statuses meaning "this row is, or may be, at the provider": its key must still lead there
_AT_PROVIDER = {Status.CREATED.value, Status.ACCEPTED.value, Status.UNKNOWN.value}
_DONE = {s.value for s in DONE_STATUSES}
_ROW_LIST_LIMIT = 40


@dataclass
class Rerun:
    """A results workbook made ready to go through the engine again."""

    plan: Plan
    settled: dict[int, Outcome]  # row index -> outcome fixed before sending (carried over or refused)
    source: Path
    previous: dict[str, str]  # the workbook's Summary
    before: list[str]  # each row's _status in the workbook ("" for rows added by hand)
    ledger_url: str
    out: Path
    notes: list[str] = field(default_factory=list)

    @property
    def carried(self) -> int:
        return sum(o.status is not Status.INVALID for o in self.settled.values())

    @property
    def refused(self) -> int:
        return sum(o.status is Status.INVALID for o in self.settled.values())

    def describe(self, run: ImportRun) -> dict[str, object]:
        """Summary entries saying what this rerun changed (the engine calls it when writing the workbook)."""
        info: dict[str, object] = {"rerun of": str(self.source), "previous run id": self.previous.get("run id", "")}
        previous_total = _int(self.previous.get("total"))
        info["rows in the workbook"] = len(self.before)
        if previous_total is not None and previous_total > len(self.before):
            info["rows removed by hand"] = previous_total - len(self.before)
        added = sum(1 for b in self.before if not b)
        if added:
            info["rows added by hand"] = added
        info["rows carried over (not sent)"] = self.carried
        info["rows sent in this rerun"] = sum(1 for o in run.outcomes if o is not None and o.attempts > 0)
        after = [o.status.value if o is not None else Status.SKIPPED.value for o in run.outcomes]
        for line, text in change_lines(self.before, after, [r.line for r in run.plan.rows]):
            info[line] = text
        for i, note in enumerate(self.notes, 1):
            info[f"note {i}"] = note
        return info


def change_lines(before: list[str], after: list[str], lines: list[int]) -> list[tuple[str, str]]:
    """Summary lines: each status's count before -> after, then which rows moved between statuses."""
    out: list[tuple[str, str]] = []
    b, a = Counter(x or "(new)" for x in before), Counter(after)
    for status in [s.value for s in Status]:
        if b.get(status) or a.get(status):
            out.append((f"{status}: before -> after", f"{b.get(status, 0)} -> {a.get(status, 0)}"))
    moves: dict[tuple[str, str], list[int]] = {}
    for was, now, line in zip(before, after, lines, strict=False):
        if (was or "(new)") != now:
            moves.setdefault((was or "(new)", now), []).append(line)
    for (was, now), rows in sorted(moves.items()):
        shown = ", ".join(map(str, rows[:_ROW_LIST_LIMIT])) + (f" (+{len(rows) - _ROW_LIST_LIMIT} more)"
                                                               if len(rows) > _ROW_LIST_LIMIT else "")
        out.append((f"{was} -> {now}", f"{len(rows)} row(s): {shown}"))
    return out


# --- reading the workbook ---------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value).strip()


def _int(text: object) -> int | None:
    try:
        return int(float(str(text).strip()))
    except (TypeError, ValueError):
        return None


@dataclass
class _Read:
    sheet: Sheet
    status: list[str]
    provider_id: list[str]
    http_status: list[int | None]
    message: list[str]


def _read_rows(path: Path, full: Sheet) -> _Read:
    """The Results sheet (``full``) as a Sheet of the analyst's columns (line numbers = the original ``_row``)."""
    if "_status" not in full.columns:
        raise InputError(f"{path}: the {RESULTS_SHEET} sheet has no _status column, so it cannot say which rows "
                         f"were booked; put the column back (undo its deletion) or give the workbook as the run "
                         f"wrote it")
    pos = {name: full.columns.index(name) for name in RESULT_COLUMNS if name in full.columns}
    keep = [j for j, name in enumerate(full.columns) if name not in RESULT_COLUMNS]

    def col(name: str, cells: list[Cell]) -> str:
        j = pos.get(name)
        return _text(cells[j]) if j is not None else ""

    # back in the original order (the analyst may have sorted by _status to find the red rows; a copied row
    # sits beside its original); rows added by hand, with no _row, go last, numbered by their place here
    order = [(_int(col("_row", cells)) or float("inf"), n) for n, cells in enumerate(full.rows)]
    rows, lines, status, pids, https, messages = [], [], [], [], [], []
    for _, n in sorted(order):
        cells, seen_at = full.rows[n], full.line_numbers[n]
        rows.append([cells[j] for j in keep])
        lines.append(_int(col("_row", cells)) or seen_at)
        status.append(col("_status", cells).lower())
        pids.append(col("_provider_id", cells))
        https.append(_int(col("_http_status", cells)))
        messages.append(col("_message", cells))
    sheet = Sheet(path=path, columns=[full.columns[j] for j in keep], rows=rows, line_numbers=lines,
                  sheet_name=RESULTS_SHEET)
    return _Read(sheet, status, pids, https, messages)


# --- where the mapping and the ledger are -----------------------------------------------------------


def _ledger_file(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    if "://" in url:
        return None
    return Path(url)


def _open_checked_ledger(path: Path, ledger_url: str | None, summary: dict[str, str]) -> Ledger:
    """The ledger to rerun against: --ledger, else the one the Summary names; refuses a foreign one."""
    written_with = summary.get("ledger", "")
    known = written_with and (is_postgres_url(written_with) or Path(written_with).is_file())
    url = ledger_url or (written_with if known else None) or default_ledger_url()
    file = _ledger_file(url)
    wanted = summary.get("ledger id", "")
    if file is not None and not file.is_file() and wanted:  # (no ledger id: `validate` wrote it, nothing was sent)
        where = f" It was written with the ledger {written_with} (id {wanted})." if written_with else ""
        raise LedgerError(f"there is no ledger at {file}, so nothing can say which rows of {path.name} were booked."
                          f"{where} Give that ledger with --ledger PATH")
    ledger = open_ledger(str(file.resolve()) if file is not None else url)
    if wanted and wanted != ledger.ledger_id:
        ledger.close()
        raise LedgerError(f"{path.name} was written with another ledger (id {wanted}, at {written_with or 'unknown'}); "
                          f"the ledger at {ledger.path} has id {ledger.ledger_id}. Rerunning against it could book "
                          f"rows twice: give the ledger the workbook was written with, "
                          f"--ledger {written_with or 'PATH'}")
    return ledger


def _find_mapping(path: Path, given: Path | str | None, summary: dict[str, str],
                  ledger: Ledger) -> tuple[Path, list[str]]:
    notes: list[str] = []
    remembered = [summary.get("mapping", "")]
    run = ledger.run_info(summary.get("run id", "")) if summary.get("run id") else None
    if run and run.get("mapping"):
        remembered.insert(0, run["mapping"] or "")
    remembered = [m for m in dict.fromkeys(remembered) if m]
    if given is not None:
        mapping = Path(given)
        if not mapping.is_file():
            raise UsageError(f"the mapping {mapping} given with --mapping does not exist; check the path")
        if remembered and all(Path(m).resolve() != mapping.resolve() for m in remembered):
            notes.append(f"mapping {mapping} given with --mapping (the workbook was written with {remembered[0]})")
        return mapping.resolve(), notes
    if not remembered:
        raise UsageError(f"{path.name} does not say which mapping wrote it (its Summary has no mapping); "
                         f"give it with --mapping mappings/<provider>.yaml")
    for m in remembered:
        for candidate in (Path(m), path.parent / m):
            if candidate.is_file():
                return candidate.resolve(), notes
    raise UsageError(f"the mapping {path.name} was written with, {remembered[0]}, is not there any more (moved or "
                     f"renamed?); give it with --mapping PATH")


def default_rerun_path(source: Path) -> Path:
    """Beside the workbook: ``<sheet>.rerun-<time>.xlsx`` (earlier ``.results-``/``.rerun-`` stamps dropped)."""
    stem = re.sub(r"(\.(results|rerun)(-\d{8}-\d{6})?)+$", "", source.stem)
    return source.with_name(f"{stem}.rerun-{dt.datetime.now():%Y%m%d-%H%M%S}.xlsx")


# --- deciding each row ----------------------------------------------------------------------------


def _original_key(ledger: Ledger, scope: str, provider_id: str) -> str | None:
    for entry in ledger.all(scope):
        if entry.provider_id == provider_id:
            return " / ".join(json.loads(entry.key))
    return None


def _edited_key(row: PreparedRow, key_columns: list[str], was: str, pid: str, entry: Entry | None,
                original: str | None) -> Outcome:
    label = " + ".join(key_columns)
    shown = row.key_text or "(empty)"
    if entry is not None and entry.provider_id and pid and entry.provider_id != pid:
        now = f"{label} {shown!r} is the key of another booking ({entry.provider_id})"
    else:
        now = f"the ledger has no row with {label} {shown!r}"
    whose = f" (created as {pid}{f' with {label} {original!r}' if original else ''})" if pid else ""
    return Outcome(Status.INVALID,
                   f"this row was {was}{whose}, but {now}: its key was edited after the run, and sending it would book "
                   f"it twice. Put the key back to continue (to change the booking itself, change it at the provider)",
                   provider_id=pid or None,
                   column_messages={c: ["edited after the row was booked: put the old value back"]
                                    for c in key_columns})


# --- masked values ---------------------------------------------------------------------------------

#: how many reruns back the original sheet is looked for
_ORIGIN_HOPS = 50


def _original_sheet(path: Path, summary: dict[str, str], mapping: MappingFile) -> tuple[Sheet | None, str]:
    """The sheet the first run read, following reruns back through their Summaries; (None, why) when it
    is not at hand."""
    seen = {path.resolve()}
    here, info = path, summary
    for _ in range(_ORIGIN_HOPS):
        given = info.get("input file", "")
        if not given:
            return None, "is not named in the workbook's Summary"
        candidate = Path(given)
        if not candidate.is_file() and not candidate.is_absolute():
            candidate = here.parent / given
        if not candidate.is_file():
            return None, f"{given} is not there any more"
        if candidate.resolve() in seen:
            return None, f"{given} is a results workbook that leads back to itself"
        seen.add(candidate.resolve())
        try:
            earlier = read_summary(candidate) if candidate.suffix.lower() == ".xlsx" else None
        except ImporterError:
            earlier = None  # an ordinary workbook: the original sheet
        if earlier is not None:
            here, info = candidate, earlier
            continue
        try:
            sheet = read_sheet(candidate, sheet=info.get("worksheet") or mapping.source.sheet,
                               encoding=mapping.source.encoding, delimiter=mapping.source.delimiter)
        except ImporterError:
            return None, f"{given} cannot be read any more"
        return sheet, str(candidate)
    return None, "is more reruns back than are followed"


def _fill_masked(sheet: Sheet, mapping: MappingFile, summary: dict[str, str],
                 path: Path) -> tuple[dict[int, tuple[str, list[str]]], list[str]]:
    """Put the real value back into masked sensitive cells of ``sheet`` (in place) from the original sheet,
    row by row where the row is otherwise unchanged; returns {row index: message} for the rows whose value
    must be typed again, and notes for the Summary."""
    sensitive = [c for c in mapping.sensitive_columns() if c in sheet.columns]
    if not sensitive:
        return {}, []
    pos = {c: sheet.columns.index(c) for c in sheet.columns}
    masked_rows = [i for i, cells in enumerate(sheet.rows) if any(MASK in _text(cells[pos[c]]) for c in sensitive)]
    if not masked_rows:
        return {}, []
    original, where = _original_sheet(path, summary, mapping)
    compared = [c for c in mapping.columns() if c not in sensitive and c in pos]
    by_line: dict[int, list[Cell]] = {}
    opos: dict[str, int] = {}
    if original is not None:
        by_line = dict(zip(original.line_numbers, original.rows, strict=False))
        opos = {c: original.columns.index(c) for c in original.columns}
    unresolved: dict[int, tuple[str, list[str]]] = {}
    filled = 0
    for i in masked_rows:
        cells = sheet.rows[i]
        columns = [c for c in sensitive if MASK in _text(cells[pos[c]])]
        old = by_line.get(sheet.line_numbers[i]) if original is not None else None
        if any(_text(cells[pos[c]]) != MASK for c in columns):
            why = "the cell holds the mask with something else, so it is neither the value nor the workbook's mask"
        elif original is None:
            why = f"the original sheet {where}"
        elif old is None:
            why = f"the original sheet {where} has no row {sheet.line_numbers[i]}"
        elif any(c not in opos for c in columns) or any(MASK in _text(old[opos[c]]) for c in columns):
            why = f"the original sheet {where} does not hold the value"
        elif any(c not in opos or _text(cells[pos[c]]) != _text(old[opos[c]]) for c in compared):
            changed = [c for c in compared if c not in opos or _text(cells[pos[c]]) != _text(old[opos[c]])]
            why = (f"the row was edited ({', '.join(changed[:5])}) since the original sheet {where}, so its value "
                   f"is not carried over")
        else:
            for c in columns:
                cells[pos[c]] = old[opos[c]]
            filled += 1
            continue
        unresolved[i] = (f"{' and '.join(columns)} holds {MASK}, the mask the results workbook shows instead of the "
                         f"value, which is never sent: type the value again in that cell ({why}), then rerun", columns)
    notes = [f"{filled} row(s): masked {', '.join(sensitive)} taken from the original sheet {where}"] if filled else []
    return unresolved, notes


def load_rerun(results: Path | str, *, mapping: Path | str | None = None, ledger_url: str | None = None,
               out: Path | str | None = None) -> Rerun:
    """Read a results workbook and decide, with the ledger, what each row needs. No network.

    Raises (exit 2) for a file that is not a results workbook, a mapping that cannot be found, a
    missing ledger, or a workbook written with another ledger."""
    path = Path(results)
    if not path.is_file():
        raise InputError(f"{path}: results workbook not found; check the path")
    book = load_results(path)
    summary = book.summary
    read = _read_rows(path, book.sheet)
    ledger = _open_checked_ledger(path, ledger_url, summary)
    try:
        mapping_path, notes = _find_mapping(path, mapping, summary, ledger)
        mapping_file = load_mapping(mapping_path)
        if summary.get("provider") and summary["provider"] != mapping_file.provider:
            raise UsageError(f"{path.name} was written for {summary['provider']}, but the mapping {mapping_path} is "
                             f"for {mapping_file.provider}; give a {summary['provider']} mapping with --mapping")
        masked, mask_notes = _fill_masked(read.sheet, mapping_file, summary, path)
        notes.extend(mask_notes)
        plan = map_rows(mapping_file, mapping_path, read.sheet)
        scope = mapping_file.scope
        entries = ledger.get_many(scope, [r.ledger_key for r in plan.rows if all(r.key)])
        settled: dict[int, Outcome] = {}
        carried: dict[str, int] = {}  # provider id -> the row carrying it over
        for r in plan.rows:
            was, pid = read.status[r.index], read.provider_id[r.index]
            entry = entries.get(r.ledger_key) if all(r.key) else None
            if was and was not in _STATUS_WORDS:
                settled[r.index] = Outcome(Status.INVALID,
                                           f"_status {was!r} is not a status this tool writes: put back the word the "
                                           f"run wrote (or clear it to import the row as new)",
                                           provider_id=pid or None)
                continue
            mismatch = entry is not None and pid and entry.provider_id and entry.provider_id != pid
            if (pid or was in _AT_PROVIDER) and (entry is None or mismatch):
                original = _original_key(ledger, scope, pid) if pid else None
                settled[r.index] = _edited_key(r, list(mapping_file.key), was or "booked", pid, entry, original)
                continue
            restored = bool(pid) and was != Status.SKIPPED.value and entry is not None and entry.provider_id == pid
            if (was in _DONE or restored) and entry is not None and entry.status in _DONE:
                booking = entry.provider_id or pid or r.ledger_key
                if booking in carried:  # a booked row copied and pasted: the copy must not count (or go) twice
                    settled[r.index] = Outcome(Status.INVALID,
                                               f"a copy of row {carried[booking]} (the same booking, "
                                               f"{entry.provider_id or r.key_text}): delete one of them",
                                               provider_id=pid or None)
                    continue
                carried[booking] = r.line
                settled[r.index] = Outcome(Status(entry.status), entry.message or read.message[r.index],
                                           provider_id=entry.provider_id or pid or None,
                                           http_status=entry.http_status or read.http_status[r.index])
            # anything else goes to the engine, whose ledger check decides (see the module docstring)
        for i, (message, columns) in masked.items():  # going to the engine with a mask in a sensitive column
            if i not in settled:
                problems = [str(p) for p in plan.rows[i].problems]
                settled[i] = Outcome(Status.INVALID, "; ".join([message, *problems]),
                                     provider_id=read.provider_id[i] or None,
                                     column_messages={c: ["type the value again: the workbook only shows the mask"]
                                                      for c in columns})
    finally:
        ledger.close()
    target = Path(out) if out else default_rerun_path(path)
    return Rerun(plan=plan, settled=settled, source=path, previous=summary, before=read.status,
                 ledger_url=str(ledger.path), out=target, notes=notes)


def summary_lines(rerun: Rerun, run: ImportRun) -> list[str]:
    """A few terminal lines on what the rerun changed (the Summary sheet has them all)."""
    after = [o.status.value if o is not None else Status.SKIPPED.value for o in run.outcomes]
    lines = [f"rerun of {rerun.source.name}: {rerun.carried} row(s) carried over, "
             f"{sum(1 for o in run.outcomes if o is not None and o.attempts > 0)} sent"]
    for key, text in change_lines(rerun.before, after, [r.line for r in run.plan.rows]):
        if " -> " in key and ":" not in key:
            lines.append(f"  {key}: {text}")
    return lines
