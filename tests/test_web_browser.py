"""The web page in a real Chromium (Debian's package, driven by Playwright from PyPI; no browser download):
the whole path a person takes, and the same sheet uploaded again booking nothing twice. Skipped, with the
reason, when chromium or playwright is missing (.ci/run installs chromium with apt)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from .web_support import CHROMIUM_ARGS, PASSWORDS, LiveServer, chromium_path, make_app, renamed_sample

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install -e .[dev])")
CHROMIUM = chromium_path()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium: apt-get install chromium (Debian's package)")


@pytest.fixture
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def live(tmp_path, jicoo_env):
    with LiveServer(make_app(tmp_path)) as server:
        yield server


def sign_in(page, url: str, name: str) -> None:
    page.goto(f"{url}/")
    assert page.url.endswith("/login")  # nothing without signing in
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def upload_and_match(page, sheet: Path) -> None:
    page.check("input[name=mapping][value=jicoo]")
    page.set_input_files("input[type=file]", str(sheet))
    page.click("text=Upload and check")
    page.wait_for_url(re.compile(r"/match$"))
    # the renamed headers are guessed: the person only confirms
    assert page.input_value("select[data-needed='Email']") == "E-mail"
    assert page.input_value("select[data-needed='Guest Name']") == "Guest"
    page.click("text=Confirm and check rows")
    page.wait_for_url(re.compile(r"/review"))


def fix(page, line: int, column: str, value: str) -> None:
    row = page.locator(f"tr[data-line='{line}']")
    assert "invalid" in (row.get_attribute("class") or "")
    page.fill(f"input[aria-label='{column} of row {line}']", value)
    row.locator("button", has_text="Check").click()
    page.wait_for_function(f"!document.querySelector(\"tr[data-line='{line}']\").classList.contains('invalid')")


def book(page) -> None:
    page.click("#book")
    page.wait_for_url(re.compile(r"/results"), timeout=60_000)


def statuses_in(workbook: Path) -> dict[str, str]:
    ws = load_workbook(workbook).worksheets[0]
    header = [c.value for c in ws[1]]
    return {r[header.index("Booking Ref")]: r[header.index("_status")]
            for r in ws.iter_rows(min_row=2, values_only=True)}


def test_whole_path_sign_in_upload_match_fix_book_download(browser, live, jicoo_sim, tmp_path):
    page = browser.new_context(accept_downloads=True).new_page()
    sign_in(page, live.url, "ann")
    upload_and_match(page, renamed_sample(tmp_path))
    assert page.inner_text("#n-fix") == "5" and page.inner_text("#n-ready") == "55"
    fix(page, 8, "Email", "gareth.fixed@example.org")  # JB-1007: not-an-email
    fix(page, 14, "Guest Name", "Morgan Fixed")  # JB-1013: empty guest name
    assert page.inner_text("#n-fix") == "3" and page.inner_text("#n-ready") == "57"
    book(page)
    with page.expect_download() as dl:
        page.click("#download")
    path = tmp_path / "results.xlsx"
    dl.value.save_as(path)
    got = statuses_in(path)
    assert len(got) == 60
    assert got["JB-1007"] == got["JB-1013"] == "created"
    assert [got[k] for k in ("JB-1019", "JB-1026", "JB-1033")] == ["invalid"] * 3
    assert sorted([got["JB-1022"], got["JB-1045"]]) == ["created", "rejected"]  # one slot, two rows: 409
    assert list(got.values()).count("created") == 56
    # the simulator holds exactly those bookings, the fixed values included
    emails = sorted(b["email"] if isinstance(b, dict) else b.email for b in _bookings(jicoo_sim))
    assert len(emails) == 56 and "gareth.fixed@example.org" in emails
    assert any((b["name"] if isinstance(b, dict) else b.name) == "Morgan Fixed" for b in _bookings(jicoo_sim))


def test_same_sheet_uploaded_again_books_nothing_twice(browser, live, jicoo_sim, tmp_path):
    first = browser.new_context().new_page()
    sign_in(first, live.url, "ann")
    upload_and_match(first, renamed_sample(tmp_path))
    book(first)
    booked = len(_bookings(jicoo_sim))
    assert booked == 54
    second = browser.new_context().new_page()  # another person, the same sheet
    sign_in(second, live.url, "bob")
    upload_and_match(second, renamed_sample(tmp_path))
    book(second)
    assert len(_bookings(jicoo_sim)) == booked
    skipped = second.inner_text("[data-status=skipped]")
    assert skipped == "54"
    second.click("a[href='?status=skipped']")
    assert "already created by run" in second.inner_text("table.grid")


def _bookings(sim) -> list:
    b = sim.bookings
    return list(b.values()) if isinstance(b, dict) else list(b)
