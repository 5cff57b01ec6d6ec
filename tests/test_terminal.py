"""Issue 15, the terminal and --notify: the summary says who acts (a credential stop, "fix in the sheet",
"check with the provider first") and the next command; help texts fit the terminal and come from the
mappings; --notify delivers through Apprise (json://, form://) to a real loopback HTTP server."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from flows.engine.run import ImportRun
from flows.sandbox import Faults
from flows.terminal import summary_lines

from .conftest import MAPPINGS, ROOT, SAMPLES, import_now, mapping_variant

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"


def run_import(out: Path, mapping: Path = MAPPINGS / "jicoo.yaml", **options) -> ImportRun:
    return import_now(SHEET, mapping, out=out, **options)


def test_refused_credentials_say_so_from_which_row_and_what_to_run(jicoo_sim, jicoo_env, ledger_url, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_wrong")
    run = run_import(tmp_path / "r.xlsx", ledger_url=ledger_url, concurrency=1)
    text = "\n".join(summary_lines(run))
    assert "STOPPED: the provider refused the credentials" in text and "JICOO_API_KEY" in text
    first_line = min(r.line for r in run.plan.rows)
    # concurrency 1: the first row was refused, nothing at all reached the provider
    assert f"nothing was sent from sheet row {first_line} on" in text
    assert "need attention" not in text  # the old, vague line
    assert f"next: booking-import rerun {tmp_path / 'r.xlsx'}" in text
    assert "fix in the sheet: 5 rows (5 invalid)" in text  # the sample's deliberate mistakes, found before sending
    assert jicoo_sim.bookings == []


def test_fix_in_the_sheet_is_apart_from_check_with_the_provider(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    jicoo_sim.faults = Faults(timeout_after_store_rate=0.2, seed=3)
    mapping = mapping_variant(tmp_path, connection__timeout_seconds=0.5)
    run = run_import(tmp_path / "r.xlsx", mapping=mapping, ledger_url=ledger_url, rate=None)
    lines = summary_lines(run)
    counts = run.counts()
    assert counts["unknown"] > 0, "the fault should leave rows unknown"
    fix = next(line for line in lines if line.startswith("fix in the sheet:"))
    check = next(line for line in lines if line.startswith("check with the provider first:"))
    assert f"{counts['invalid'] + counts['rejected']} rows" in fix and "unknown" not in fix
    assert f"{counts['unknown']} row" in check and "never book them by hand" in check
    assert not any(line.startswith("STOPPED") for line in lines)
    assert lines[-1] == f"next: booking-import rerun {tmp_path / 'r.xlsx'}"


def help_of(*args: str, columns: int = 80) -> str:
    env = {"COLUMNS": str(columns), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "flows", *args, "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("command", ["run", "rerun", "serve"])
def test_help_is_wrapped_to_the_terminal_and_names_every_providers_variables(command):
    text = help_of(command, columns=80)
    assert max(map(len, text.splitlines())) <= 80
    flat = " ".join(text.split())
    if command != "serve":
        for name in ("BIGCHANGE_CLIENT_ID", "BIGCHANGE_CLIENT_SECRET", "BIGCHANGE_CUSTOMER_ID", "JICOO_API_KEY",
                     "SYSTEMSX_API_KEY", "SERVICEMOBILITY_USERNAME", "SERVICEMOBILITY_PASSWORD",
                     "SERVICEMOBILITY_BASE_URL"):
            assert name in flat, name
    assert max(map(len, help_of(command, columns=120).splitlines())) <= 120


def test_sandbox_help_lists_the_providers_with_their_mappings():
    text = help_of("sandbox")
    for provider, mapping in (("jicoo", "jicoo.yaml"), ("bigchange", "bigchange.yaml"),
                              ("systemsx_bridge", "systemsx_bridge.yaml"), ("servicemobility", "servicemobility_")):
        line = next((ln for ln in text.splitlines() if ln.strip().startswith(provider + " ")), "")
        assert mapping in line or mapping in text.split(line, 1)[-1][:120], (provider, text)


def test_a_new_mapping_shows_up_in_the_help_without_a_code_change(tmp_path):
    from flows.cli import environment_help

    folder = tmp_path / "mappings"
    folder.mkdir()
    shutil.copy(MAPPINGS / "bigchange.yaml", folder / "bigchange_eu.yaml")
    text = environment_help(folder)
    assert "bigchange (bigchange_eu.yaml): BIGCHANGE_CLIENT_ID, BIGCHANGE_CLIENT_SECRET, BIGCHANGE_CUSTOMER_ID" in text
    assert "optional BIGCHANGE_BASE_URL, BIGCHANGE_TOKEN_URL" in text


class _Catcher(BaseHTTPRequestHandler):
    answer = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(self.server.answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def catcher():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catcher)
    server.received, server.answer = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def report_with_a_problem():
    from flows.inbox import FileReport, InboxReport

    report = InboxReport(inbox="/srv/inbox", run_id="r1", started="2026-12-01T02:00:00")
    report.files.append(FileReport(file="jicoo/week.csv", state="imported", provider="jicoo",
                                   counts={"created": 5, "unknown": 1},
                                   results="archive/2026-12-01/jicoo/week.results.xlsx"))
    return report


def test_notify_through_apprise_json_reaches_a_loopback_server(catcher):
    from flows.inbox import send_notification

    report = report_with_a_problem()
    url = f"json://127.0.0.1:{catcher.server_port}/hook"
    assert send_notification(url, report.to_dict(), message=report.message()) is None
    path, kind, body = catcher.received[-1]
    assert path == "/hook" and "json" in kind
    sent = json.loads(body)
    assert "needs attention" in sent["title"]
    assert "jicoo/week.csv: imported (5 created, 1 unknown)" in sent["message"]
    assert "booking-import rerun" in sent["message"]


def test_notify_through_apprise_form_and_a_refusal_is_one_line(catcher):
    from flows.inbox import send_notification

    report = report_with_a_problem()
    url = f"form://127.0.0.1:{catcher.server_port}/form"
    assert send_notification(url, report.to_dict(), message=report.message()) is None
    fields = parse_qs(catcher.received[-1][2].decode())
    assert "needs attention" in fields["title"][0] and "5 created, 1 unknown" in fields["message"][0]

    catcher.answer = 500
    problem = send_notification(f"json://user:secretpass@127.0.0.1:{catcher.server_port}/x", report.to_dict())
    assert problem and "could not deliver" in problem and "secretpass" not in problem
    assert "\n" not in problem


def test_an_apprise_url_apprise_does_not_know_is_refused_by_serve(tmp_path, capsys):
    from flows.cli import main

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    code = main(["serve", "--inbox", str(inbox), "--mappings", str(MAPPINGS), "--ledger", str(tmp_path / "l.sqlite"),
                 "--notify", "nosuchservice://x"])
    err = capsys.readouterr().err
    assert code == 2 and "Apprise does not understand the nosuchservice:// URL" in err
    assert len(err.strip().splitlines()) == 1
