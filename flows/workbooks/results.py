"""The per-row results workbook: :func:`write_results` and :func:`read_results`.

A report a person acts on. Sheet ``Results`` opens on what matters: ``_status`` and ``_message``
are the first two columns and stay in view (frozen with the header) while the input columns scroll;
messages wrap, so they are read whole. Then the input columns exactly as read (date and time cells
keep the number format they had in the input workbook, e.g. ``dd/mm/yyyy``; see
:func:`input_number_formats`), then ``_row``, ``_provider_id``, ``_http_status`` and ``_attempts``.
A row is filled by **who acts** (:data:`STATUS_FILLS`, explained by :data:`WHO_ACTS`); the input cell
a message names is marked (darker, with a red border) and carries the message as a cell note. The
header has an autofilter.

Sheet ``Summary`` leads with what a person needs: the counts (only statuses that occur, each row in
its status colour: the legend), the problems by column, and the exact next command
(``booking-import rerun ...``). Below the heading :data:`TECHNICAL_HEADING` come the caller's run
details as key/value rows in the order given (dates as ISO text, numbers as numbers): the part
:func:`read_results` (and ``rerun``) read back. :func:`read_results` gives the Results columns
in the order input columns, then :data:`RESULT_COLUMNS`, whatever their place on the sheet.

Safety: XlsxWriter never turns text into formulas, URLs or numbers here, and text starting with
``= + - @``, tab, CR or NUL gets a quote-prefix style, so it stays text even after a user edits the
cell in Excel. Sensitive columns are masked, a marked cell too (its note is the row's message, which
the engine has already masked). The file is written to a temporary name beside the target and
renamed into place, so a crash never leaves a half-written workbook.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import xlsxwriter
from xlsxwriter.exceptions import XlsxFileError

from flows.errors import ImporterError, UsageError
from flows.outcomes import Outcome, Status
from flows.workbooks.input_formats import input_number_formats
from flows.workbooks.results_layout import (
    _WORKBOOK_OPTIONS,
    FAULT_FILL,
    LEAD_COLUMNS,
    MASK,
    MESSAGE_LIMIT,
    NOT_REACHED_MESSAGE,
    RESULT_COLUMNS,
    RESULTS_SHEET,
    STATUS_FILLS,
    SUMMARY_SHEET,
    TECHNICAL_HEADING,
    WHO_ACTS,
)
from flows.workbooks.results_reader import read_results
from flows.workbooks.results_sheet import _FILLS, _write_results_sheet
from flows.workbooks.results_styles import _Formats
from flows.workbooks.results_xml import _attr, row_attrs, rows_xml, splice_rows
from flows.workbooks.sheets import Cell, column_letter
from flows.workbooks.summary_sheet import _write_summary_sheet, next_command

__all__ = [
    "FAULT_FILL",
    "LEAD_COLUMNS",
    "MASK",
    "MESSAGE_LIMIT",
    "NOT_REACHED_MESSAGE",
    "RESULTS_SHEET",
    "RESULT_COLUMNS",
    "STATUS_FILLS",
    "SUMMARY_SHEET",
    "TECHNICAL_HEADING",
    "WHO_ACTS",
    "check_writable",
    "input_number_formats",
    "next_command",
    "read_results",
    "write_results",
]

def check_writable(path: str | os.PathLike[str], option: str = "--out",
                   source: str | os.PathLike[str] | None = None) -> Path:
    """Refuse (UsageError, exit 2) a results path that could not be written, before anything is sent.

    The check is the write itself: a throwaway file is created (and removed) in the folder the workbook
    would go to, or in the nearest existing folder above it (write_results creates the missing ones),
    so permissions, read-only file systems and ACLs are judged as the operating system judges them."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {target} is a folder; give a file name, e.g. {target / 'results.xlsx'}")
    if source is not None and target.exists() and target.resolve() == Path(source).resolve():
        raise UsageError(f"{option} {target} is the input sheet itself, which the results would replace; give "
                         f"another file name, e.g. {target.with_name(target.stem + '.results.xlsx')}")
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {target} cannot be written: {folder} is a file, not a folder; choose another "
                         f"output path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".booking-import-check-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {target} cannot be written: no file can be created in {folder} "
                         f"({exc.strerror or exc}); choose another output path") from None
    return target


def write_results(
    path: str | os.PathLike[str],
    *,
    columns: list[str],
    rows: list[list[Cell]],
    line_numbers: list[int],
    outcomes: Sequence[Outcome | None],
    summary: Mapping[str, object],
    masked_columns: Collection[str] = (),
    number_formats: Mapping[str, str] | None = None,
) -> Path:
    """Write the results workbook atomically to ``path`` (parent folders created); return the path.

    ``rows``, ``line_numbers`` and ``outcomes`` run in parallel; a ``None`` outcome is written as
    ``skipped`` with :data:`NOT_REACHED_MESSAGE`. Input columns named like a result column (the
    input was itself a results workbook) are left out, since fresh values follow them.
    ``number_formats`` (column -> Excel number format, from :func:`input_number_formats`) shows the
    date and time cells of those columns as the input did; others show ``yyyy-mm-dd`` / ``hh:mm``.
    Raises :class:`ImporterError` when the file cannot be written (e.g. it is open in Excel).
    """
    if not (len(rows) == len(line_numbers) == len(outcomes)):
        raise ValueError(
            f"rows ({len(rows)}), line_numbers ({len(line_numbers)}) and outcomes ({len(outcomes)}) differ in length"
        )
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImporterError(
            f"cannot create the folder {target.parent} ({exc.strerror or exc}); choose another output path"
        ) from None
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp.xlsx")
    frame = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.frame.xlsx")
    try:
        # XlsxWriter writes the frame (styles, header, notes, filter, Summary); the data rows are
        # written as XML and spliced in: see flows.workbooks.results_xml for why
        workbook = xlsxwriter.Workbook(str(frame), _WORKBOOK_OPTIONS)
        formats = _Formats(workbook)
        tally, plan = _write_results_sheet(
            workbook.add_worksheet(RESULTS_SHEET), formats, columns, rows, line_numbers, outcomes, masked_columns,
            number_formats or {},
        )
        _write_summary_sheet(workbook.add_worksheet(SUMMARY_SHEET), formats, tally, summary, target)
        workbook.close()
        styles = {status: (row_attrs(formats.row(status)), STATUS_FILLS.get(status)) for status in Status}
        custom = {c: {fill: _attr(formats.custom(fill, code)) for fill in _FILLS} for c, code in plan.custom.items()}
        chunks = rows_xml(rows, line_numbers, outcomes, keep=plan.keep, masked=plan.masked, custom=custom,
                          faults=plan.faults, styles=styles, fault_style=row_attrs(formats.fault()), lead=plan.lead,
                          last_col=plan.last_col)
        splice_rows(frame, tmp, chunks, f"A1:{column_letter(plan.last_col)}{len(rows) + 1}")
        os.replace(tmp, target)
    except (OSError, XlsxFileError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        raise ImporterError(
            f"cannot write the results workbook {target} ({reason}); "
            f"close it if it is open in Excel, or choose another output path"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
        frame.unlink(missing_ok=True)
    return target
