"""SIGINT and SIGTERM stop a run cleanly: the workbook of what was done is written, exit 130 or 143."""
from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["GracefulStop"]


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
