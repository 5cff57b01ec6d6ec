"""Quiet, offline-friendly Prefect defaults, applied before Prefect is imported; the process
hygiene of a run: the temporary server ends with its parent (SIGINT/SIGTERM: flows/cli/signals.py);
and a run's terminal kept to the progress bar and the summary (:func:`quiet_prefect`).

Only defaults: anything the user has set in the environment or a Prefect profile wins.

Prefect logs its own progress at INFO (sent to the API and the UI, where it belongs) and, on
machines without internet, may log failed telemetry or shutdown noise. :func:`quiet_prefect` lowers
Prefect's console loggers to WARNING for the duration of a run unless PREFECT_LOGGING_LEVEL says otherwise.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import errors
from .errors import ImporterError

__all__ = ["DEFAULTS", "apply_defaults", "configured_api_url", "configured_setting", "contain_ephemeral_server",
           "die_with_parent", "ephemeral_server", "libc_prctl", "quiet_prefect"]

DEFAULTS = {
    # no telemetry calls: offline machines would print errors for them
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    # the terminal shows the progress bar and the summary; Prefect's own INFO lines go to the UI/API
    "PREFECT_LOGGING_LEVEL": "WARNING",
    # ...and so do a run's own lines (rows read, chunks sent, stops, counts): the flow and task run loggers
    # log INFO to the API handler (the UI's Logs tab), while the console handler shows warnings and errors only
    "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
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


def configured_api_url(environ: Mapping[str, str] | None = None, folder: Path | None = None) -> str | None:
    """The Prefect server a flow started now would report to (PREFECT_API_URL), or None when there is none and
    Prefect would start a temporary one: decided without importing Prefect (about a second), as Prefect's
    settings read it (prefect/settings/base.py, sources.py, 3.8), highest first: the environment; prefect.toml
    (``[api] url``) and pyproject.toml (``[tool.prefect.api] url``) in ``folder`` (the current one); then the
    active profile (PREFECT_PROFILE, else ``active``) of the profiles file (PREFECT_PROFILES_PATH, a
    ``profiles_path`` in those files, $PREFECT_HOME/profiles.toml, ~/.prefect/profiles.toml). A .env file is
    in the environment already (the CLI loads it first). When Prefect is already loaded (a test harness's
    temporary settings, a library caller) and no ``environ`` is given, its own answer, which costs nothing then."""
    return configured_setting("PREFECT_API_URL", environ, folder)


#: the Prefect settings read without Prefect, and where prefect.toml keeps each (``[table] key``)
_SETTINGS = {
    "PREFECT_API_URL": ("api", "url"),
    "PREFECT_API_KEY": ("api", "key"),
    "PREFECT_API_AUTH_STRING": ("api", "auth_string"),
    "PREFECT_UI_URL": ("ui", "url"),
}


def configured_setting(name: str, environ: Mapping[str, str] | None = None, folder: Path | None = None) -> str | None:
    """One of Prefect's client settings (:data:`_SETTINGS`: the API's URL, key and auth string, the UI's URL), read
    as :func:`configured_api_url` says, without importing Prefect; None when unset or empty."""
    if environ is None and "prefect.settings" in sys.modules:
        value = getattr(sys.modules["prefect.settings"], name).value()
        if hasattr(value, "get_secret_value"):  # the API key and auth string are pydantic SecretStr
            value = value.get_secret_value()
        return str(value) if value else None
    table_name, key = _SETTINGS[name]
    env = os.environ if environ is None else environ
    here = Path.cwd() if folder is None else folder
    if name in env:
        return env[name] or None
    prefect_toml = _toml(here / "prefect.toml")
    pyproject = _toml(here / "pyproject.toml").get("tool", {}).get("prefect", {})
    for table in (prefect_toml, pyproject):
        value = table.get(table_name, {}).get(key) if isinstance(table.get(table_name), dict) else None
        if value:
            return str(value)
    if env.get("PREFECT_TESTING_UNIT_TEST_MODE") or env.get("PREFECT_TESTING_TEST_MODE"):
        return None  # Prefect then reads its bundled profiles only, which name no server
    path = (env.get("PREFECT_PROFILES_PATH") or prefect_toml.get("profiles_path") or pyproject.get("profiles_path")
            or str(Path(env.get("PREFECT_HOME") or Path.home() / ".prefect") / "profiles.toml"))
    profiles = _toml(Path(path))
    active = env.get("PREFECT_PROFILE") or profiles.get("active")
    profile = profiles.get("profiles", {}).get(active, {}) if isinstance(active, str) else {}
    return str(profile.get(name) or "") or None  # no such profile: Prefect's bundled one, no server


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # Prefect warns and reads on; so do we
        return {}


def ephemeral_server() -> bool:
    """Whether a flow started now would run against a temporary local server (no PREFECT_API_URL set in the
    environment or the Prefect profile), as Prefect's own client decides it."""
    # for start-up speed: Prefect is imported only when a run is a Prefect flow run
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


