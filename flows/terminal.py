"""What a person sees in the terminal: a progress bar while rows are sent, then a summary."""
from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["Progress", "print_summary", "summary_lines"]


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
    if "callback_url" in getattr(run, "run_values", {}) and (waiting or run.callbacks_confirmed):  # e.g. Systems X Bridge
        lines.append(f"callbacks: {run.callbacks_confirmed} row(s) went accepted -> created as the provider's callbacks "
                     f"arrived" + (f"; {waiting} still accepted: later callbacks are recorded by `booking-import "
                                   f"callbacks`, then `booking-import status` refreshes the workbook" if waiting else ""))
    if run.results_path:
        lines.append(f"results: {run.results_path}")
    not_ok = sum(n for s, n in counts.items() if s not in ("created", "accepted", "skipped"))
    held = sum(1 for o in run.outcomes if o is not None and getattr(o, "needs_rerun", False))
    if held:  # another run holds them (flows/ledger/claims.py RowClaims); exit code 1
        lines.append(f"{held} row(s) not sent: another run was sending them (see _message); rerun after it ends")
    if run.interrupted:
        lines.append("interrupted: rows not reached are marked skipped; run the same command again to continue")
    elif not_ok:
        lines.append(f"{not_ok} row(s) need attention: open the results workbook and filter _status")
    return lines


def print_summary(run: Any, stream: IO[str]) -> None:
    print("\n".join(summary_lines(run)), file=stream)
