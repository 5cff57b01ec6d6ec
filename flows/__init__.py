"""booking-importer: book every row of a CSV or Excel sheet into a provider's API, exactly once.

Library first::

    import asyncio
    from flows import RunOptions, prepare, run_import

    plan = prepare("bookings.xlsx", "mappings/jicoo.yaml")        # read, map and check every row
    result = asyncio.run(run_import(plan, RunOptions(ledger_url="sqlite:///ledger.sqlite")))
    print(result.counts, result.results)                          # {'created': 54, ...} and the workbook

``run_import(plan, options, validate=True)`` checks without sending. ``flows.import_sheet`` wraps
the same call as the Prefect flow ``import_sheet``; ``flows.cli`` is the ``booking-import`` command.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "prepare": "engine.plan", "Plan": "engine.plan", "run_import": "engine.run", "RunOptions": "engine.run",
    "ImportRun": "engine.run", "RunResult": "engine.summary", "load_mapping": "mapping.model",
    "read_sheet": "workbooks.sheets", "Outcome": "outcomes",
    "Status": "outcomes", "resolve": "hooks", "ImporterError": "errors", "UsageError": "errors",
    "ConfigError": "errors", "InputError": "errors", "CredentialsError": "errors", "LedgerError": "errors",
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .engine.plan import Plan, prepare
    from .engine.run import ImportRun, RunOptions, run_import
    from .engine.summary import RunResult
    from .errors import ConfigError, CredentialsError, ImporterError, InputError, LedgerError, UsageError
    from .hooks import resolve
    from .mapping.model import load_mapping
    from .outcomes import Outcome, Status
    from .workbooks.sheets import read_sheet


def __getattr__(name: str) -> Any:
    """Loaded on first use, for start-up speed: `booking-import --help` must not import the engine."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'flows' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