# --- the temporary server ends with its parent, and is not stopped by the terminal's Ctrl-C -------------

_PR_SET_PDEATHSIG = 1


def libc_prctl() -> Callable[..., int] | None:
    """prctl from libc, looked up in the parent (never in the forked child); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent(parent: int, prctl: Callable[..., int] | None) -> Callable[[], None]:
    """What a Prefect server's process does between fork and exec (Linux): die with ``parent`` (SIGTERM when
    the thread that started it ends: start it from the main thread), and take signals again (the CLI blocks
    SIGTERM in its threads, see flows.cli.signals.GracefulStop). Used for the temporary server a run starts
    and for the web page's long-lived one (flows/prefect_server.py)."""
    def setup() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl: nobody would signal us
                os._exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())

    return setup


class _ContainedSubprocess:
    """Stands in for the ``subprocess`` module inside ``prefect.server.api.server``: its one Popen (the
    temporary server, ``SubprocessASGIServer._run_uvicorn_command``) starts in a session of its own, so
    Ctrl-C in a terminal (SIGINT to the foreground process group) does not stop it under the run that still
    reports to it, and with a parent-death signal, so a run killed with SIGKILL does not leave it running
    (230 MB, listening). Prefect still stops it at exit (``atexit``) as before."""

    def __init__(self) -> None:
        self._real = subprocess
        self._prctl = libc_prctl()

    def Popen(self, *args: Any, **kwargs: Any) -> Any:
        if os.name == "posix":
            kwargs.setdefault("start_new_session", True)
            # the parent-death signal fires when the *thread* that started the child ends: only the main thread
            # lives as long as the process (Prefect starts the server there when `run` starts a flow)
            prctl = self._prctl if threading.current_thread() is threading.main_thread() else None
            kwargs.setdefault("preexec_fn", die_with_parent(os.getpid(), prctl))
        return self._real.Popen(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def contain_ephemeral_server() -> None:
    """Start Prefect's temporary server, when a run needs one, as :class:`_ContainedSubprocess` says. Idempotent."""
    import prefect.server.api.server as server  # for start-up speed: only when a temporary server is started

    if not isinstance(server.subprocess, _ContainedSubprocess):
        server.subprocess = _ContainedSubprocess()


# --- the terminal: the progress bar and the summary, Prefect's lines to the UI ----------------------------

_NOISY = ("prefect", "prefect.server", "prefect.client", "prefect.events", "uvicorn", "uvicorn.error", "httpx",
          "docket")


class _DropInterruptNoise(logging.Filter):
    """Ctrl-C makes Prefect log 'Crash detected!' for the flow and each running task; the run's
    own summary already says it was interrupted, and the flow's state in the UI says Crashed."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ImporterError):  # the CLI prints it as one line
            return False
        message = record.getMessage()
        if "cancelled by the runtime environment" in message:
            return False
        if record.levelno < logging.WARNING and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")):
            return True  # the run's own lines: for the UI's Logs tab (the console handler is at WARNING)
        return not ("Finished in state Failed" in message and _importer_error_named(message))


def _importer_error_named(message: str) -> bool:
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
    named = logging.getLevelName(level)
    for name in _NOISY:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(max(named if isinstance(named, int) else logging.WARNING, logging.WARNING))
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
