"""The progress bar: redrawn a few times a second, not once a row, and always for the last row."""
from __future__ import annotations

import io
from types import SimpleNamespace

from flows import terminal as report
from flows.outcomes import Outcome, Status
from flows.terminal import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bar_is_redrawn_at_most_ten_times_a_second_and_for_the_last_row(monkeypatch):
    counted = []
    real = report._short_counts
    monkeypatch.setattr(report, "_short_counts", lambda run: counted.append(run.done) or real(run))
    clock = Clock()
    run = SimpleNamespace(done=0, total=1_000, outcomes=[None] * 1_000)
    with Progress(stream=Terminal(), clock=clock) as progress:
        for i in range(1_000):  # a row settles every millisecond: one second in all
            run.outcomes[i] = Outcome(Status.CREATED)
            run.done = i + 1
            clock.now += 0.001
            progress.update(run)
    assert 9 <= len(counted) <= 12  # not 1,000: counting reads every row
    assert counted[0] == 1 and counted[-1] == 1_000


def test_without_a_terminal_a_line_every_tenth(monkeypatch):
    out = io.StringIO()
    run = SimpleNamespace(done=0, total=50, outcomes=[None] * 50)
    progress = Progress(stream=out)
    for i in range(50):
        run.outcomes[i] = Outcome(Status.CREATED if i % 5 else Status.INVALID)
        run.done = i + 1
        progress.update(run)
    lines = out.getvalue().splitlines()
    assert (len(lines) == 11 and lines[0].startswith("1/50")
            and lines[-1] == "50/50 rows settled (10 invalid, 40 created)")
