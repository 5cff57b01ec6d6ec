"""Keep a normal run's terminal to the progress bar and the summary.

Prefect logs its own progress at INFO (sent to the API and the UI, where it belongs) and, on
machines without internet, may log failed telemetry or shutdown noise. This lowers Prefect's
console loggers to WARNING for the duration of a run unless PREFECT_LOGGING_LEVEL says otherwise.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_prefect"]

_NOISY = ("prefect", "prefect.server", "prefect.client", "prefect.events", "uvicorn", "uvicorn.error", "httpx", "docket")


class _DropInterruptNoise(logging.Filter):
    """Ctrl-C makes Prefect log 'Crash detected!' for the flow and each running task; the run's
    own summary already says it was interrupted, and the flow's state in the UI says Crashed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            from .errors import ImporterError

            if isinstance(record.exc_info[1], ImporterError):  # the CLI prints it as one readable line
                return False
        message = record.getMessage()
        if "cancelled by the runtime environment" in message:
            return False
        if record.levelno < logging.WARNING and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
            return True  # the run's own lines: for the UI's Logs tab (the console handler is at WARNING)
        return not ("Finished in state Failed" in message and _importer_error_named(message))


def _importer_error_named(message: str) -> bool:
    from . import errors

    return any(name in message for name in errors.__all__)


_FILTER = _DropInterruptNoise()


class _TerminalOnly(logging.Filter):
    """On the terminal (not in the UI): the run's own lines and its final state are the summary's to say.
    A run that ends Failed on purpose (rows failed or unknown, credentials refused) logs "Finished in state
    Failed(...)" at ERROR; the summary printed next says the same, with what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
            return True
        if record.levelno < logging.WARNING:
            return False
        message = record.getMessage()
        if message.startswith("Finished in state Failed") and "needs attention" in message:
            return False
        return not (record.exc_info is None and message.startswith(("nothing was sent:", "the run stopped sending:")))


_TERMINAL = _TerminalOnly()


def _console_handlers() -> list[logging.Handler]:
    """The handlers that write to the terminal (Prefect's console handler on the root logger)."""
    found = []
    for handler in logging.getLogger().handlers:
        stream = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if stream or type(handler).__name__ == "PrefectConsoleHandler":
            found.append(handler)
    return found


@contextmanager
def quiet_prefect() -> Iterator[None]:
    level = os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING").upper()
    saved = {}
    for name in _NOISY:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(max(logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else logging.WARNING,
                            logging.WARNING))
    run_loggers = [logging.getLogger("prefect.flow_runs"), logging.getLogger("prefect.task_runs")]
    for logger in run_loggers:
        logger.addFilter(_FILTER)
    consoles = _console_handlers()
    for handler in consoles:
        handler.addFilter(_TERMINAL)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(_TERMINAL)
        for logger in run_loggers:
            logger.removeFilter(_FILTER)
        for name, lvl in saved.items():
            logging.getLogger(name).setLevel(lvl)
