"""``booking-import template MAPPING``: an empty input workbook for a mapping, so senders fill a sheet
that validates.

The first sheet (named like the mapping's ``source.sheet``, else ``Bookings``) holds one header per
column the mapping reads (the key first, then in field order), nothing else. Each header has a note:
required or optional, the format, an example, and what the column becomes in the request. Required
headers are bold on an orange fill. Columns with a fixed ``lookup`` get a drop-down list of the
values the mapping knows (an unknown value warns, since case and spaces are forgiven); date and time
columns are formatted as the mapping reads them (``format: "%d/%m/%Y"`` -> ``dd/mm/yyyy``) so a
typed date stays a date; other columns are text (``@``), so a phone number keeps its leading zero.
A second sheet, ``How to fill``, repeats the notes as a table for people who do not hover.

Assumptions (the mapping does not say): examples are made up from the format (a date in the
mapping's format, ``name@example.com`` for e-mails, the first lookup value, the zone default);
:data:`TEMPLATE_ROWS` rows are prepared with drop-downs and formats (more can be typed, without them).
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import xlsxwriter

from ..errors import ImporterError, UsageError
from ..mapping.model import FieldSpec, MappingFile, load_mapping
from .results import check_writable

__all__ = ["HELP_SHEET", "TEMPLATE_ROWS", "ColumnHelp", "describe_columns", "write_template"]

#: rows prepared with drop-downs and number formats
TEMPLATE_ROWS = 1000
HELP_SHEET = "How to fill"
_EXAMPLE_DAY = dt.datetime(2027, 3, 25, 14, 30)
_REQUIRED_FILL = "#F8CBAD"
_OPTIONAL_FILL = "#D9E1F2"
_LIST_LIMIT = 255  # Excel's limit for a list typed into the validation itself; longer lists go on a sheet


@dataclass
class ColumnHelp:
    """What a sender needs to know about one column."""

    name: str
    required: bool = False
    kind: str = "text"  # text | date | datetime | time | number
    excel_format: str = "@"
    format: str = "text"
    example: str = ""
    choices: list[str] = field(default_factory=list)
    default: str | None = None
    notes: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def note(self) -> str:
        empty = f" Empty means {self.default}." if self.default else ""
        lines = ["Required." if self.required else "Optional." + empty]
        lines.append(f"Format: {self.format}.")
        if self.choices:
            shown = ", ".join(self.choices[:12]) + (", ..." if len(self.choices) > 12 else "")
            lines.append(f"One of: {shown}.")
        lines.extend(self.notes)
        if self.example:
            lines.append(f"Example: {self.example}")
        if self.fields:
            lines.append(f"Sent as: {', '.join(self.fields)}.")
        return "\n".join(lines)


def _transforms(spec: FieldSpec) -> list[tuple[str, object]]:
    """(name, argument) of each transform: ``trim`` -> ("trim", None), ``{max_length: 64}`` -> ("max_length", 64)."""
    out: list[tuple[str, object]] = []
    for t in spec.transforms:
        if isinstance(t, str):
            out.append((t, None))
        elif isinstance(t, dict) and len(t) == 1:
            out.append(next(iter(t.items())))
    return out


_STRFTIME_TO_EXCEL = [("%d", "dd"), ("%m", "mm"), ("%Y", "yyyy"), ("%y", "yy"), ("%H", "hh"), ("%I", "h"),
                      ("%M", "mm"), ("%S", "ss"), ("%p", "AM/PM"), ("%b", "mmm"), ("%B", "mmmm"), ("%-d", "d"),
                      ("%-m", "m"), ("%e", "d")]


def excel_format(strftime: str) -> str:
    """The Excel number format showing what ``strftime`` writes: ``%d/%m/%Y %H:%M`` -> ``dd/mm/yyyy hh:mm``."""
    out = strftime
    for a, b in _STRFTIME_TO_EXCEL:
        out = out.replace(a, b)
    return out.replace("%%", "%")


def describe_columns(mapping: MappingFile) -> list[ColumnHelp]:
    """One :class:`ColumnHelp` per column the mapping reads, key columns first, in the mapping's order."""
    helps: dict[str, ColumnHelp] = {}

    def get(name: str) -> ColumnHelp:
        return helps.setdefault(name, ColumnHelp(name))

    for name in mapping.key:
        h = get(name)
        h.required = True
        h.notes.append("Identifies the row across runs: a rerun never books the same value twice; keep it unique.")
    for path, spec in mapping.fields.items():
        if spec.datetime is not None:
            d = spec.datetime
            date = get(d.date)
            date.fields.append(path)
            date.required = date.required or spec.required
            if d.time:
                date.kind, date.excel_format = "date", excel_format(d.format)
                date.format = f"a date, {date.excel_format} (a date cell, or text typed so)"
                date.example = _EXAMPLE_DAY.strftime(d.format)
                time = get(d.time)
                time.fields.append(path)
                time.required = time.required or spec.required
                time.kind, time.excel_format = "time", excel_format(d.time_format)
                time.format = f"a time, {time.excel_format} (24-hour)" if "%I" not in d.time_format \
                    else f"a time, {time.excel_format} (12-hour: AM/PM required)"
                time.example = _EXAMPLE_DAY.strftime(d.time_format)
            else:
                date.kind, date.excel_format = "datetime", excel_format(d.format)
                date.format = f"a date and time, {date.excel_format}"
                date.example = _EXAMPLE_DAY.strftime(d.format)
            zone = f"Local time in {d.timezone}" if d.timezone else "Local time in the row's zone"
            if d.timezone and d.timezone_column:
                zone += f", unless the {d.timezone_column} column gives one"
            date.notes.append(zone + ".")
            if d.timezone_column:
                z = get(d.timezone_column)
                z.fields.append(path)
                z.format = "an IANA time zone name"
                z.example = d.timezone or "Europe/London"
                if d.timezone:
                    z.default = d.timezone
                else:
                    z.required = z.required or spec.required
            continue
        for name in spec.columns():
            h = get(name)
            h.fields.append(path)
            if spec.column is not None:
                h.required = h.required or spec.required
            if spec.template is not None:
                h.notes.append(f"Part of {path}: {spec.template}.")
            if spec.sensitive:
                h.notes.append("Sensitive: shown as •••••• in results and logs.")
            if spec.description:
                h.notes.append(spec.description.rstrip(".") + ".")
            if spec.column is None:
                continue
            for t, arg in _transforms(spec):
                if t == "lookup" and isinstance(arg, dict):
                    h.choices = [str(k) for k in arg]
                    h.format = "one of the listed values (case and spaces do not matter)"
                    h.example = h.example or (h.default or h.choices[0] if h.choices else "")
                elif t == "remote_lookup":
                    h.format = f"a name {mapping.provider} knows (its {arg} list is read when the run starts)"
                elif t == "default" and arg is not None:
                    h.default = str(arg)
                    h.example = h.example or str(arg)
                elif t == "email":
                    h.format = "an e-mail address"
                    h.example = "ann.lee@example.com"
                elif t == "iana_zone":
                    h.format = "an IANA time zone name"
                    h.example = h.example or "Europe/London"
                elif t == "integer":
                    h.kind, h.excel_format, h.format = "number", "General", "a whole number"
                    h.example = h.example or "45"
                elif t == "digits":
                    h.format = "a phone number or other digits (spaces and dashes are dropped)"
                    h.example = h.example or "07700 900123"
                elif t == "date" and isinstance(arg, str):
                    h.kind, h.excel_format = "date", excel_format(arg)
                    h.format = f"a date, {h.excel_format}"
                    h.example = _EXAMPLE_DAY.strftime(arg)
                elif t in ("max_length", "truncate"):
                    h.notes.append(f"At most {arg} characters." if t == "max_length" else f"Cut to {arg} characters.")
    for h in helps.values():
        if not h.example and h.kind == "text":
            h.example = _text_example(h.name, key=h.name in mapping.key)
    return list(helps.values())


