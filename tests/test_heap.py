"""While rows are sent, the garbage collector leaves alone what was alive before (flows/heap.py), and
gets it back afterwards: full collections during a send walk only what the send creates. The command
itself freezes nothing (measured no faster: flows/heap.py)."""
from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from flows.cli import main
from flows.heap import long_lived_frozen

from .test_e2e_jicoo import MAPPING, SHEET, run_import


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

    # Four threads entering and leaving 200 times each, in a fresh interpreter: gc.get_freeze_count()
    # walks the whole frozen heap, which inside a long test session is millions of objects (minutes).
    proc = subprocess.run([sys.executable, "-c", _THREADED_SENDERS], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


_THREADED_SENDERS = """
import gc, threading
from flows.heap import long_lived_frozen
errors = []
def sender():
    try:
        for _ in range(200):
            with long_lived_frozen():
                assert gc.get_freeze_count() > 0
    except AssertionError as exc:
        errors.append(exc)
threads = [threading.Thread(target=sender) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
assert errors == [] and gc.get_freeze_count() == 0, errors
print("ok")
"""


def test_a_library_run_leaves_the_collector_alone(jicoo_sim, jicoo_env, ledger_url):
    """Issue 13 item 6: the engine has no garbage-collector policy (the one policy is the command's)."""
    seen: list[tuple[int, bool]] = []
    run = run_import(ledger_url=ledger_url, progress=lambda run: seen.append((gc.get_freeze_count(), gc.isenabled())))
    assert run.counts()["created"] > 0
    assert seen and all(state == (0, True) for state in seen)  # nothing frozen, collection on, row after row
    assert gc.get_freeze_count() == 0


def test_an_exception_while_sending_still_thaws():
    try:
        with long_lived_frozen():
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert gc.get_freeze_count() == 0


# --- the command ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("has_key", [True, False], ids=["run", "missing-secret"])
def test_a_command_leaves_nothing_frozen(jicoo_sim, jicoo_env, monkeypatch, tmp_path, has_key):
    """booking-import run in-process: whether it sends or stops with exit 2 after loading pandas."""
    if not has_key:
        monkeypatch.delenv("JICOO_API_KEY")
    code = main(["run", str(SHEET), "-m", str(MAPPING), "-q", "-o", str(tmp_path / "r.xlsx"),
                 "--ledger", str(tmp_path / "l.sqlite")])
    assert code == (1 if has_key else 2)  # the sample has invalid rows
    assert gc.get_freeze_count() == 0 and gc.isenabled()
