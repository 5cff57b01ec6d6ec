"""The web page's handlers, through Starlette's test client, on a real ledger, real sheets and (for booking)
the Jicoo simulator on loopback."""
from __future__ import annotations

import re
import sqlite3
import time

import pytest
from openpyxl import load_workbook
from starlette.testclient import TestClient

from flows.errors import InputError
from flows.web.auth import Accounts, SessionSigner, hash_password, verify_password
from flows.web.matching import guess_columns
from flows.workbooks.sheets import read_sheet

from .web_support import PASSWORDS, csrf_of, make_app, renamed_sample, sign_in


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path)


@pytest.fixture
def client(app):
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def upload(client, csrf, path, mapping="jicoo"):
    with open(path, "rb") as f:
        return client.post("/upload", data={"csrf": csrf, "mapping": mapping},
                           files={"file": (path.name, f, "text/csv")}, follow_redirects=False)


def matched(client, csrf, tmp_path):
    r = upload(client, csrf, renamed_sample(tmp_path))
    assert r.status_code == 303, r.text
    match_url = r.headers["location"]
    page = client.get(match_url)
    selects = dict(re.findall(r'<select name="(col\d+)"[^>]*data-needed="([^"]+)"', page.text))
    chosen = {f: re.search(rf'<select name="{f}".*?<option value="([^"]*)" selected', page.text, re.S) for f in selects}
    data = {f: (m.group(1) if m else "") for f, m in chosen.items()}
    r = client.post(match_url, data={"csrf": csrf, **data}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"].rsplit("/", 1)[0]  # /u/<id>


# -- sign-in, sessions, CSRF ---------------------------------------------------------------------------

def test_every_page_needs_sign_in(client):
    for path in ("/", "/history", "/u/x/match", "/u/x/review", "/u/x/progress", "/u/x/results", "/u/x/download",
                 "/u/x/row/0/payload"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    for path in ("/upload", "/u/x/book", "/u/x/row/0", "/u/x/resend", "/logout"):
        assert client.post(path, data={"csrf": "x"}, follow_redirects=False).status_code == 401, path


def test_sign_in_wrong_password_refused_right_one_sets_a_strict_httponly_cookie(client, app):
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": "ann", "password": "wrong"})
    assert r.status_code == 401 and "Wrong name or password" in r.text
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": "ann", "password": PASSWORDS["ann"]},
                    follow_redirects=False)
    assert r.status_code == 303
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("booking_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("samesite", "SameSite")
    actions = [a[2] for a in app.state.store.actions()]
    assert "sign-in refused" in actions and "signed in" in actions


def test_sign_in_form_without_its_csrf_token_is_refused(client):
    client.get("/login")
    r = client.post("/login", data={"csrf": "forged", "username": "ann", "password": PASSWORDS["ann"]})
    assert r.status_code == 403


def test_a_tampered_session_cookie_is_no_session(client):
    sign_in(client)
    value = client.cookies.get("booking_session")
    client.cookies.set("booking_session", value[:-2] + ("00" if not value.endswith("00") else "11"))
    assert client.get("/", follow_redirects=False).status_code == 303


def test_posts_without_the_csrf_token_are_refused_and_store_nothing(client, app, tmp_path):
    csrf = sign_in(client)
    with open(renamed_sample(tmp_path), "rb") as f:
        r = client.post("/upload", data={"mapping": "jicoo"}, files={"file": ("a.csv", f, "text/csv")})
    assert r.status_code == 403
    with open(renamed_sample(tmp_path), "rb") as f:
        r = client.post("/upload", data={"mapping": "jicoo", "csrf": csrf + "x"},
                        files={"file": ("a.csv", f, "text/csv")})
    assert r.status_code == 403
    assert list(app.state.config.uploads_dir.iterdir()) == []


def test_passwords_are_stored_hashed_and_plain_ones_are_refused_in_the_accounts_file(tmp_path):
    h = hash_password("s3cret")
    assert "s3cret" not in h and verify_password("s3cret", h) and not verify_password("other", h)
    users = tmp_path / "users.txt"
    users.write_text(f"carol:{h}\n")
    assert Accounts(users).check("carol", "s3cret") and not Accounts(users).check("dave", "s3cret")
    users.write_text("carol:s3cret\n")
    with pytest.raises(Exception, match="never a plain password"):
        Accounts(users)
    signer = SessionSigner(b"k" * 32)
    s = signer.new("carol")
    assert signer.load(signer.dump(s)).user == "carol"
    assert SessionSigner(b"j" * 32).load(signer.dump(s)) is None


# -- upload: size limit, one-line reasons ---------------------------------------------------------------

def test_upload_over_the_size_limit_is_refused(tmp_path):
    app = make_app(tmp_path, max_bytes=2000)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        csrf = sign_in(client)
        r = upload(client, csrf, renamed_sample(tmp_path))
        assert r.status_code == 413 and "larger than" in r.text
        assert list(app.state.config.uploads_dir.iterdir()) == []


def test_unreadable_file_gets_the_clis_one_line_reason(client, tmp_path):
    csrf = sign_in(client)
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"this is not a workbook at all")
    with pytest.raises(InputError) as cli:
        read_sheet(bad)
    r = upload(client, csrf, bad)
    assert r.status_code == 400
    reason = str(cli.value).replace(str(bad), "broken.xlsx")
    import html as h
    assert h.escape(reason, quote=True) in r.text or h.escape(reason, quote=False) in r.text
    assert "/uploads/" not in r.text  # never the private path


def test_a_file_that_is_not_a_sheet_type_is_refused(client, tmp_path):
    csrf = sign_in(client)
    p = tmp_path / "notes.pdf"
    p.write_bytes(b"%PDF-1.4")
    r = upload(client, csrf, p)
    assert r.status_code == 400 and "not a CSV or Excel file" in r.text


def test_too_many_rows_is_refused(tmp_path):
    with TestClient(make_app(tmp_path, max_rows=10), base_url="http://127.0.0.1") as client:
        r = upload(client, sign_in(client), renamed_sample(tmp_path))
        assert r.status_code == 400 and "at most 10" in r.text


# -- column matching ------------------------------------------------------------------------------------

def test_guesses_exact_case_close_and_remembered():
    needed = ["Booking Ref", "Email", "Guest Name", "Phone"]
    got = {g.needed: (g.column, g.reason) for g in guess_columns(needed, ["booking ref", "E-mail", "Guest", "Tel"])}
    assert got["Booking Ref"] == ("booking ref", "same name")
    assert got["Email"] == ("E-mail", "same name")
    assert got["Guest Name"] == ("Guest", "close name")
    assert got["Phone"] == (None, "none")
    got = {g.needed: g for g in guess_columns(needed, ["booking ref", "E-mail", "Guest", "Tel"], {"Phone": "Tel"})}
    assert got["Phone"].column == "Tel" and got["Phone"].reason == "remembered"


def test_matching_is_remembered_per_user_and_mapping_in_the_ledger_database(client, app, tmp_path):
    csrf = sign_in(client)
    r = upload(client, csrf, renamed_sample(tmp_path))
    page = client.get(r.headers["location"]).text
    assert re.search(r'data-needed="Email">.*?<option value="E-mail" selected', page, re.S)
    assert re.search(r'data-needed="Guest Name">.*?<option value="Guest" selected', page, re.S)
    # ann matches Phone to nothing... and Notes to "Company" deliberately, to see it remembered
    needed = re.findall(r'<select name="(col\d+)"[^>]*data-needed="([^"]+)"', page)
    data = {f: {"Email": "E-mail", "Guest Name": "Guest", "Notes": "Company", "Company": "Notes"}.get(n, n)
            for f, n in needed}
    r = client.post(r.headers["location"], data={"csrf": csrf, **data}, follow_redirects=False)
    assert r.status_code == 303
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    rows = dict(db.execute("SELECT needed, sheet_column FROM web_matches WHERE username='ann' AND mapping='jicoo'"))
    assert rows["Notes"] == "Company" and rows["Email"] == "E-mail"
    # next upload: ann's own match comes first; bob gets the plain guesses
    r = upload(client, csrf, renamed_sample(tmp_path))
    page = client.get(r.headers["location"]).text
    assert re.search(r'data-needed="Notes">.*?<option value="Company" selected.*?your match last time', page, re.S)
    with TestClient(app, base_url="http://127.0.0.1") as bob:
        r = upload(bob, sign_in(bob, "bob"), renamed_sample(tmp_path))
        page = bob.get(r.headers["location"]).text
        assert re.search(r'data-needed="Notes">.*?<option value="Notes" selected', page, re.S)


def test_a_required_column_left_unmatched_is_refused_with_a_reason(client, tmp_path):
    csrf = sign_in(client)
    r = upload(client, csrf, renamed_sample(tmp_path))
    page = client.get(r.headers["location"]).text
    needed = re.findall(r'<select name="(col\d+)"[^>]*data-needed="([^"]+)"', page)
    data = {f: ("" if n == "Email" else {"Guest Name": "Guest"}.get(n, n)) for f, n in needed}
    r = client.post(r.headers["location"], data={"csrf": csrf, **data})
    assert r.status_code == 400 and "Email is needed by the mapping" in r.text


# -- review: fix in place, exclude, payload, isolation ------------------------------------------------------

def test_fix_a_cell_and_the_row_is_checked_again_at_once(client, tmp_path):
    csrf = sign_in(client)
    base = matched(client, csrf, tmp_path)
    page = client.get(f"{base}/review?show=fix").text
    assert re.search(r'<strong id="n-ready">55</strong>', page) and re.search(r'<strong id="n-fix">5</strong>', page)
    row = re.search(r'<tr id="row-(\d+)" class="invalid" data-line="8">(.*?)</tr>', page, re.S)  # JB-1007
    assert row and "bad-cell" in row.group(2) and "not-an-email" in row.group(2)
    index = row.group(1)
    fields = dict(re.findall(r'name="(c\d+)" aria-label="([^"]+) of row 8"', row.group(2)))
    email_field = next(f for f, col in fields.items() if col == "Email")
    # still wrong: still invalid, with the CLI's message
    r = client.post(f"{base}/row/{index}", data={email_field: "still wrong"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and 'class="invalid"' in r.text and "bad-cell" in r.text
    r = client.post(f"{base}/row/{index}", data={email_field: "ok.person@example.org"}, headers={"X-CSRF-Token": csrf})
    assert 'class="invalid"' not in r.text.split("</tr>")[0]
    assert '<strong id="n-ready">56</strong>' in r.text and 'hx-swap-oob="true"' in r.text
    payload = client.get(f"{base}/row/{index}/payload").text
    assert "ok.person@example.org" in payload
    # exclude a row: counted out
    r = client.post(f"{base}/row/{index}/exclude", headers={"X-CSRF-Token": csrf})
    assert '<strong id="n-excluded">1</strong>' in r.text and '<strong id="n-ready">55</strong>' in r.text


def test_a_fix_without_the_csrf_header_is_refused(client, tmp_path):
    base = matched(client, sign_in(client), tmp_path)
    assert client.post(f"{base}/row/6", data={"c0": "x"}).status_code == 403


def test_another_user_never_sees_an_upload(client, app, tmp_path):
    base = matched(client, sign_in(client), tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as bob:
        bob_csrf = sign_in(bob, "bob")
        assert bob.get(f"{base}/review").status_code == 404
        assert bob.get(f"{base}/row/0/payload").status_code == 404
        assert bob.post(f"{base}/book", data={"csrf": bob_csrf}).status_code == 404


def test_grid_pages_and_filters(tmp_path):
    with TestClient(make_app(tmp_path, page_size=20), base_url="http://127.0.0.1") as client:
        base = matched(client, sign_in(client), tmp_path)
        page = client.get(f"{base}/review?show=all&page=3").text
        assert len(re.findall(r'<tr id="row-', page)) == 20 and '<a href="?show=all&status=&page=3" class="on">' in page
        fix = client.get(f"{base}/review?show=fix").text
        assert len(re.findall(r'<tr id="row-\d+" class="invalid"', fix)) == 5


# -- booking with the simulator -------------------------------------------------------------------------------

def _wait_results(client, base, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(f"{base}/progress", follow_redirects=False)
        if r.status_code == 303 and r.headers["location"].endswith("/results"):
            return client.get(f"{base}/results")
        time.sleep(0.2)
    raise AssertionError("the booking did not finish")


def test_book_progress_results_download_and_resend_books_nothing_twice(client, app, jicoo_sim, jicoo_env, tmp_path):
    csrf = sign_in(client)
    base = matched(client, csrf, tmp_path)
    r = client.post(f"{base}/book", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/progress")
    results = _wait_results(client, base)
    counts = dict((s, int(n)) for s, n in re.findall(r'data-status="(\w+)">(\d+)<', results.text))
    assert counts == {"created": 54, "invalid": 5, "rejected": 1}
    assert len(jicoo_sim.bookings) == 54
    rejected = client.get(f"{base}/results?status=rejected").text
    assert ("JB-1045" in rejected or "JB-1022" in rejected) and "refused it" in rejected
    wb = client.get(f"{base}/download")
    assert wb.status_code == 200 and "bookings%20from%20the%20office.results.xlsx" in wb.headers["content-disposition"]
    path = tmp_path / "dl.xlsx"
    path.write_bytes(wb.content)
    ws = load_workbook(path).worksheets[0]
    header = [c.value for c in ws[1]]
    statuses = [row[header.index("_status")] for row in ws.iter_rows(min_row=2, values_only=True)]
    assert statuses.count("created") == 54 and statuses.count("invalid") == 5
    # fix one invalid row on the results page and send again: only it is booked, nothing twice
    row = re.search(r'<tr id="row-(\d+)" class="invalid" data-line="8">(.*?)</tr>',
                    client.get(f"{base}/results?status=invalid").text, re.S)
    fields = dict(re.findall(r'name="(c\d+)" aria-label="([^"]+) of row 8"', row.group(2)))
    email_field = next(f for f, col in fields.items() if col == "Email")
    client.post(f"{base}/row/{row.group(1)}", data={email_field: "fixed@example.org"}, headers={"X-CSRF-Token": csrf})
    r = client.post(f"{base}/resend", data={"csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    results = _wait_results(client, base)
    counts = dict((s, int(n)) for s, n in re.findall(r'data-status="(\w+)">(\d+)<', results.text))
    assert counts == {"created": 55, "invalid": 4, "rejected": 1}
    assert len(jicoo_sim.bookings) == 55
    history = client.get("/history").text
    assert "bookings from the office.csv" in history and "ann" in history
    actions = [a[2] for a in app.state.store.actions()]
    assert {"uploaded", "matched columns", "booked", "booked finished", "resend", "downloaded results"} <= set(actions)


def test_uploads_are_private_random_named_and_deleted_after_the_keep_time(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        csrf = sign_in(client)
        r = upload(client, csrf, renamed_sample(tmp_path))
        folder = app.state.config.uploads_dir
        stored = list(folder.iterdir())
        assert len(stored) == 1 and "office" not in stored[0].name  # never the browser's name
        assert folder.stat().st_mode & 0o077 == 0 and stored[0].stat().st_mode & 0o077 == 0
        app.state.uploads.keep_seconds = 0
        time.sleep(0.01)
        assert client.get(r.headers["location"]).status_code == 404
        assert list(folder.iterdir()) == []


def test_a_booking_refused_before_sending_goes_back_to_review_saying_why(client, jicoo_sim, monkeypatch, tmp_path):
    monkeypatch.setenv("JICOO_BASE_URL", f"{jicoo_sim.url}/v1")
    monkeypatch.delenv("JICOO_API_KEY", raising=False)
    csrf = sign_in(client)
    base = matched(client, csrf, tmp_path)
    client.post(f"{base}/book", data={"csrf": csrf}, follow_redirects=False)
    deadline = time.monotonic() + 30
    while True:
        r = client.get(f"{base}/progress", follow_redirects=False)
        if r.headers.get("location", "").endswith("/review"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    page = client.get(f"{base}/review").text
    assert "JICOO_API_KEY" in page and 'class="error"' in page
    assert jicoo_sim.bookings == []


def test_passwords_are_never_shown_and_must_be_typed_again_to_resend(monkeypatch, tmp_path):
    """Systems X Bridge sends a portal password per row (a sensitive column): the page shows only masks, and
    after a run the server drops the passwords, so a row sent again needs its password typed again."""
    from flows.sandbox import BridgeSimulator

    from .conftest import served, use_sandbox
    from .web_support import ROOT

    sheet = ROOT / "sample_data" / "systemsx_bridge" / "bookings.csv"
    secrets_in_sheet = [line.rsplit(",", 1)[-1].strip() for line in sheet.read_text().splitlines()[1:]]
    app = make_app(tmp_path, wait_callbacks=1.0)
    with served(BridgeSimulator()) as sim, TestClient(app, base_url="http://127.0.0.1") as client:
        use_sandbox("systemsx_bridge", sim.url, monkeypatch)
        monkeypatch.delenv("SYSTEMSX_BRIDGE_CALLBACK_URL", raising=False)
        csrf = sign_in(client)
        r = upload(client, csrf, sheet, mapping="systemsx_bridge")
        match_page = client.get(r.headers["location"]).text
        needed = re.findall(r'<select name="(col\d+)"[^>]*data-needed="([^"]+)"', match_page)
        r = client.post(r.headers["location"], data={"csrf": csrf, **{f: n for f, n in needed}}, follow_redirects=False)
        base = r.headers["location"].rsplit("/", 1)[0]
        pages = [client.get(f"{base}/review?show=all").text]
        pages += [client.get(f"{base}/row/{i}/payload").text for i in range(3)]
        assert not [s for s in secrets_in_sheet if s and any(s in p for p in pages)]
        client.post(f"{base}/book", data={"csrf": csrf})
        results = _wait_results(client, base)
        assert not [s for s in secrets_in_sheet if s and s in results.text]
        up = next(iter(app.state.uploads._items.values()))
        j = up.sheet.columns.index("Portal Password")
        assert all(row[j] is None for row in up.sheet.rows)  # dropped after the run
        booked = len(sim.bookings) if hasattr(sim, "bookings") else None
        row = re.search(r'<tr id="row-(\d+)" class="invalid" data-line="(\d+)">((?:(?!</tr>).)*MSC-51200871.*?)</tr>',
                        client.get(f"{base}/results?status=invalid").text, re.S)
        index, line, cells = row.groups()
        fields = {col: f for f, col in re.findall(rf'name="(c\d+)" aria-label="([^"]+) of row {line}"', cells)}
        r = client.post(f"{base}/row/{index}", data={fields["Portal Username"]: "newuser1"},
                        headers={"X-CSRF-Token": csrf})
        assert 'class="invalid"' in r.text and "Portal Password" in r.text
        r = client.post(f"{base}/row/{index}", data={fields["Portal Username"]: "newuser1",
                                                    fields["Portal Password"]: "Typed-Again#1"},
                        headers={"X-CSRF-Token": csrf})
        assert 'class="invalid"' not in r.text.split("</tr>")[0] and "Typed-Again#1" not in r.text
        client.post(f"{base}/resend", data={"csrf": csrf})
        results = _wait_results(client, base)
        statuses = dict(re.findall(r'data-status="(\w+)">(\d+)<', results.text))
        assert statuses.get("invalid") == "3"
        if booked is not None:
            assert len(sim.bookings) == booked + 1


def test_two_people_booking_the_same_sheet_at_once_book_each_row_once(app, jicoo_sim, jicoo_env, tmp_path):
    with TestClient(app, base_url="http://127.0.0.1") as ann, TestClient(app, base_url="http://127.0.0.1") as bob:
        ann_csrf, bob_csrf = sign_in(ann), sign_in(bob, "bob")
        ann_base, bob_base = matched(ann, ann_csrf, tmp_path), matched(bob, bob_csrf, tmp_path)
        assert ann_base != bob_base
        ann.post(f"{ann_base}/book", data={"csrf": ann_csrf}, follow_redirects=False)
        bob.post(f"{bob_base}/book", data={"csrf": bob_csrf}, follow_redirects=False)
        counts = []
        for client, base in ((ann, ann_base), (bob, bob_base)):
            page = _wait_results(client, base).text
            counts.append(dict((s, int(n)) for s, n in re.findall(r'data-status="(\w+)">(\d+)<', page)))
    assert len(jicoo_sim.bookings) == 54
    assert counts[0].get("created", 0) + counts[1].get("created", 0) == 54
    assert counts[0].get("skipped", 0) + counts[1].get("skipped", 0) >= 54


def test_a_signed_out_session_cookie_no_longer_works(client):
    csrf = sign_in(client)
    cookie = client.cookies.get("booking_session")
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("booking_session", cookie)  # a copy kept from before signing out
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_an_upload_over_the_limit_is_refused_before_it_is_read(tmp_path):
    with TestClient(make_app(tmp_path, max_bytes=1000), base_url="http://127.0.0.1") as client:
        csrf = sign_in(client)
        big = tmp_path / "big.csv"
        big.write_text("x" * (2 * 1024 * 1024))
        r = upload(client, csrf, big)
        assert r.status_code == 413 and "larger than" in r.text


def test_progress_comes_live_from_the_ledger_while_rows_are_sent(app, monkeypatch, tmp_path):
    from flows.sandbox import Faults, JicooSimulator

    from .conftest import served, use_sandbox

    with served(JicooSimulator(faults=Faults(latency_ms=300))) as sim, \
            TestClient(app, base_url="http://127.0.0.1") as client:
        use_sandbox("jicoo", sim.url, monkeypatch)
        csrf = sign_in(client)
        base = matched(client, csrf, tmp_path)
        client.post(f"{base}/book", data={"csrf": csrf}, follow_redirects=False)
        seen = []
        while True:
            r = client.get(f"{base}/progress", headers={"HX-Request": "true"})
            if "HX-Redirect" in r.headers:
                break
            seen.append(r.text)
        assert any(re.search(r"<strong>\d+</strong> of 55 rows settled", t) for t in seen)
        assert any(re.search(r'<li class="s-created">created: \d+</li>', t) for t in seen)  # counted in the ledger
        assert len(sim.bookings) == 54


def test_history_shows_page_imports_and_other_runs_of_the_ledger_beside_them(client, app, jicoo_sim, jicoo_env,
                                                                             tmp_path):
    """A run made outside the page (the CLI, the nightly inbox) into the same ledger is listed beside the page's."""
    from .conftest import import_now
    from .web_support import SAMPLE_CSV

    run = import_now(SAMPLE_CSV, tmp_path / "mappings" / "jicoo.yaml", ledger_url=app.state.config.ledger_url,
                     out=tmp_path / "cli.xlsx")
    csrf = sign_in(client)
    base = matched(client, csrf, tmp_path)
    client.post(f"{base}/book", data={"csrf": csrf})
    _wait_results(client, base)
    page = client.get("/history").text
    mine, others = page.split("Other runs in the ledger")
    assert "bookings from the office.csv" in mine and "skipped 54" in mine and f"{base}/results" in mine
    assert run.run_id in others and "created 54" in others and "bookings.csv" in others
    assert "bookings from the office" not in others  # the page's own runs are not listed twice
