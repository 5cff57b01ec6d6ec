"""What the results workbook holds and how it looks: its columns, sheets, fills per status, limits."""
from __future__ import annotations

from flows.outcomes import Status

#: the columns a run adds, in the order :func:`read_results` gives them
RESULT_COLUMNS = ["_row", "_status", "_provider_id", "_http_status", "_message", "_attempts"]
#: result columns placed before the input columns (and frozen), so they are in view on opening
LEAD_COLUMNS = ["_status", "_message"]
_TRAIL_COLUMNS = [c for c in RESULT_COLUMNS if c not in LEAD_COLUMNS]
RESULTS_SHEET = "Results"
SUMMARY_SHEET = "Summary"
#: the Summary row heading the run details; the key/value rows below it are what readers parse
TECHNICAL_HEADING = "Technical detail"
#: what a non-empty value of a masked (sensitive) column is replaced with
MASK = "••••••"
#: ``_message`` is cut to this many characters (Excel shows about 1,000 in a cell anyway)
MESSAGE_LIMIT = 1000
#: row fill per status, by who acts: the sheet's sender (pink), the operator (lavender: resend after
#: fixing the cause; amber: check with the provider first), nobody (plain; pale blue: wait), see the
#: message (grey). ``created`` rows are left plain.
STATUS_FILLS: dict[Status, str] = {
    Status.ACCEPTED: "#DDEBF7",
    Status.SKIPPED: "#EDEDED",
    Status.INVALID: "#FFC7CE",
    Status.REJECTED: "#FFC7CE",
    Status.FAILED: "#E4DFEC",
    Status.UNKNOWN: "#FFD966",
}
#: the input cell a message names: darker than its row, with a red border and the message as a note
FAULT_FILL = "#FF8F8F"
_FAULT_BORDER = "#C00000"
#: status -> (who acts, what to do): the Summary's legend and the `_status` header's note
WHO_ACTS: dict[Status, tuple[str, str]] = {
    Status.CREATED: ("nobody", "booked at the provider"),
    Status.ACCEPTED: ("nobody: wait", "queued by the provider; `booking-import status` refreshes it when confirmed"),
    Status.SKIPPED: ("see the message", "not sent this run: done earlier, or the run stopped before it"),
    Status.INVALID: ("sender: fix the sheet", "not sent: fix the marked cell (its note says why), then rerun"),
    Status.REJECTED: ("sender: fix the sheet", "the provider refused the values: fix the marked cell, then rerun"),
    Status.FAILED: ("operator", "not booked: fix the cause in the message (credentials, address), then rerun"),
    Status.UNKNOWN: ("operator: check with the provider first", "may be booked: never resend by hand; rerun "
                                                                "checks with the provider before sending"),
}
#: the message for a row whose outcome is ``None`` (the run never reached it)
NOT_REACHED_MESSAGE = "not sent: the run stopped before this row"

_FORMULA_TRIGGERS = frozenset("=+-@\t\r\0")
_WIDTH_CAP = 60
_WIDTH_SAMPLE = 1000  # rows looked at to size the columns
_RESULT_WIDTHS = {"_row": 7, "_status": 10, "_provider_id": 16, "_http_status": 13, "_message": 60, "_attempts": 10}
_KINDS = ("text", "quoted", "date", "datetime", "time", "number", "wrap", "wrap_quoted")
_NUM_FORMATS = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm", "time": "hh:mm"}
_WORKBOOK_OPTIONS = {
    "constant_memory": True,
    "strings_to_formulas": False,
    "strings_to_urls": False,
    "strings_to_numbers": False,
}
