"""Take the README's screenshots of the web page: the real page, served against the bundled simulators,
driven by Playwright in Debian's chromium (``apt-get install chromium``; no browser download).

    .venv/bin/python docs/screenshots.py        # writes docs/screenshots/*.png

Run it again whenever the page changes, so the README shows what people see.
"""
from __future__ import annotations

import csv
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    # imported here, not at the top: the project is put on sys.path first (the script runs from anywhere)
    import uvicorn
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from flows.web.app import WebConfig, create_app
    from flows.web.auth import Accounts, hash_password
    from flows.web.serve import demo_environment, prefect_server

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    tmp = Path(tempfile.mkdtemp(prefix="screenshots-"))
    sheet = tmp / "january bookings.csv"  # the Jicoo sample as the office sends it: two headers named differently
    with (ROOT / "sample_data/jicoo/bookings.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    rows[0] = [{"Email": "E-mail", "Guest Name": "Guest"}.get(c, c) for c in rows[0]]
    with sheet.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    # the page as `web --demo` serves it: the simulators, and each booking a flow run on a local Prefect server
    with demo_environment(stream=sys.stderr), prefect_server(tmp / "prefect", stream=sys.stderr):
        config = WebConfig(mappings_dir=ROOT / "mappings", ledger_url=f"sqlite:///{tmp / 'ledger.sqlite'}",
                           uploads_dir=tmp / "uploads", accounts=Accounts(None, None, {"sam": hash_password("pw")}),
                           prefect=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})

            def shot(name: str) -> None:
                page.screenshot(path=str(OUT / f"{name}.png"))
                print(f"wrote {OUT / name}.png", file=sys.stderr)

            page.goto(f"{url}/login")
            shot("1-sign-in")
            page.fill("input[name=username]", "sam")
            page.fill("input[name=password]", "pw")
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/")
            page.check("input[name=mapping][value=jicoo]")
            page.set_input_files("input[type=file]", str(sheet))
            shot("2-choose-and-upload")
            page.click("text=Upload and check")
            page.wait_for_url(re.compile(r"/match$"))
            shot("3-match-columns")
            page.click("text=Confirm and check rows")
            page.wait_for_url(re.compile(r"/review"))
            page.fill("input[aria-label='Email of row 8']", "gareth.lewis@example.org")
            page.locator("tr[data-line='8'] button", has_text="Check").click()
            page.wait_for_function("!document.querySelector(\"tr[data-line='8']\").classList.contains('invalid')")
            page.locator("tr[data-line='8'] button", has_text="Payload").click()
            page.wait_for_selector("tr[data-line='8'] pre")
            page.evaluate("document.querySelector('.scroll').scrollLeft = 0; window.scrollTo(0, 0)")
            shot("4-review-and-fix")
            page.click("#book")
            page.wait_for_url(re.compile(r"/results"), timeout=120_000)
            shot("5-results")
            page.goto(f"{url}/history")
            shot("6-history")
            browser.close()
        server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
