"""Shared fixtures: provider simulators on loopback, a throwaway ledger, mapping variants."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.prefect_env import apply_defaults

# Prefect's home (its temporary servers' SQLite database, profiles, memo store) is the test session's own,
# not ~/.prefect: that one is shared with every other test run and command on the machine, whose servers
# would lock and migrate the same database file while ours start, and a profile there could name a server.
# Subprocesses (`run --prefect`) inherit it. Set before anything imports Prefect, removed at the end.
_PREFECT_HOME = tempfile.mkdtemp(prefix="tests-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
apply_defaults()

from flows.engine.plan import Plan, prepare
from flows.engine.run import RunOptions, run_import

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
SAMPLES = ROOT / "sample_data"


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder, so default outputs (out/, the default ledger) never land in
    the checkout or leak from one test into another."""
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def served(sim: Any) -> Iterator[Any]:
    """``with served(sim) as sim:``, a simulator on 127.0.0.1 for the block; ``sim.url`` is its base URL."""
    from flows.sandbox import SimulatorServer

    with SimulatorServer(sim) as url:
        sim.url = url
        yield sim


def use_sandbox(provider: str, url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point ``provider`` at a simulator at ``url``: its base URL and secrets, set in os.environ for the
    test (CLI and flow tests read them there) and returned."""
    from flows.sandbox.demo import sandbox_env

    env = sandbox_env(provider, url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def jicoo_sim() -> Iterator[Any]:
    """A fresh Jicoo simulator on 127.0.0.1; ``sim.url`` is its base URL."""
    from flows.sandbox import JicooSimulator

    with served(JicooSimulator()) as sim:
        yield sim


@pytest.fixture
def jicoo_env(jicoo_sim, monkeypatch) -> dict[str, str]:
    """Environment pointing Jicoo at the simulator (also set in os.environ for CLI/flow tests)."""
    return use_sandbox("jicoo", jicoo_sim.url, monkeypatch)


@pytest.fixture
def ledger_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def mapping_variant(tmp_path: Path, base: str = "jicoo.yaml", **changes: Any) -> Path:
    """A copy of a bundled mapping with some keys changed: ``connection__timeout_seconds=1``."""
    data = yaml.safe_load((MAPPINGS / base).read_text())
    for dotted, value in changes.items():
        cur = data
        parts = dotted.split("__")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        if value is None:
            cur.pop(parts[-1], None)
        else:
            cur[parts[-1]] = value
    out = tmp_path / f"variant-{base}"
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out


def in_threads(target: Callable[..., Any], args: Iterable[tuple]) -> None:
    """Run ``target(*a)`` for each ``a`` in ``args``, each in its own thread, all at once; wait for them all."""
    threads = [threading.Thread(target=target, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def import_now(plan: Any, mapping: Path | str | None = None, *, wait: float = 0.0, **options: Any) -> Any:
    """The tests' one way to import: engine.run_import on a plan (or a sheet and its mapping), without Prefect.

    ``options`` are RunOptions'; ``wait``: seconds to wait for callbacks. Returns the ImportRun (closed) for
    its outcomes and counts. Its workbook goes to ``out``, else to a temporary folder (never sample_data/)."""
    if not isinstance(plan, Plan):
        plan = prepare(plan, mapping)
    if options.get("out") is None:
        options["out"] = Path(tempfile.mkdtemp(prefix="import-now-")) / "results.xlsx"
    return asyncio.run(run_import(plan, RunOptions(**options), wait_callbacks=wait)).run
