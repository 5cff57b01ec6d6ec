"""Excel number formats that change what a cell means (zero-padded numbers, date-times at midnight)."""
from __future__ import annotations

import datetime
import functools
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from flows.workbooks.cells import ExcelValue

# --------------------------------------------------------------------------- Excel number formats (xlsx)
#
# calamine gives a number cell's value, not what the sheet shows. Two formats change what a value
# means, so for .xlsx/.xlsm the styles are read (a small part) and, only when a workbook uses such a
# format at all, the worksheet's XML is scanned for the cells that carry it:
#   * a zero-padded whole number (000000, Zip Code 00000, 000-00-0000): the text shown, "000123";
#   * a date-time format showing a time: calamine gives a bare date at exactly midnight, which a
#     combined date-and-time column could not tell from a date typed without a time.

_NS_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PAD, _DATETIME = "pad", "datetime"
_BUILTIN_DATETIME = {22}  # m/d/yy h:mm


def _strip_format(code: str) -> str:
    """A number format without quoted text, escapes, [colours]/[conditions] and _x / *x fillers."""
    code = re.sub(r'"[^"]*"', "", code)
    code = re.sub(r"\\.", "", code)
    code = re.sub(r"\[[^\]]*\]", "", code)
    return re.sub(r"[_*].", "", code)


def _format_kind(code: str) -> str | None:
    sections = code.split(";")
    first = _strip_format(sections[0]).lower()
    if re.search(r"[dy]", first) and re.search(r"[hs]", first) and "general" not in first:
        return _DATETIME
    # a whole-number pattern of 0/# placeholders with literal separators and at least one padding 0
    # (or a literal) that General would not show: 000000, 00000-0000, 000-00-0000, (###) ###-####
    if not first or re.search(r"[^0#\- ()/+]", first) or ("0" not in first and "#" not in first):
        return None
    if re.fullmatch(r"#*0?", first):  # 0, #, #0: what General shows anyway
        return None
    return _PAD


def _render_pad(code: str, value: float) -> str | None:
    """The text Excel shows for a whole ``value`` under a padding format (None: not one we render)."""
    if not value.is_integer() or value < 0 or value >= 1e15:
        return None
    digits = str(int(value))
    sections = _pad_sections(code)
    tokens, slots, zeros = sections[0][2:]
    if len(sections) > 1 or sections[0][0] is not None:
        # conditional sections ([<=9999999]###-####;(###) ###-####): the first whose condition holds,
        # else the first without a condition
        pick = next((sec for sec in sections if sec[0] is None), sections[-1])
        for sec in sections:
            if sec[0] is not None and _holds(sec[0], value, sec[1]):
                pick = sec
                break
        tokens, slots, zeros = pick[2:]
    if zeros:  # 000000: the common case
        return digits.zfill(zeros)
    if slots == 0:
        return None
    if len(digits) < slots:
        digits = " " * (slots - len(digits)) + digits  # " " marks a digit position with no digit
    extra, digits = digits[: len(digits) - slots], digits[len(digits) - slots:]
    out: list[str] = []
    k = 0
    for t, lit in tokens:
        if t == "lit":
            out.append(lit)
            continue
        if k == 0:
            out.append(extra)  # digits beyond the placeholders go before the first one
        d = digits[k]
        k += 1
        out.append(("0" if t == "0" else "") if d == " " else d)
    return "".join(out).strip() or None


@functools.lru_cache(maxsize=256)
def _pad_sections(code: str) -> list[tuple[str | None, float, list[tuple[str, str]], int, int]]:
    """Per section of a number format: (condition operator, bound, tokens, placeholders, n when it is n zeros)."""
    out = []
    for section in code.split(";"):
        m = re.match(r"\[([<>=]{1,2})(\d+(?:\.\d+)?)\]", section)
        op, bound = (m.group(1), float(m.group(2))) if m else (None, 0.0)
        tokens: list[tuple[str, str]] = []  # placeholders and literals (quoted text and \x escapes are literal)
        i = 0
        while i < len(section):
            ch = section[i]
            if ch == '"':
                j = section.find('"', i + 1)
                j = len(section) if j < 0 else j
                tokens.append(("lit", section[i + 1:j]))
                i = j + 1
            elif ch == "\\" and i + 1 < len(section):
                tokens.append(("lit", section[i + 1]))
                i += 2
            elif ch == "[":
                i = section.find("]", i) + 1 or len(section)
            elif ch in "_*":
                i += 2
            elif ch in "0#":
                tokens.append((ch, ""))
                i += 1
            else:
                tokens.append(("lit", ch))
                i += 1
        slots = sum(1 for t, _ in tokens if t in "0#")
        zeros = slots if tokens and all(t == "0" for t, _ in tokens) else 0
        out.append((op, bound, tokens, slots, zeros))
    return out


