"""Reading a worksheet of an Excel workbook with calamine: picking the sheet and its header row."""
from __future__ import annotations

import difflib
from pathlib import Path

import python_calamine

from flows.errors import InputError
from flows.workbooks.cells import _convert_excel_row
from flows.workbooks.excel_formats import _apply_shown_formats
from flows.workbooks.sheet_rows import (
    HEADER_SCAN_ROWS,
    Sheet,
    _build,
    _folded,
    _header_score,
    _one_line,
    shown,
    shown_list,
)

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: .xls, or an encrypted .xlsx
_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".ods")

def _head(p: Path) -> bytes:
    with p.open("rb") as fh:
        return fh.read(8)


def _describe_content(head: bytes) -> str:
    text = head.lstrip().lower()
    if text.startswith((b"<html", b"<!doc", b"<?xml", b"<table")):
        return "it looks like an HTML or XML page"
    if head.startswith(_CFB_MAGIC):
        return "it is an old binary .xls workbook or an encrypted file"
    return "it looks corrupt or is a different kind of file"



# --------------------------------------------------------------------------- Excel


def _open_workbook(p: Path) -> python_calamine.CalamineWorkbook:
    try:
        if p.suffix.lower() == ".xls" and _head(p).startswith(_ZIP_MAGIC):
            # an .xlsx saved under an .xls name: calamine picks the format from the content
            with p.open("rb") as fh:
                return python_calamine.CalamineWorkbook.from_filelike(fh)
        return python_calamine.CalamineWorkbook.from_path(str(p))
    except python_calamine.PasswordError:
        raise InputError(f"{p} is password-protected or encrypted: save an unprotected copy and use that") from None
    except (python_calamine.CalamineError, ValueError) as exc:
        raise InputError(
            f"{p} cannot be read as a workbook ({_one_line(exc)}); it may be corrupt: "
            f"open it in Excel and save it again"
        ) from None
    except OSError as exc:
        raise InputError(f"{p} cannot be opened ({exc.strerror or exc}); check its permissions") from None


def _worksheet_names(wb: python_calamine.CalamineWorkbook) -> list[str]:
    return [m.name for m in wb.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]


def _pick_sheet(wb: python_calamine.CalamineWorkbook, p: Path, sheet: str | None,
                expect: list[str] | None = None) -> str:
    metas = [m for m in wb.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
    names = [m.name for m in metas]
    if not names:
        raise InputError(f"{p} has no worksheets (only charts); add a sheet with a header row")
    if sheet is None:
        visible = [m.name for m in metas if m.visible == python_calamine.SheetVisibleEnum.Visible]
        return (visible or names)[0]
    if sheet in names:
        return sheet
    close = difflib.get_close_matches(sheet, names, n=1, cutoff=0.6)
    hint = f' (did you mean "{shown(close[0])}"?)' if close else ""
    listed = shown_list([f'"{n}"' for n in names])
    if expect:
        # the sheet named (usually by the mapping) is absent: is it the sheet, or the mapping, that is wrong?
        want = _folded(expect)
        counts = {n: _best_header_score(wb, n, want) for n in names}
        best = max(names, key=lambda n: counts[n])
        if counts[best] == 0:
            raise InputError(
                f"{p}: 0 of {len(want)} columns found: is this the right mapping? It reads the sheet "
                f'"{shown(sheet)}", which this file lacks, and none of its sheets ({listed}) has any of its columns'
            )
        raise InputError(
            f'{p} has no sheet named "{shown(sheet)}"{hint}; sheet "{shown(best)}" has {counts[best]} of {len(want)} '
            f"columns the mapping needs: give --sheet \"{shown(best)}\" or set source.sheet in the mapping; "
            f"the sheets are: {listed}"
        )
    raise InputError(f'{p} has no sheet named "{shown(sheet)}"{hint}; the sheets are: {listed}')


def _best_header_score(wb: python_calamine.CalamineWorkbook, name: str, want: set[str]) -> int:
    try:
        try:
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False, nrows=HEADER_SCAN_ROWS + 50)
        except TypeError:  # an older calamine without nrows
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except (python_calamine.CalamineError, ValueError):
        return 0
    return max((_header_score(row, want) for row in raw[: HEADER_SCAN_ROWS + 50]), default=0)



def _read_excel(p: Path, sheet: str | None, *, header_row: int | None = None,
                expect: list[str] | None = None) -> Sheet:
    with _open_workbook(p) as wb:
        name = _pick_sheet(wb, p, sheet, expect)
        try:
            # skip_empty_area=False keeps row/column 0 at A1, so positions are true to the file
            raw = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except (python_calamine.CalamineError, ValueError) as exc:
            raise InputError(
                f'{p}: sheet "{shown(name)}" cannot be read ({_one_line(exc)}); open the file in Excel and save '
                f'it again'
            ) from None
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        _apply_shown_formats(p, name, raw)
    where = f'{p} (sheet "{shown(name)}")'
    return _build(p, raw, None, convert=_convert_excel_row, where=where, sheet_name=name,
                  header_row=header_row, expect=expect)
