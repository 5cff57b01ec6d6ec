"""Helpers for the web page's tests: an app on a throwaway ledger and upload folder, accounts, the sample."""
from __future__ import annotations

import csv
import re
from pathlib import Path

from flows.web.app import WebConfig, create_app
from flows.web.auth import Accounts, hash_password

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "sample_data" / "jicoo" / "bookings.csv"
PASSWORDS = {"ann": "ann-secret-1", "bob": "bob-secret-2"}
_HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
#: the two headers the sheet staff get names differently from the mapping
RENAMED = {"Email": "E-mail", "Guest Name": "Guest"}


def fast_mappings(tmp: Path) -> Path:
    """A mappings folder holding the Jicoo and Bridge mappings without their rate limits (the simulators have none),
    so the tests spend their time on the page, not on waiting for the rate limiter."""
    import yaml

    folder = tmp / "mappings"
    folder.mkdir(exist_ok=True)
    for name in ("jicoo.yaml", "systemsx_bridge.yaml"):
        data = yaml.safe_load((ROOT / "mappings" / name).read_text())
        data["connection"]["rate"] = None
        (folder / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return folder


def make_config(tmp: Path, **changes) -> WebConfig:
    values = dict(mappings_dir=fast_mappings(tmp), ledger_url=f"sqlite:///{tmp / 'ledger.sqlite'}",
                  uploads_dir=tmp / "uploads", accounts=Accounts(None, None, _HASHES))
    values.update(changes)
    return WebConfig(**values)


def make_app(tmp: Path, **changes):
    return create_app(make_config(tmp, **changes))


def renamed_sample(tmp: Path, name: str = "bookings from the office.csv") -> Path:
    """The Jicoo sample with two headers renamed ("E-mail", "Guest")."""
    with SAMPLE_CSV.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    rows[0] = [RENAMED.get(c, c) for c in rows[0]]
    path = tmp / name
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def sign_in(client, name: str = "ann"):
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": name, "password": PASSWORDS[name]},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    home = client.get("/")
    return csrf_of(home.text)


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """Debian's chromium (never a browser Playwright downloads); None when it is not installed."""
    import shutil

    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class LiveServer:
    """The app served by uvicorn on a free loopback port, in a thread, for the length of a ``with``."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the web server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
