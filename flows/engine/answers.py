"""Turning the provider's answers into row outcomes, with the provider's messages put on the sheet's columns."""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..http.sender import CallResult, response_messages
from ..mapping.model import RowMapper
from ..mapping.paths import dig
from ..outcomes import Action, Outcome, Status
from ..redact import MASK, masked_fields, redact_text
from .plan import Plan, PreparedRow

if TYPE_CHECKING:  # types only: the run module builds on this one
    from ..http.auth import Auth
    from .run import ImportRun, RunOptions

__all__ = [
    "Answering",
    "CallFacts",
    "is_conflict",
]


class CallFacts(TypedDict):
    """What every outcome of one call carries, whatever the provider said."""

    http_status: int | None
    attempts: int


class Answering:
    """The part of an :class:`~flows.engine.run.ImportRun` that settles rows from the provider's answers.

    The attributes below are set by ``ImportRun.__init__``; they are declared here for the type checker."""

    plan: Plan
    options: RunOptions
    outcomes: list[Outcome | None]
    done: int
    auth: Auth
    _callback_token: str | None
    #: sensitive field paths as dig reads them (a[0].b -> a.0.b)
    _sensitive_dig_paths: list[str]
    #: sensitive field path -> as dig reads it, worked out on first use
    _mask_paths: dict[str, str]

    def _masked_outcome(self, row: PreparedRow, payload: dict[str, Any] | None = None) -> Outcome | None:
        """``invalid`` when a sensitive field holds the mask instead of a value (a row copied from a results
        workbook): sending it would set e.g. the customer's password to the mask. ``payload``: the row's, when
        already built."""
        m = self.plan.mapping
        paths = self.__dict__.get("_mask_paths")
        if paths is None:  # worked out once per run, not per row
            paths = self._mask_paths = {p: re.sub(r"\[(\d+)\]", r".\1", p) for p in sorted(m.sensitive_paths())}
        if not paths:
            return None
        payload = payload if payload is not None else row.payload
        hits = masked_fields(payload, paths) if payload else []
        if not hits:
            return None
        columns = [c for p in hits for c in m.fields[p].columns()] if all(p in m.fields for p in hits) else []
        return Outcome(Status.INVALID, f"{' and '.join(columns or hits)} holds {MASK}, the mask a results "
                                       f"workbook shows instead of the value; it is never sent: type the value "
                                       f"again, then rerun",
                       column_messages={c: ["type the value again: this is only the mask"] for c in columns})

    def outcome_from(self, result: CallResult) -> Outcome:
        req = self.plan.mapping.request
        if result.action is Action.SUCCESS:
            status = Status.ACCEPTED if req.success == "accepted" else Status.CREATED
            pid = dig(result.json(), req.provider_id) if req.provider_id else None
            return Outcome(status, "", provider_id=None if pid is None else str(pid), http_status=result.status_code,
                           attempts=result.attempts)
        secrets = [*self.auth.secrets(), *([self._callback_token] if self._callback_token else [])]
        base: CallFacts = {"http_status": result.status_code, "attempts": result.attempts}
        if result.action is Action.STOP and result.response is None:
            return Outcome(Status.SKIPPED, f"not sent: the run stopped early: {result.message}", **base)
        if result.action in (Action.STOP, Action.FAIL):
            msg = result.message
            details = _messages_text(result, self.plan.mapper, secrets) if result.response is not None else ""
            if details:  # e.g. an RFC 7807 detail saying which id was not found or which permission is missing
                msg = f"{msg} ({details})"
            return Outcome(Status.FAILED, redact_text(msg, secrets), **base)
        if result.action is Action.UNKNOWN:
            msg = result.message
            if result.response is not None:
                msg = f"{msg} ({_messages_text(result, self.plan.mapper, secrets) or 'no details'})"
            return Outcome(Status.UNKNOWN, redact_text(msg, secrets), **base)
        # REJECT
        pairs = response_messages(result.json(), result.response.text if result.response is not None else "")
        per_column: dict[str, list[str]] = {}
        parts = []
        for fld, msg in pairs:
            col = _column_for(fld, self.plan.mapper) if fld else _column_mentioned(msg, self.plan.mapper)
            msg = redact_text(msg, secrets)
            if col:
                per_column.setdefault(col, []).append(msg)
                parts.append(f"{col}: {msg}")
            else:
                parts.append(f"{fld}: {msg}" if fld else msg)
        detail = "; ".join(parts)
        head = result.message or f"rejected ({result.status_code})"
        return Outcome(Status.REJECTED, f"{head}: {detail}" if detail else head, column_messages=per_column, **base)

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def _masked(self, row: PreparedRow, outcome: Outcome) -> Outcome:
        if not outcome.message:  # nothing that could quote a value (every created row)
            return outcome
        hidden = self._sensitive_values(row)
        if hidden:  # a provider that echoes a password must not put it in the results or ledger
            outcome = dataclasses.replace(outcome, message=redact_text(outcome.message, hidden), column_messages={
                c: [redact_text(m, hidden) for m in ms] for c, ms in outcome.column_messages.items()})
        return outcome

    def _settle(self, row: PreparedRow, outcome: Outcome) -> None:
        """The row's outcome in this run (the ledger is written by the caller, where the row needs it)."""
        outcome = self._masked(row, outcome)
        self.outcomes[row.index] = outcome
        self.done += 1
        if self.options.progress is not None:
            self.options.progress(cast("ImportRun", self))  # only ever a part of an ImportRun

    def _sensitive_values(self, row: PreparedRow) -> list[str]:
        paths = self._sensitive_dig_paths
        if not paths or not row.payload:
            return []
        return [str(v) for p in paths if (v := dig(row.payload, p)) not in (None, "")]


