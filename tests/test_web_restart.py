"""Uploads survive a restart of the web process: a second app on the same data folder and ledger reads back each
upload (owner, match, fixed cells, excluded rows, results) from the ledger database and rebuilds its sheet from
the private file; passwords are never written there. And the history page filters to "mine"."""
from __future__ import annotations

import re
import sqlite3

from starlette.testclient import TestClient

from .test_web import _wait_results, matched
from .web_support import make_app, sign_in


def _counts(html: str) -> dict[str, int]:
    return {s: int(n) for s, n in re.findall(r'data-status="(\w+)">(\d+)<', html)}


def test_an_upload_with_its_fixes_survives_a_restart_and_books_from_the_second_process(jicoo_sim, jicoo_env,
                                                                                        tmp_path):
    with TestClient(make_app(tmp_path), base_url="http://127.0.0.1") as client:
        csrf = sign_in(client)
        base = matched(client, csrf, tmp_path)
        page = client.get(f"{base}/review?show=fix").text
        row = re.search(r'<tr id="row-(\d+)" class="invalid" data-line="8">(.*?)</tr>', page, re.S)
        fields = dict(re.findall(r'name="(c\d+)" aria-label="([^"]+) of row 8"', row.group(2)))
        email = next(f for f, col in fields.items() if col == "Email")
        client.post(f"{base}/row/{row.group(1)}", data={email: "fixed@example.org"}, headers={"X-CSRF-Token": csrf})
        client.post(f"{base}/row/0/exclude", headers={"X-CSRF-Token": csrf})
        before = client.get(f"{base}/review?show=all").text
    ready = re.search(r'<strong id="n-ready">(\d+)</strong>', before).group(1)
    assert ready == "55" and '<strong id="n-excluded">1</strong>' in before

    second = make_app(tmp_path)  # a new process: new session key, nothing in memory
    with TestClient(second, base_url="http://127.0.0.1") as client:
        assert client.get(f"{base}/review", follow_redirects=False).status_code == 303  # signed out by the restart
        csrf = sign_in(client, "bob")
        assert client.get(f"{base}/review").status_code == 404  # still only its owner's
        client.cookies.clear()
        csrf = sign_in(client)
        after = client.get(f"{base}/review?show=all").text
        assert f'<strong id="n-ready">{ready}</strong>' in after and '<strong id="n-excluded">1</strong>' in after
        assert "fixed@example.org" in client.get(f"{base}/row/{row.group(1)}/payload").text
        assert client.post(f"{base}/book", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        results = _wait_results(client, base)
        assert _counts(results.text) == {"created": 54, "invalid": 4, "rejected": 1, "excluded": 1}
    assert len(jicoo_sim.bookings) == 54

    third = make_app(tmp_path)  # and after the run: the results and the workbook are still there
    with TestClient(third, base_url="http://127.0.0.1") as client:
        sign_in(client)
        assert _counts(client.get(f"{base}/results").text).get("created") == 54
        assert client.get(f"{base}/download").status_code == 200
    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        records = [r[0] for r in db.execute("SELECT record FROM web_uploads")]
    assert len(records) == 1 and "fixed@example.org" in records[0]


def test_history_shows_who_and_filters_to_mine(jicoo_sim, jicoo_env, tmp_path):
    app = make_app(tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as ann, TestClient(app, base_url="http://127.0.0.1") as bob:
        for client, who in ((ann, "ann"), (bob, "bob")):
            csrf = sign_in(client, who)
            base = matched(client, csrf, tmp_path)
            client.post(f"{base}/book", data={"csrf": csrf})
            _wait_results(client, base)
        everyone = ann.get("/history").text
        mine = ann.get("/history?who=mine").text
    rows = re.findall(r'<tr class="import"><td>[^<]*</td><td>(\w+)</td>', everyone)
    assert sorted(rows) == ["ann", "bob"]
    assert re.findall(r'<tr class="import"><td>[^<]*</td><td>(\w+)</td>', mine) == ["ann"]
    assert 'href="/history?who=mine"' in everyone
