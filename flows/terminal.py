"""What a person sees in the terminal: a progress bar while rows are sent, then a summary."""
from __future__ import annotations

import sys
import time
from typing import IO, Any

from .outcomes import Status
from .workbooks.results import next_command

__all__ = ["Progress", "attention_lines", "print_summary", "stop_reason", "summary_lines"]


class Progress:
    """A rich progress bar on a terminal; on a pipe or in a log, a line every 10 %.

    ``update`` is called once a row settles; the bar is redrawn at most every ``interval`` seconds
    (and always for the last row): counting the statuses reads every row, so redrawing for each one
    made a run's bookkeeping grow with the square of its rows."""

    def __init__(self, enabled: bool = True, stream: IO[str] | None = None, interval: float = 0.1,
                 clock: Any = time.monotonic) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval = interval
        self._clock = clock
        self._bar: Any = None
        self._task: Any = None
        self._last_decile = -1
        self._last_drawn = float("-inf")
        self._tty = self.stream.isatty()

    def __enter__(self) -> Progress:
        if self.enabled and self._tty:
            # for start-up speed: rich only when a bar is drawn on a terminal
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[counts]}"), TimeRemainingColumn(),
                                     console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def update(self, run: Any) -> None:
        if not self.enabled:
            return
        done, total = run.done, run.total
        if self._bar is not None:
            now = self._clock()
            if done < total and now - self._last_drawn < self.interval:
                return
            self._last_drawn = now
            counts = _short_counts(run)
            if self._task is None:
                self._task = self._bar.add_task("importing", total=total, counts=counts)
            self._bar.update(self._task, completed=done, counts=counts)
            return
        decile = (done * 10) // total if total else 10
        if decile > self._last_decile:
            self._last_decile = decile
            print(f"{done}/{total} rows settled ({_short_counts(run)})", file=self.stream, flush=True)


def _short_counts(run: Any) -> str:
    counts: dict[str, int] = {}
    for o in run.outcomes:
        if o is not None:
            counts[o.status.value] = counts.get(o.status.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def summary_lines(run: Any) -> list[str]:
    counts = run.counts()
    info = run.summary()
    width = max(len(s) for s in counts)
    lines = [f"{info['provider']}: {run.total} rows from {info['input file']} in {info['duration (s)']} s"]
    for status, n in counts.items():
        if n:
            lines.append(f"  {status:<{width}}  {n}")
    waiting = counts.get("accepted", 0)
    if "callback_url" in getattr(run, "run_values", {}) and (waiting or run.callbacks_confirmed):  # Systems X Bridge
        later = (f"; {waiting} still accepted: later callbacks are recorded by `booking-import callbacks`, then "
                 "`booking-import status` refreshes the workbook") if waiting else ""
        lines.append(f"callbacks: {run.callbacks_confirmed} row(s) went accepted -> created as the provider's "
                     f"callbacks arrived{later}")
    if run.results_path:
        lines.append(f"results: {run.results_path}")
    held = sum(1 for o in run.outcomes if o is not None and getattr(o, "needs_rerun", False))
    if held:  # another run holds them (flows/ledger/claims.py RowClaims); exit code 1
        lines.append(f"{held} row(s) not sent: another run was sending them (see _message); rerun after it ends")
    if run.interrupted:
        lines.append("interrupted: rows not reached are marked skipped; run the same command again to continue")
        return lines
    lines.extend(attention_lines(run, counts))
    return lines


STOPPED = "not sent: the run stopped early: "
#: HTTP statuses that mean the provider refused the credentials (every mapping's `stop` rules are 401/403)
CREDENTIAL_STATUSES = (401, 403)


def _rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def stop_reason(run: Any) -> tuple[str, int | None, int, bool] | None:
    """Why the run stopped sending, if it did: (reason, first row not sent, rows not sent, credentials refused)."""
    rows = getattr(getattr(run, "plan", None), "rows", None) or []
    reason, skipped, refused = None, 0, False
    for row in rows:
        outcome = run.outcomes[row.index]
        if outcome is None:
            continue
        if outcome.message.startswith(STOPPED):
            reason = reason or outcome.message[len(STOPPED):]
            skipped += 1
        elif outcome.status.value == "failed" and outcome.http_status in CREDENTIAL_STATUSES:
            refused = True
    if reason is None:
        return None
    # the first sheet row from which nothing reached the provider (rows in flight when it stopped may follow)
    first = None
    for row in sorted(rows, key=lambda r: r.line, reverse=True):
        outcome = run.outcomes[row.index]
        unsent = outcome is None or outcome.message.startswith(STOPPED) or outcome.status.value == "invalid" or (
            outcome.status.value == "failed" and outcome.http_status in CREDENTIAL_STATUSES)
        if not unsent:
            break
        first = row.line
    refused = refused or any(w in reason.lower() for w in ("credential", "api key", "password", "unauthori"))
    return reason, first, skipped, refused


def _credentials_fix(run: Any) -> str:
    """What to fix when the provider refused the credentials: the environment variables the mapping reads."""
    auth = getattr(getattr(getattr(getattr(run, "plan", None), "mapping", None), "connection", None), "auth", None)
    names = [getattr(auth, a) for a in ("secret", "client_id", "client_secret", "username", "password")
             if getattr(auth, a, None)]
    names += list((getattr(auth, "headers", None) or {}).values())
    if not names:
        return "fix the credentials"
    return f"check {', '.join(names)} (environment or .env) against the provider's account"


def attention_lines(run: Any, counts: dict[str, int]) -> list[str]:
    """What needs a person, by who acts: a stop (credentials refused), then "fix in the sheet" (invalid,
    rejected), then "check with the provider first" (unknown), failed rows, and the exact next command."""
    lines: list[str] = []
    stop = stop_reason(run)
    if stop is not None:
        reason, first, skipped, refused = stop
        what = "the provider refused the credentials" if refused else "the run stopped sending"
        lines.append(f"STOPPED: {what}: {reason}")
        where = f"nothing was sent from sheet row {first} on" if first is not None else "rows were left unsent"
        lines.append(f"  {where} ({_rows(skipped)} not sent, marked skipped); "
                     f"{_credentials_fix(run) if refused else 'fix the cause above'}, "
                     f"then run the next command: rows already booked are not sent again")
    fix = counts.get("invalid", 0) + counts.get("rejected", 0)
    if fix:
        parts = ", ".join(f"{counts[s]} {s}" for s in ("invalid", "rejected") if counts.get(s))
        lines.append(f"fix in the sheet: {_rows(fix)} ({parts}): the marked cell's note says what is wrong")
    if counts.get("unknown"):
        lines.append(f"check with the provider first: {_rows(counts['unknown'])} unknown: may have been booked; never "
                     f"book them by hand (the rerun checks each with the provider before sending)")
    failed = counts.get("failed", 0)
    if failed and not (stop is not None and stop[3] and failed <= 1):
        lines.append(f"not delivered: {_rows(failed)} failed: fix the cause their _message names, then rerun")
    lines.extend(next_lines(run, counts))
    return lines


def next_lines(run: Any, counts: dict[str, int]) -> list[str]:
    """The exact next command(s) for this run's results workbook (flows.workbooks.results.next_command)."""
    if not run.results_path:
        return []
    steps = next_command(run.results_path, run.summary(), {Status(s): n for s, n in counts.items()})
    return [f"next: {command}" for _, command in steps if command]


def print_summary(run: Any, stream: IO[str]) -> None:
    print("\n".join(summary_lines(run)), file=stream)
