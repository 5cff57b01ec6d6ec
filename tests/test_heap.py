"""While rows are sent, the garbage collector leaves alone what was alive before (flows/heap.py), and
gets it back afterwards: full collections during a send walk only what the send creates."""
from __future__ import annotations

import gc

from flows.heap import long_lived_frozen

from .conftest import in_threads
from .test_e2e_jicoo import run_import


def test_what_exists_when_sending_starts_is_frozen_until_it_ends():
    assert gc.get_freeze_count() == 0
    plan_like = [{"row": i} for i in range(1000)]
    with long_lived_frozen():
        frozen = gc.get_freeze_count()
        assert frozen >= len(plan_like)
        during = [{"new": i} for i in range(1000)]
        assert gc.get_freeze_count() == frozen and len(during) == 1000  # what the send creates is collected as usual
    assert gc.get_freeze_count() == 0


def test_the_last_of_several_senders_thaws():
    """Chunks of one run send side by side (the flow keeps two going), runs of an inbox worker in threads."""
    first, second = long_lived_frozen(), long_lived_frozen()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_freeze_count() > 0  # the second is still sending
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0

    errors = []

    def sender() -> None:
        try:
            for _ in range(200):
                with long_lived_frozen():
                    assert gc.get_freeze_count() > 0
        except AssertionError as exc:  # pragma: no cover - reported below
            errors.append(exc)

    in_threads(sender, [()] * 4)
    assert errors == [] and gc.get_freeze_count() == 0


def test_a_run_sends_with_the_heap_frozen_and_leaves_nothing_frozen(jicoo_sim, jicoo_env, ledger_url):
    seen: list[int] = []
    run = run_import(ledger_url=ledger_url, progress=lambda run: seen.append(gc.get_freeze_count()))
    assert run.counts()["created"] > 0
    assert seen and max(seen) > 0  # settled rows were reported while the objects from before were frozen
    assert gc.get_freeze_count() == 0


def test_an_exception_while_sending_still_thaws():
    try:
        with long_lived_frozen():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_freeze_count() == 0
