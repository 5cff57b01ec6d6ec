"""A long-lived local Prefect server for a long-lived process (``booking-import web``).

Prefect's own temporary server starts with the first flow run and belongs to the thread that started it;
a web page books from worker threads, for hours. So the web process starts ``prefect server start`` itself,
once, from its main thread, before it serves anything:

- on a free port on 127.0.0.1, with its own PREFECT_HOME (and so its own SQLite database) under the web's
  data folder: the runs of the page stay together across restarts, apart from any other Prefect;
- in a process group of its own (Ctrl-C in the terminal goes to the web process, which then stops the
  server in order) and with a parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``), so a web process
  killed with SIGKILL does not leave it running. The kernel sends that signal when the *thread* that
  started the child ends: :meth:`LocalPrefectServer.start` refuses to start it from another thread than the
  main one, which lives as long as the process;
- waited for until ``/api/health`` answers, with one line saying why when it cannot start (its log's
  last line), and stopped with SIGTERM to its group (SIGKILL after ``stop_timeout``) when the web ends.

Only the scheduler and late-run services are off: nothing is scheduled on this server, the page's flow
runs are started in-process.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from .errors import ConfigError
from .prefect_env import die_with_parent, libc_prctl

__all__ = ["LocalPrefectServer", "free_port", "use_api"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the server binds it a moment later; a clash is reported as a start failure)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LocalPrefectServer:
    """``prefect server start`` as a child of this process, for as long as a ``with`` block (or start/stop)."""

    #: the program before ``server start --host H --port P`` (tests put a stand-in that fails or hangs here)
    program: tuple[str, ...] = (sys.executable, "-m", "prefect")

    def __init__(self, home: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 start_timeout: float = 120.0, stop_timeout: float = 10.0) -> None:
        self.home = Path(home).resolve()
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_UI_URL", "PREFECT_PROFILE")}
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "DO_NOT_TRACK": "1",
        })
        return env

    def start(self) -> str:
        """Start the server and wait until it is healthy; the API address. ConfigError when it cannot start."""
        if threading.current_thread() is not threading.main_thread():
            raise ConfigError("the local Prefect server must be started from the main thread (its parent-death "
                              "signal follows the thread that starts it); start it before serving")
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        command = [*self.program, "server", "start", "--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=self._environment(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True,
                                            preexec_fn=die_with_parent(os.getpid(), libc_prctl()))
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.api_url

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise ConfigError(f"the local Prefect server exited ({code}) before it was ready: "
                                      f"{self._last_log_line()} (log: {self.log_path}); or run without it: "
                                      f"--no-prefect, or PREFECT_API_URL for a server of your own")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ConfigError(f"the local Prefect server did not answer within {self.start_timeout:g} s "
                                      f"(log: {self.log_path}); the machine may be busy: try again, or run with "
                                      f"--no-prefect, or set PREFECT_API_URL to a server of your own")
                time.sleep(0.25)

    def _last_log_line(self) -> str:
        try:
            lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "it printed nothing"

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL if it is still there after ``stop_timeout``."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def __enter__(self) -> LocalPrefectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def use_api(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at ``api_url``, in every thread: the environment (for what starts
    later), Prefect's process-wide settings (read from the environment once, at import; a thread started
    with a fresh context, like a server's worker thread, reads those) and this context's settings."""
    # here for start-up speed: importing Prefect takes 1-2 s, and `web --no-prefect` never needs it
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api_url
    refresh_global_settings_context()
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
        refresh_global_settings_context()
