"""No garbage-collector policy anywhere (issue 13 item 6): freezing the heap before sending measured no
faster at 0 ms (README, "A run and Prefect"), so neither the engine nor the command freezes or disables
the collector, and a command ends without the interpreter's heap walk instead (flows/cli/entry.py)."""
from __future__ import annotations

import gc

import pytest

from flows.cli import main

from .test_e2e_jicoo import MAPPING, SHEET, run_import


def test_a_library_run_leaves_the_collector_alone(jicoo_sim, jicoo_env, ledger_url):
    """Issue 13 item 6: the engine has no garbage-collector policy (the one policy is the command's)."""
    seen: list[tuple[int, bool]] = []
    run = run_import(ledger_url=ledger_url, progress=lambda run: seen.append((gc.get_freeze_count(), gc.isenabled())))
    assert run.counts()["created"] > 0
    assert seen and all(state == (0, True) for state in seen)  # nothing frozen, collection on, row after row
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