def _holds(op: str, value: float, bound: float) -> bool:
    return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound,
            "=": value == bound, "<>": value != bound}.get(op, False)


def _styles(z: zipfile.ZipFile) -> dict[int, tuple[str, str]]:
    """cellXfs index -> (kind, format code) for the styles whose formats change what a cell means."""
    try:
        root = ET.fromstring(z.read("xl/styles.xml"))
    except (KeyError, ET.ParseError):
        return {}
    codes: dict[int, str] = {}
    fmts = root.find(f"{_NS_MAIN}numFmts")
    for nf in fmts if fmts is not None else []:
        try:
            codes[int(nf.get("numFmtId", "-1"))] = nf.get("formatCode", "")
        except ValueError:
            continue
    out: dict[int, tuple[str, str]] = {}
    xfs = root.find(f"{_NS_MAIN}cellXfs")
    for i, xf in enumerate(xfs if xfs is not None else []):
        try:
            fid = int(xf.get("numFmtId", "0"))
        except ValueError:
            continue
        if fid in _BUILTIN_DATETIME:
            out[i] = (_DATETIME, "m/d/yy h:mm")
        elif fid in codes:
            kind = _format_kind(codes[fid])
            if kind:
                out[i] = (kind, codes[fid])
    return out


def _sheet_part(z: zipfile.ZipFile, name: str) -> str | None:
    try:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ET.ParseError):
        return None
    rid = None
    for sh in wb.iter(f"{_NS_MAIN}sheet"):
        if sh.get("name") == name:
            rid = sh.get(f"{_NS_REL}id")
    for rel in rels:
        if rel.get("Id") == rid:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _col_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ch - 64)
    return n - 1


def _apply_shown_formats(p: Path, name: str, raw: list[list[ExcelValue]]) -> None:
    """Replace, in place, padded numbers by the text shown and midnight dates by date-times (see above)."""
    try:
        with zipfile.ZipFile(p) as z:
            styles = _styles(z)
            if not styles:
                return
            part = _sheet_part(z, name)
            if part is None:
                return
            xml = z.read(part)
    except (OSError, zipfile.BadZipFile, KeyError):
        return  # calamine read it; the formats are a refinement, never a reason to fail
    ids = b"|".join(str(i).encode() for i in sorted(styles))
    # writers put r first and s before t (Excel, LibreOffice, openpyxl, XlsxWriter): a fixed-order pattern is
    # three times faster than a general one, which is used only if the fast one finds nothing
    fast = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)" (?:t="\w+" )?s="(' + ids + rb')"')
    general = re.compile(rb'<(?:\w+:)?c r="([A-Z]{1,3})(\d+)"[^>]*?\bs="(' + ids + rb')"')
    found = fast.findall(xml) or general.findall(xml)
    columns: dict[bytes, int] = {}
    kinds = {str(i).encode(): v for i, v in styles.items()}
    n = len(raw)
    date_type, float_type, int_type = datetime.date, float, int
    for letters, row, style in found:
        r = int(row) - 1
        if r >= n:
            continue
        c = columns.get(letters)
        if c is None:
            c = columns[letters] = _col_index(letters)
        cells = raw[r]
        if c >= len(cells):
            continue
        value = cells[c]
        kind, code = kinds[style]
        if kind == _DATETIME:
            if type(value) is date_type:
                cells[c] = datetime.datetime.combine(value, datetime.time())
        elif type(value) is float_type or type(value) is int_type:
            text = _render_pad(code, float(value))
            if text is not None:
                cells[c] = text
