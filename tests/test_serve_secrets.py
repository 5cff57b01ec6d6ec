"""``booking-import serve`` keeps secrets out of what the Prefect server stores: a PostgreSQL ledger's
password and a webhook's token never appear in the deployment's or its flow runs' parameters, and the
flow runs (subprocesses of the worker) still open the ledger and notify the webhook with them."""
from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from .conftest import MAPPINGS
from .pg_support import pg_server, pg_url  # noqa: F401 (fixtures)
from .test_nightly_prefect import prefect_api, sheet  # noqa: F401 (fixture)

# 300 s, not the suite's 120: the first test of the module also waits for its temporary Prefect server (109 s
# of setup at load 8-12 on 2 cores, which made the test time out before its first request); a backstop only
pytestmark = [pytest.mark.prefect, pytest.mark.timeout(300)]

TOKEN = "T0K3N-of-the-hook"
PASSWORD = "s3cret-Ledger-pw"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        self.received.append((self.path, self.rfile.read(int(self.headers.get("Content-Length", 0)))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_serve_stores_no_ledger_password_and_no_webhook_token(prefect_api, pg_url, jicoo_sim, jicoo_env, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    parts = urlsplit(pg_url)
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port}"
    ledger = urlunsplit(parts._replace(netloc=netloc))
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    inbox = tmp_path / "inbox"
    sheet(inbox / "jicoo" / "secret.csv", "SC", 2, "15:00")
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    env.pop("BOOKING_IMPORTER_LEDGER", None)
    p = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--inbox", str(inbox), "--mappings", str(MAPPINGS),
                          "--ledger", ledger, "--name", "secret-inbox", "--settle-seconds", "0.1",
                          "--notify", f"http://127.0.0.1:{hook.server_port}/hooks/{TOKEN}"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def deployment():
            async with get_client() as client:
                try:
                    return await client.read_deployment_by_name("import_inbox/secret-inbox")
                except Exception:
                    return None

        end = time.monotonic() + 60
        found = None
        while found is None and time.monotonic() < end and p.poll() is None:
            found = asyncio.run(deployment())
            time.sleep(0.2)
        assert found is not None, p.stderr.read() if p.poll() is not None else "the deployment never appeared"
        stored = json.dumps(found.model_dump(mode="json"))
        assert PASSWORD not in stored and TOKEN not in stored
        assert found.parameters["ledger"].startswith("postgresql://") and found.parameters["notify"].startswith("env:")

        run = run_deployment("import_inbox/secret-inbox", timeout=120)
        assert run.state.is_completed(), run.state
        assert len(jicoo_sim.bookings) == 2  # the flow run opened the ledger: the password reached it in-process
        assert (inbox / "archive" / dt.date.today().isoformat() / "jicoo" / "secret.results.xlsx").is_file()
        assert [path for path, _ in _Hook.received] == [f"/hooks/{TOKEN}"]

        async def all_runs():
            async with get_client() as client:
                response = await client._client.post("/flow_runs/filter", json={"limit": 200})
                response.raise_for_status()
                return response.json()

        runs = json.dumps(asyncio.run(all_runs()))
        assert "secret.csv" in runs  # the subflow's own parameters are among them
        assert PASSWORD not in runs and TOKEN not in runs
    finally:
        hook.shutdown()
        hook.server_close()
        p.terminate()
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