#: made-up examples for plain text columns, by a word in the column's name (first match wins)
_TEXT_EXAMPLES = [
    (("password",), "(the password itself)"), (("email", "e-mail"), "ann.lee@example.com"),
    (("phone", "mobile", "tel"), "07700 900123"), (("user",), "ann.lee"),
    (("postcode", "post code", "zip"), "LS1 4AP"), (("city", "town"), "Leeds"),
    (("address", "street"), "1 High Street"), (("company", "organisation", "organization", "account name"),
                                                "Thistle Bakery"),
    (("agent", "engineer", "contact", "name", "guest"), "Ann Lee"),
    (("note", "description", "message", "comment", "instruction"), "Ring the bell at the side door"),
    (("ref", "number", "no", "id", "code", "order"), "A-1001"),
]


def _text_example(column: str, *, key: bool) -> str:
    if key:
        return "A-1001 (unique per row)"
    words = column.lower().replace("_", " ").split()
    for hints, example in _TEXT_EXAMPLES:
        if any(h in words or (" " in h and h in column.lower()) or (len(h) > 3 and h in column.lower()) for h in hints):
            return example
    return "any text"


def default_template_path(mapping_path: Path) -> Path:
    return Path(f"{Path(mapping_path).stem}.template.xlsx")


def write_template(mapping_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write the empty input workbook for ``mapping_path`` to ``out`` (default ``<mapping>.template.xlsx`` in
    the current folder); return its path. An existing file is never replaced (it may hold filled rows)."""
    mapping = load_mapping(Path(mapping_path))
    target = Path(out) if out is not None else default_template_path(Path(mapping_path))
    if target.suffix.lower() != ".xlsx":
        raise UsageError(f"--out {target}: a template is an Excel workbook; give a name ending in .xlsx")
    if target.exists():
        raise UsageError(f"{target} already exists (it may hold filled rows); give another name with --out, "
                         f"or delete it first")
    check_writable(target)
    helps = describe_columns(mapping)
    sheet_name = mapping.source.sheet or "Bookings"
    try:
        wb = xlsxwriter.Workbook(str(target), {"strings_to_numbers": False, "strings_to_formulas": False,
                                               "strings_to_urls": False})
        _write_sheet(wb, sheet_name, helps, mapping)
        wb.close()
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ImporterError(f"cannot write {target} ({exc.strerror or exc}); choose another path with --out") from None
    return target


def _write_sheet(wb: xlsxwriter.Workbook, sheet_name: str, helps: list[ColumnHelp], mapping: MappingFile) -> None:
    ws = wb.add_worksheet(sheet_name)
    lists = None
    lists_col = 0  # the next free column of the Lists sheet
    header = {"bold": True, "bottom": 1, "pattern": 1, "valign": "top", "quote_prefix": True}
    required = wb.add_format({**header, "bg_color": _REQUIRED_FILL})
    optional = wb.add_format({**header, "bg_color": _OPTIONAL_FILL, "bold": False})
    ws.freeze_panes(1, 0)
    last = TEMPLATE_ROWS
    for c, h in enumerate(helps):
        ws.write_string(0, c, h.name, required if h.required else optional)
        ws.write_comment(0, c, h.note(), {"x_scale": 2.5, "y_scale": 2})
        width = max(len(h.name) + 4, len(h.example) + 2, 12)
        ws.set_column(c, c, min(width, 40), wb.add_format({"num_format": h.excel_format}))
        if h.choices:
            source: list[str] | str
            if sum(len(x) + 1 for x in h.choices) <= _LIST_LIMIT and not any("," in x for x in h.choices):
                source = h.choices
            else:  # too long for the validation itself: a hidden sheet holds the list
                if lists is None:
                    lists = wb.add_worksheet("Lists")
                    lists.hide()
                col = lists_col
                for r, value in enumerate(h.choices):
                    lists.write_string(r, col, value)
                letter = xlsxwriter.utility.xl_col_to_name(col)
                source = f"=Lists!${letter}$1:${letter}${len(h.choices)}"
                lists_col += 1
            ws.data_validation(1, c, last, c, {
                "validate": "list", "source": source, "error_type": "warning",
                "input_title": h.name[:32], "input_message": f"Pick from the list. {h.format}"[:255],
                "error_title": "Not in the list", "error_message": f"{h.name}: one of {', '.join(h.choices)}"[:255],
            })
        elif h.kind in ("date", "datetime"):
            ws.data_validation(1, c, last, c, {
                "validate": "date", "criteria": ">=", "value": dt.date(1900, 1, 1), "error_type": "warning",
                "input_title": h.name[:32], "input_message": f"{h.format}, e.g. {h.example}"[:255],
                "error_title": "Not a date", "error_message": f"{h.name}: type a date as {h.excel_format}"[:255],
            })
    _write_help(wb, helps, mapping)


def _write_help(wb: xlsxwriter.Workbook, helps: list[ColumnHelp], mapping: MappingFile) -> None:
    ws = wb.add_worksheet(HELP_SHEET)
    bold = wb.add_format({"bold": True, "bottom": 1, "bg_color": _OPTIONAL_FILL, "pattern": 1})
    wrap = wb.add_format({"text_wrap": True, "valign": "top"})
    title = wb.add_format({"bold": True, "font_size": 14})
    ws.write_string(0, 0, f"How to fill this sheet for {mapping.provider}", title)
    if mapping.description:
        ws.write_string(1, 0, mapping.description)
    ws.write_string(2, 0, "One row per booking, from row 2 of the first sheet. Required headers are orange. "
                          "Hover a header for its note. Check a filled sheet with `booking-import validate`.")
    for c, name in enumerate(("column", "required", "format", "example", "notes")):
        ws.write_string(4, c, name, bold)
    widths = (22, 16, 50, 24, 70)
    for r, h in enumerate(helps, start=5):
        texts = [h.name, "yes" if h.required else ("no" + (f" (empty: {h.default})" if h.default else "")),
                 h.format + (": " + ", ".join(h.choices) if h.choices else ""), h.example, " ".join(h.notes)]
        lines = max(-(-len(t) // max(w - 2, 1)) for t, w in zip(texts, widths, strict=False))
        ws.set_row(r, 15 * max(lines, 1))  # written before the cells: not every app fits wrapped rows itself
        ws.write_string(r, 0, h.name, wrap)
        ws.write_string(r, 1, "yes" if h.required else ("no" + (f" (empty: {h.default})" if h.default else "")), wrap)
        ws.write_string(r, 2, h.format + (": " + ", ".join(h.choices) if h.choices else ""), wrap)
        ws.write_string(r, 3, h.example, wrap)
        ws.write_string(r, 4, " ".join(h.notes), wrap)
    for c, width in enumerate(widths):
        ws.set_column(c, c, width)
