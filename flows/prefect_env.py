"""Quiet, offline-friendly Prefect defaults, applied before Prefect is imported.

Only defaults: anything the user has set in the environment or a Prefect profile wins.
"""
from __future__ import annotations

import os

__all__ = ["apply_defaults", "DEFAULTS", "ephemeral_server"]

DEFAULTS = {
    # no telemetry calls: offline machines would print errors for them
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # the terminal shows the progress bar and the summary; Prefect's own INFO lines go to the UI/API
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    # the temporary local server starts slower on small machines than the 20 s default allows
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # nothing in our tasks needs result persistence; per-row detail lives in the ledger and workbook
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


def apply_defaults() -> None:
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


def ephemeral_server() -> bool:
    """Whether a flow started now would run against a temporary local server (no PREFECT_API_URL set in the
    environment or the Prefect profile), as Prefect's own client decides it."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())
