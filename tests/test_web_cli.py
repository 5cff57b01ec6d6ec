"""``booking-import web``: the password hasher and the demo (simulators, a printed demo account), as processes."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import httpx

from flows.web.auth import verify_password

from .web_support import ROOT


def test_hash_password_reads_stdin_and_prints_a_hash_for_the_accounts_file():
    p = subprocess.run([sys.executable, "-m", "flows", "web", "--hash-password"], input="correct horse\n",
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip()
    assert line.startswith("scrypt$") and "correct horse" not in line and verify_password("correct horse", line)


def test_web_without_accounts_says_what_to_do_and_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_WEB_")}
    p = subprocess.run([sys.executable, "-m", "flows", "web", "--mappings", str(ROOT / "mappings")], env=env,
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2 and "no accounts" in p.stderr and "--hash-password" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_demo_serves_the_page_with_a_demo_account_it_prints(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # --no-prefect: this test is about the page and its demo account (tests/test_web_prefect.py starts the server)
    p = subprocess.Popen([sys.executable, "-m", "flows", "web", "--demo", "--no-prefect", "--port", str(port)],
                         cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in p.stdout:
            lines.append(line)
            if line.startswith("Open http"):
                break
        m = re.search(r"sign in as demo / (\S+) ", lines[-1])
        assert m, lines
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(100):
                try:
                    page = c.get("/login")
                    break
                except httpx.ConnectError:
                    import time
                    time.sleep(0.1)
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            r = c.post("/login", data={"csrf": csrf, "username": "demo", "password": m.group(1)})
            assert r.status_code == 303 and r.headers["location"] == "/"
            home = c.get("/").text
            assert "jicoo" in home and "servicemobility_workorders" in home
        assert any("jicoo simulator at http://127.0.0.1:" in x for x in lines)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