_CONFLICT_WORDS = re.compile(r"\b(conflict|duplicate|already (exists|booked|taken|created))\b", re.IGNORECASE)


def is_conflict(outcome: Outcome) -> bool:
    """A refusal that may mean "you sent this before": 409, or a refusal that says it is a duplicate."""
    return outcome.http_status == 409 or bool(_CONFLICT_WORDS.search(outcome.message or ""))


def _column_for(field_name: str, mapper: RowMapper) -> str | None:
    """The sheet column of the payload field a provider names: case-insensitive ("OrderNumber"), list indexes
    and a JSON-path "$." ignored; the full path wins over a last-segment match. None when the name fits
    several columns (customFields[0].value: list items are renumbered once empty ones are dropped)."""
    want = re.sub(r"\[\d+\]", "", field_name.strip().removeprefix("$.")).casefold()
    full: dict[str, None] = {}
    last: dict[str, None] = {}
    for path, cols in mapper.columns_for.items():
        if not cols:
            continue
        norm = re.sub(r"\[\d+\]", "", path).casefold()
        if norm == want:
            full[" + ".join(cols)] = None
        elif norm.rsplit(".", 1)[-1] == want:
            last[" + ".join(cols)] = None
    found = full or last
    return next(iter(found)) if len(found) == 1 else None


def _column_mentioned(message: str, mapper: RowMapper) -> str | None:
    """The sheet column(s) of the payload fields a free-text message names.

    Names are compared with case, spaces and ``_ . [ ] -`` ignored, so "bookingReference field is
    Missing or Empty.", "Booking Reference is empty", "bookingFields[username] field ..." and
    "bookingFields.username ..." all find their field; a field's full path beats a sheet column's
    name, which beats a last path segment shared by several fields (then it names none). Where
    names overlap the longest wins; a message naming several fields ("username or email_address")
    gets all their columns, joined with " + ".
    """
    tokens = re.findall(r"[^\W_]+", message.casefold())
    if not tokens:
        return None
    names: dict[str, str | None] = {}  # squashed name -> column text (None: ambiguous)
    tiers: list[dict[str, set[str]]] = [{}, {}, {}]
    for path, cols in mapper.columns_for.items():
        if not cols:
            continue
        col = " + ".join(cols)
        norm = re.sub(r"\[\d+\]", "", path)
        for tier, candidates in zip(tiers, ([norm], cols, [norm.rsplit(".", 1)[-1]]), strict=True):
            for candidate in candidates:
                key = "".join(re.findall(r"[^\W_]+", candidate.casefold()))
                if len(key) >= 3:
                    tier.setdefault(key, set()).add(col)
    for tier in tiers:
        for key, holders in tier.items():
            if key not in names:
                names[key] = next(iter(holders)) if len(holders) == 1 else None
    longest = max(len(k) for k in names) if names else 0
    spans: list[tuple[int, int, int, str | None]] = []  # (-length, start, end, column)
    for i in range(len(tokens)):
        key = ""
        for j in range(i, len(tokens)):
            key += tokens[j]
            if len(key) > longest:
                break
            if key in names:
                spans.append((-len(key), i, j + 1, names[key]))
    taken: list[tuple[int, int, str | None]] = []
    for _, start, end, column in sorted(spans):
        if all(end <= s or start >= e for s, e, _ in taken):
            taken.append((start, end, column))
    found = dict.fromkeys(c for _, _, c in sorted(taken) if c is not None)
    return " + ".join(found) if found else None


def _messages_text(result: CallResult, mapper: RowMapper, secrets: list[str]) -> str:
    text = result.response.text if result.response is not None else ""
    pairs = response_messages(result.json(), text)
    return "; ".join(f"{f}: {m}" if f else m for f, m in pairs)
