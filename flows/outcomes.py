"""The row outcome vocabulary and the default HTTP status table.

A row ends with exactly one status:

========  ===========================================================  ==============
status    meaning                                                      who acts
========  ===========================================================  ==============
created   the provider created it (provider id known)                  nobody
accepted  the provider queued it; final result comes later             nobody (wait)
skipped   not sent: already done in an earlier run, or the run         see message
          stopped early (credentials, Ctrl-C) before reaching it
invalid   not sent: the sheet's values fail the mapping or contract    user fixes row
rejected  the provider refused it (400/409/422...)                     user fixes row
failed    could not be delivered (retries used up, 401/403, 404)       operator
unknown   may have reached the provider; must be checked before        operator
          anything is resent
========  ===========================================================  ==============

The status table maps an HTTP status to an :class:`Action`. Defaults live here; a mapping
file can override single entries (``responses:``).

Some providers answer every error with one status and say what happened only in the text
(ServiceMobility: a 500 "with a descriptive reason" for a refused row and for a crash alike). A
rule may then list **reasons**: phrases that, found in the answer's body, give it another action::

    500: {action: unknown, reasons: [{action: reject, text: ["Account * does not exist"]}]}

A phrase matches case-insensitively, with runs of spaces equal, anywhere in the body; ``*``
stands for any text within one sentence (no ``.``, ``;`` or line break). The first reason with a
matching phrase wins; a body that matches none keeps the status's own action. Phrases, not
regular expressions: a mapping author writes the provider's wording as it appears.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = [
    "DEFAULT_STATUS_TABLE",
    "DONE_STATUSES",
    "NO_MESSAGES",
    "OK_STATUSES",
    "SENDING",
    "Action",
    "Outcome",
    "Reason",
    "Rule",
    "Status",
    "phrase_pattern",
    "response_messages",
    "rule_for",
]


class Status(enum.StrEnum):  # a StrEnum: f-strings and the workbook show the plain word
    CREATED = "created"
    ACCEPTED = "accepted"
    SKIPPED = "skipped"
    INVALID = "invalid"
    REJECTED = "rejected"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @classmethod
    def of(cls, text: str | None) -> Status | None:
        """The status named ``text``, or None for anything else (e.g. the ledger's ``sending``)."""
        if text is None:
            return None
        try:
            return cls(text)
        except ValueError:
            return None


#: statuses that mean "the provider has (or will have) this row": never send again
DONE_STATUSES = frozenset({Status.CREATED, Status.ACCEPTED})
#: statuses that make a run's exit code 0
OK_STATUSES = frozenset({Status.CREATED, Status.ACCEPTED, Status.SKIPPED})
#: not an outcome: the ledger's mark on a row written before its request leaves (a later run checks it)
SENDING = "sending"


class Action(enum.StrEnum):
    """What the sender does with a response or a transport error."""

    SUCCESS = "success"  # row done: created or accepted (see the mapping's request.success)
    REJECT = "reject"  # provider refused the row's content; do not retry
    RETRY = "retry"  # safe to resend (nothing was booked); backoff, then `failed`
    UNKNOWN = "unknown"  # may have been booked; never resend blindly
    STOP = "stop"  # credentials refused: stop the whole run
    FAIL = "fail"  # give up on this row, nothing was booked


def phrase_pattern(phrases: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    """One pattern for reason phrases (see the module docstring): literal text, ``*`` for any text
    within a sentence, case and runs of spaces ignored."""
    parts = []
    for phrase in phrases:
        words = [re.escape(w) for w in phrase.split()]
        parts.append(r"\s+".join(words).replace(r"\*", r"[^.;\n]*?"))
    return re.compile("|".join(f"(?:{p})" for p in parts) or r"(?!)", re.IGNORECASE)


@dataclass(frozen=True)
class Reason:
    """A refinement of a :class:`Rule` by the answer's text: any of ``phrases`` found -> ``action``."""

    action: Action
    phrases: tuple[str, ...]
    message: str = ""
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", phrase_pattern(self.phrases))

    def matches(self, text: str) -> bool:
        return bool(text) and self.pattern.search(text) is not None


@dataclass(frozen=True)
class Rule:
    action: Action
    message: str = ""
    #: checked in order against the answer's body text; the first that matches decides instead
    reasons: tuple[Reason, ...] = ()

    def for_body(self, text: str) -> Rule:
        """This rule, or the one a matching reason makes of it (its message defaults to this rule's)."""
        for reason in self.reasons:
            if reason.matches(text):
                return Rule(reason.action, reason.message or self.message)
        return self


#: HTTP status -> rule. Ranges are resolved by :func:`rule_for` (exact, then class).
DEFAULT_STATUS_TABLE: dict[int, Rule] = {
    200: Rule(Action.SUCCESS),
    201: Rule(Action.SUCCESS),
    202: Rule(Action.SUCCESS),
    204: Rule(Action.SUCCESS),
    400: Rule(Action.REJECT, "the provider rejected the row"),
    401: Rule(Action.STOP, "credentials were refused (401): fix the API key or login, then rerun"),
    402: Rule(Action.REJECT, "the provider refused the request (402)"),
    403: Rule(Action.STOP, "credentials lack permission (403): fix the key's permissions, then rerun"),
    404: Rule(Action.FAIL, "endpoint or resource not found (404): check the base URL and the row's ids"),
    408: Rule(Action.UNKNOWN, "the provider timed out reading the request (408); check before resending"),
    409: Rule(Action.REJECT, "conflict (409): the provider already has this, or the slot is taken"),
    422: Rule(Action.REJECT, "the provider rejected the row"),
    429: Rule(Action.RETRY, "rate limited (429)"),
    500: Rule(Action.UNKNOWN, "provider error (500) after the request arrived; check before resending"),
    502: Rule(Action.RETRY, "bad gateway (502)"),
    503: Rule(Action.RETRY, "provider unavailable (503)"),
    504: Rule(Action.RETRY, "gateway timeout (504)"),
}

_CLASS_DEFAULTS: dict[int, Rule] = {
    2: Rule(Action.SUCCESS),
    3: Rule(Action.FAIL, "unexpected redirect ({status}); check the base URL"),
    4: Rule(Action.REJECT, "the provider rejected the row ({status})"),
    5: Rule(Action.UNKNOWN, "provider error ({status}) after the request arrived; check before resending"),
}


def rule_for(status: int, overrides: dict[int, Rule] | None = None, body: str | None = None) -> Rule:
    """The rule for an HTTP status: mapping override, then exact default, then its class. With
    ``body`` (the answer's text), a rule's reasons may turn it into another (see the module docstring)."""
    if overrides and status in overrides:
        rule = overrides[status]
        return rule.for_body(body) if body is not None and rule.reasons else rule
    if status in DEFAULT_STATUS_TABLE:
        return DEFAULT_STATUS_TABLE[status]
    base = _CLASS_DEFAULTS.get(status // 100, Rule(Action.UNKNOWN, "unexpected status {status}"))
    return Rule(base.action, base.message.format(status=status))


class _NoMessages(dict[str, list[str]]):
    """column_messages of an outcome that has none: one shared empty mapping, not an empty dict a row, so it
    refuses changes; it pickles as itself (Prefect and the web page pickle outcomes)."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("NO_MESSAGES is shared by every outcome without messages: give the outcome a new dict")

    __setitem__ = __delitem__ = __ior__ = setdefault = update = pop = popitem = clear = _refuse

    def __reduce__(self) -> tuple[Callable[[], Mapping[str, list[str]]], tuple[()]]:
        return _no_messages, ()


NO_MESSAGES: Mapping[str, list[str]] = _NoMessages()


def _no_messages() -> Mapping[str, list[str]]:
    return NO_MESSAGES


@dataclass(slots=True)  # slots: a million-row run holds one a row (issue 16)
class Outcome:
    """What happened to one row. A value, never raised."""

    status: Status
    message: str = ""
    provider_id: str | None = None
    http_status: int | None = None
    attempts: int = 0
    #: sheet column -> messages, for per-cell reporting (invalid and rejected rows)
    column_messages: Mapping[str, list[str]] = field(default_factory=_no_messages)
    #: for multi-step providers: how far the row got (e.g. "created" before "scheduled"); kept in the ledger
    stage: str | None = None
    #: not settled by this run and not by an earlier one: another run holds the row (``skipped`` with a message
    #: naming it); the run's exit code says the sheet needs a rerun
    needs_rerun: bool = False

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES and not self.needs_rerun


def response_messages(body: Any, text: str = "") -> list[tuple[str | None, str]]:
    """(field or None, message) pairs from an error body, whatever its shape.

    Understands ``{"error": {"message", "details": [{"field", "message"}]}}``, ``{"errors":
    {prop: [msg]}}`` (RFC 7807 validation), ``{"errors": ["..."]}``, ``{"detail"/"title"/"message"}``,
    and falls back to the body text, trimmed.
    """
    out: list[tuple[str | None, str]] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            details = err.get("details")
            if isinstance(details, list) and details:
                for d in details:
                    if isinstance(d, dict):
                        out.append((d.get("field"), str(d.get("message", ""))))
            elif err.get("message"):
                out.append((None, str(err["message"])))
        elif isinstance(err, str):
            out.append((None, err))
        errors = body.get("errors")
        if isinstance(errors, dict):
            for prop, msgs in errors.items():
                for m in msgs if isinstance(msgs, list) else [msgs]:
                    out.append((str(prop), str(m)))
        elif isinstance(errors, list):
            for m in errors:
                if isinstance(m, dict):
                    out.append((m.get("field") or m.get("property"), str(m.get("message", m))))
                else:
                    out.append((None, str(m)))
        if not out:
            for k in ("detail", "message", "title"):
                if body.get(k):
                    out.append((None, str(body[k])))
                    break
    if not out and text.strip():
        out.append((None, " ".join(text.split())[:1000]))
    return out
