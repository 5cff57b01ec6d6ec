"""``booking-import web --demo`` starts its own long-lived local Prefect server (flows/prefect_server.py) and books
each import from the page as a flow run of ``import_sheet`` there, linked from the page; killed with SIGKILL, it
leaves no server behind. Marked ``prefect``: starting a Prefect server takes a while (one start for all of it)."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from flows.prefect_server import free_port, use_api

from .test_web import matched

pytestmark = pytest.mark.prefect


def _wait_for_lines(p: subprocess.Popen, until: str, timeout: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in p.stdout:
        lines.append(line)
        if line.startswith(until) or time.monotonic() > deadline:
            break
    return lines


# the server's first start creates its database (migrations): a minute or more on a busy 2-core machine, beyond
# the suite's 120 s default; the waits inside say which step did not finish
@pytest.mark.timeout(480)
def test_web_books_as_flow_runs_on_its_own_prefect_server_and_leaves_none_behind(tmp_path):
    from prefect.client.orchestration import get_client

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    p = subprocess.Popen([sys.executable, "-m", "flows", "web", "--demo", "--port", str(port)], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = _wait_for_lines(p, "Open http", 240)
        text = "".join(lines)
        password = re.search(r"sign in as demo / (\S+) ", lines[-1])
        ui = re.search(r"Prefect UI at (http://127\.0\.0\.1:\d+):", text)
        assert password and ui, text
        ui_url = ui.group(1)
        assert (tmp_path / "out" / "web-demo" / "prefect").is_dir()  # its own PREFECT_HOME in the web's data folder
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            page = c.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            c.post("/login", data={"csrf": csrf, "username": "demo", "password": password.group(1)})
            csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/").text).group(1)
            base = matched(c, csrf, tmp_path)
            assert c.post(f"{base}/book", data={"csrf": csrf}).status_code == 303
            deadline = time.monotonic() + 180
            while c.get(f"{base}/progress").status_code != 303:
                assert time.monotonic() < deadline, "the flow run did not finish"
                time.sleep(0.5)
            results = c.get(f"{base}/results").text
        link = re.search(r'<a id="flow-run" href="([^"]+)"', results)
        assert link and link.group(1).startswith(f"{ui_url}/runs/flow-run/"), results
        assert re.search(r'data-status="created">54<', results)
        flow_run_id = link.group(1).rsplit("/", 1)[-1]

        async def read():
            async with get_client() as client:
                return await client.read_flow_run(flow_run_id)

        with use_api(f"{ui_url}/api"):
            run = asyncio.run(read())
        assert run.state.type.value == "COMPLETED"
        assert run.name == "jicoo: bookings from the office.csv (web, demo)"
    finally:
        p.send_signal(signal.SIGKILL)  # no chance to clean up: the parent-death signal must end the server
        p.wait(10)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{ui_url}/api/health", timeout=1)
        except httpx.TransportError:
            break
        assert time.monotonic() < deadline, "the Prefect server outlived the web process"
        time.sleep(0.25)
