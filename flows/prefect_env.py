"""Quiet, offline-friendly Prefect defaults, applied before Prefect is imported; and the process
hygiene of a run: the temporary server ends with its parent, and SIGINT/SIGTERM stop a run cleanly.

Only defaults: anything the user has set in the environment or a Prefect profile wins.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

__all__ = ["DEFAULTS", "GracefulStop", "apply_defaults", "contain_ephemeral_server", "ephemeral_server"]

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


def ephemeral_server() -> bool:
    """Whether a flow started now would run against a temporary local server (no PREFECT_API_URL set in the
    environment or the Prefect profile), as Prefect's own client decides it."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_EPHEMERAL_ENABLED.value())


# --- the temporary server ends with its parent, and is not stopped by the terminal's Ctrl-C -------------

_PR_SET_PDEATHSIG = 1


def _child_setup(parent: int, prctl: object) -> object:
    """What the temporary server's process does between fork and exec (Linux): die with ``parent`` (SIGTERM
    when the thread that started it ends, which is the main thread: Prefect starts it there), and take
    signals again (the CLI blocks SIGTERM in its threads, see :class:`GracefulStop`)."""
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
        import subprocess

        self._real = subprocess
        self._prctl = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                self._prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, never in the forked child
            except (OSError, AttributeError):
                self._prctl = None

    def Popen(self, *args: Any, **kwargs: Any) -> Any:
        if os.name == "posix":
            kwargs.setdefault("start_new_session", True)
            # the parent-death signal fires when the *thread* that started the child ends: only the main thread
            # lives as long as the process (Prefect starts the server there when `run` starts a flow)
            prctl = self._prctl if threading.current_thread() is threading.main_thread() else None
            kwargs.setdefault("preexec_fn", _child_setup(os.getpid(), prctl))
        return self._real.Popen(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def contain_ephemeral_server() -> None:
    """Start Prefect's temporary server, when a run needs one, as :class:`_ContainedSubprocess` says. Idempotent."""
    import prefect.server.api.server as server

    if not isinstance(server.subprocess, _ContainedSubprocess):
        server.subprocess = _ContainedSubprocess()


# --- SIGINT and SIGTERM: stop the run, write the workbook, exit 130 or 143 --------------------------------


class GracefulStop:
    """Ctrl-C (SIGINT, often sent to the whole process group) and SIGTERM (a service manager, ``kill``) stop a
    run the same way: the running flow is cancelled once, rows in flight end ``unknown``, the rest ``not
    sent``, the results workbook is written, and the command exits 128 + the signal (130, 143). Further
    signals while it stops, until the process ends, are ignored, so they cannot interrupt the writing of the
    workbook or change the exit code.

    SIGTERM is blocked in every thread (threads started later inherit the mask) and taken by a waiting
    thread: Prefect installs its own SIGTERM handler while a flow runs, which would raise inside the event
    loop instead. Before the flow runs, a signal is only noted, and :meth:`checkpoint` (called between the
    steps of the command) raises KeyboardInterrupt: raised at an arbitrary point, inside an import or a
    pydantic serialisation, it came out as a PydanticSerializationError traceback with exit 1, or as a
    death by SIGINT (-2), in about one start in ten."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._loop: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        self._saved: Any = None
        self._blocked = False
        self._waiter: threading.Thread | None = None

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals are the main thread's business; an in-process caller keeps its own handling
        self._saved = signal.signal(signal.SIGINT, self._on_sigint)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            self._blocked = True
            self._waiter = threading.Thread(target=self._wait_for_sigterm, name="sigterm-waiter", daemon=True)
            self._waiter.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()
        if self.signum is not None:
            # stopping: the process is on its way out (Prefect still stops its server at exit, up to 5 s). A
            # signal now must neither kill it with the default action (exit -15, not 143) nor print a
            # KeyboardInterrupt traceback from an atexit hook, so the handlers stay: they ignore what follows
            return
        if self._saved is not None:
            signal.signal(signal.SIGINT, self._saved)
        if self._blocked:
            self._blocked = False
            if self._waiter is not None and self._waiter.ident is not None:  # wake it (the signal is its alone) to end
                signal.pthread_kill(self._waiter.ident, signal.SIGTERM)
                self._waiter.join(timeout=1)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)

    def attach(self, loop: Any, task: Any) -> None:
        """The flow's task: the first signal cancels it (from any thread)."""
        with self._lock:
            self._loop, self._task = loop, task
            pending = self.signum is not None
        if pending:  # a signal came between the start of the loop and now
            loop.call_soon_threadsafe(task.cancel)

    def detach(self) -> None:
        with self._lock:
            self._loop = self._task = None

    def checkpoint(self) -> None:
        """Raise KeyboardInterrupt if a signal came (between the steps of a command, before the flow runs)."""
        if self.signum is not None:
            raise KeyboardInterrupt

    def _request(self, signum: int) -> None:
        """Note the first signal, and cancel the flow if it runs; later ones are ignored (already stopping)."""
        with self._lock:
            if self.signum is not None:
                return
            self.signum = signum
            if self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._request(signal.SIGINT)

    def _wait_for_sigterm(self) -> None:
        while self._blocked:
            try:
                signal.sigwait({signal.SIGTERM})
            except Exception:  # pragma: no cover - interpreter shutting down
                return
            if not self._blocked:  # woken by __exit__
                return
            self._request(signal.SIGTERM)
