"""flows/prefect_server.py without Prefect: a server that cannot start is one line saying why and what to do, one
that never answers is stopped (its whole process group) after the start timeout, and it is only started from
the main thread (its parent-death signal follows the starting thread). The real server: tests/test_web_prefect.py."""
from __future__ import annotations

import os
import sys
import threading
from typing import ClassVar

import pytest

from flows.errors import ConfigError
from flows.prefect_server import LocalPrefectServer, use_api


class Failing(LocalPrefectServer):
    program = (sys.executable, "-c", "import sys; print('boom: the database is locked'); sys.exit(3)")


class Hanging(LocalPrefectServer):
    program = (sys.executable, "-c", "import time; time.sleep(60)")
    started: ClassVar[list[int]] = []

    def _wait_healthy(self) -> None:
        assert self.process is not None
        self.started.append(self.process.pid)
        super()._wait_healthy()


def test_a_server_that_exits_is_one_line_with_its_last_log_line_and_the_way_out(tmp_path):
    with pytest.raises(ConfigError) as err:
        Failing(tmp_path / "prefect").start()
    message = str(err.value)
    assert "\n" not in message and "exited (3)" in message and "boom: the database is locked" in message
    assert "--no-prefect" in message and "PREFECT_API_URL" in message
    assert (tmp_path / "prefect" / "server.log").is_file()


def test_a_server_that_never_answers_is_stopped_after_the_timeout(tmp_path):
    server = Hanging(tmp_path / "prefect", start_timeout=0.5)
    with pytest.raises(ConfigError, match=r"did not answer within 0\.5 s"):
        server.start()
    assert server.process is None
    with pytest.raises(ProcessLookupError):  # its process group (id: the child's pid, a session of its own) is gone
        os.killpg(Hanging.started[-1], 0)


def test_it_is_started_from_the_main_thread_only(tmp_path):
    errors: list[Exception] = []

    def start() -> None:
        try:
            Hanging(tmp_path / "prefect", start_timeout=0.5).start()
        except ConfigError as exc:
            errors.append(exc)

    t = threading.Thread(target=start)
    t.start()
    t.join(10)
    assert errors and "main thread" in str(errors[0])
    assert not (tmp_path / "prefect").exists()  # refused before anything started


def test_use_api_points_every_thread_at_the_server_and_puts_things_back():
    from prefect.settings import PREFECT_API_URL

    seen: list[str | None] = []

    def look() -> None:
        seen.append(PREFECT_API_URL.value())

    before = os.environ.get("PREFECT_API_URL")
    with use_api("http://127.0.0.1:9/api"):
        look()
        t = threading.Thread(target=look)  # a fresh context, as a web server's worker thread has
        t.start()
        t.join()
    assert seen == ["http://127.0.0.1:9/api"] * 2
    assert os.environ.get("PREFECT_API_URL") == before
