"""The number formats of an input workbook's date and time columns, so the results show them alike."""
from __future__ import annotations

import html
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

from flows.workbooks.excel_formats import _NS_MAIN, _sheet_part, _strip_format

# --------------------------------------------------------------------------- input number formats

#: Excel's built-in date/time number formats (ids 14-22, 45-47) as format codes
_BUILTIN_DATE_FORMATS = {14: "mm-dd-yy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy", 18: "h:mm AM/PM",
                         19: "h:mm:ss AM/PM", 20: "h:mm", 21: "h:mm:ss", 22: "m/d/yy h:mm", 45: "mm:ss",
                         46: "[h]:mm:ss", 47: "mmss.0"}
_FORMAT_SCAN_ROWS = 50  # data rows under the header looked at for each column's format


def input_number_formats(path: str | os.PathLike[str], sheet_name: str | None,
                         header_line: int = 1) -> dict[str, str]:
    """Column name -> number format of the date and time cells of an .xlsx/.xlsm input (the first
    formatted cell among the first rows under the header), so the results show ``25/12/2026`` where
    the sender typed it so. Empty for CSV and other files, and whenever the file cannot be read: the
    formats are a courtesy, never a reason to fail. Only the styles, the start of the worksheet and
    the first shared strings are read, so a 100,000-row input costs no more than a small one."""
    p = Path(path)
    if p.suffix.lower() not in (".xlsx", ".xlsm") or not sheet_name:
        return {}
    try:
        with zipfile.ZipFile(p) as z:
            date_styles = _date_styles(z)
            part = _sheet_part(z, sheet_name) if date_styles else None
            if part is None:
                return {}
            last = header_line + _FORMAT_SCAN_ROWS
            head = _sheet_head(z, part, last)
            cells = _CELL.findall(head)
            header: dict[str, str] = {}
            shared_wanted: dict[int, str] = {}
            for letters, row, attrs, body in cells:
                if int(row) != header_line:
                    continue
                value = _VALUE.search(body or b"")
                inline = _INLINE.search(body or b"") if b't="inlineStr"' in attrs else None
                if inline is not None:
                    header[letters.decode()] = _xml_text(inline.group(1))
                elif value is not None and b't="s"' in attrs:
                    shared_wanted[int(value.group(1))] = letters.decode()
                elif value is not None:
                    header[letters.decode()] = _xml_text(value.group(1))
            if shared_wanted:
                for i, text in _shared_strings(z, max(shared_wanted)):
                    if i in shared_wanted:
                        header[shared_wanted[i]] = text
            out: dict[str, str] = {}
            for letters, row, attrs, _body in cells:
                if not header_line < int(row) <= last:
                    continue
                style = _STYLE.search(attrs)
                code = date_styles.get(int(style.group(1))) if style else None
                name = header.get(letters.decode(), "").strip()
                if code and name and name not in out:
                    out[name] = code
            return out
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, ET.ParseError):
        return {}


_CELL = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)"([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)', re.S)
_VALUE = re.compile(rb"<(?:\w+:)?v>(.*?)</(?:\w+:)?v>", re.S)
_INLINE = re.compile(rb"<(?:\w+:)?t[^>]*>(.*?)</(?:\w+:)?t>", re.S)
_STYLE = re.compile(rb'\bs="(\d+)"')


def _xml_text(raw: bytes) -> str:
    return html.unescape(raw.decode("utf-8", "replace"))


def _date_styles(z: zipfile.ZipFile) -> dict[int, str]:
    """cellXfs index -> format code, for the styles whose format shows a date or a time."""
    root = ET.fromstring(z.read("xl/styles.xml"))
    codes = dict(_BUILTIN_DATE_FORMATS)
    fmts = root.find(f"{_NS_MAIN}numFmts")
    for nf in fmts if fmts is not None else []:
        codes[int(nf.get("numFmtId", "-1"))] = nf.get("formatCode", "")
    out: dict[int, str] = {}
    xfs = root.find(f"{_NS_MAIN}cellXfs")
    for i, xf in enumerate(xfs if xfs is not None else []):
        code = codes.get(int(xf.get("numFmtId", "0")))
        if code and re.search(r"[dmyhs]", _strip_format(code.split(";")[0]).lower().replace("general", "")):
            out[i] = code
    return out


def _sheet_head(z: zipfile.ZipFile, part: str, last_row: int) -> bytes:
    """The worksheet XML up to the end of row ``last_row`` (or all of it, if shorter)."""
    marker = re.compile(rb'<(?:\w+:)?row r="(\d+)"')
    data = b""
    with z.open(part) as f:
        while True:
            chunk = f.read(1 << 16)
            data += chunk
            rows = marker.findall(data[-(1 << 17):])
            if not chunk or (rows and int(rows[-1]) > last_row):
                return data


def _shared_strings(z: zipfile.ZipFile, upto: int) -> Iterator[tuple[int, str]]:
    """(index, text) of the shared strings up to index ``upto``, read incrementally."""
    try:
        f = z.open("xl/sharedStrings.xml")
    except KeyError:
        return
    with f:
        i = 0
        for _event, el in ET.iterparse(f):
            if el.tag.endswith("}si"):
                yield i, "".join(t.text or "" for t in el.iter() if t.tag.endswith("}t"))
                el.clear()
                i += 1
                if i > upto:
                    return
