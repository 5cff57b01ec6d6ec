"""A run with a Prefect server configured, recorded through Prefect's REST API (flows/prefect_record.py): against a
real ``prefect server start`` (one for the module) and a real simulator, the CLI in a subprocess that never imports
Prefect, the records read back with Prefect's own client. Pins the assumption that the recorder speaks the REST API
of the installed Prefect (3.x)."""
from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flows.prefect_server import LocalPrefectServer, free_port, use_api
from flows.sandbox import Faults, JicooSimulator
from flows.workbooks.results import read_results

from . import bridge_support
from .bridge_support import bridge, bridge_env  # noqa: F401 (fixtures)
from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant, served
from .pg_support import pg_server, pg_url  # noqa: F401 (fixtures)

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"
#: a module Prefect imports first, by its import-time line (``-X importtime``): "| prefect" or "|   prefect.x"
PREFECT_IMPORTED = re.compile(r"\|\s+prefect(\.|$)", re.MULTILINE)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """One real ``prefect server start`` for the module (its first start creates the database: tens of seconds)."""
    with LocalPrefectServer(tmp_path_factory.mktemp("prefect-home"), start_timeout=240) as server:
        yield server


def cli(args: list[Any], api_url: str, cwd: Path, importtime: bool = True, **env_extra: str) -> subprocess.Popen[str]:
    """``python -X importtime -m flows ARGS`` with PREFECT_API_URL set; its stderr lists every module it imported
    (read it with communicate(): unread, it fills the pipe and blocks the run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(cwd / "prefect-home"), **env_extra})
    python = [sys.executable, "-X", "importtime"] if importtime else [sys.executable]
    return subprocess.Popen([*python, "-m", "flows", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def flow_run_id(stdout: str, ui_url: str) -> str:
    found = re.search(rf"^Prefect flow run: {re.escape(ui_url)}/runs/flow-run/([0-9a-f-]{{36}})$", stdout, re.M)
    assert found, stdout
    return found.group(1)


def read_back(api_url: str, run_id: str) -> dict[str, Any]:
    """The flow run, its flow, states, logs and artifacts, read with Prefect's own client."""
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            flow = await client.read_flow(run.flow_id)
            states = await client.read_flow_run_states(run_id)
            # filters: raw requests (prefect 3.8.8's client sends nulls its server with fastapi 0.154 rejects)
            logs = (await client._client.post("/logs/filter", json={
                "logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})).json()
            artifacts = (await client._client.post("/artifacts/filter", json={
                "artifacts": {"flow_run_id": {"any_": [run_id]}}})).json()
            task_runs = (await client._client.post("/task_runs/filter", json={
                "flow_runs": {"id": {"any_": [run_id]}}})).json()
        return {"run": run, "flow": flow, "states": [s.type.value for s in states],
                "logs": [entry["message"] for entry in logs], "artifacts": artifacts, "task_runs": task_runs}

    with use_api(api_url):
        return asyncio.run(read())


@pytest.mark.prefect
def test_a_run_is_a_flow_run_of_import_sheet_with_its_logs_and_artifact_and_prefect_never_loaded(
        prefect_server, jicoo_sim, jicoo_env, tmp_path):
    from flows.run_report import flow_parameters

    out = tmp_path / "r.xlsx"
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "-o", out, "--rate", "0"],
            prefect_server.api_url, tmp_path)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr  # 5 invalid rows and one slot conflict: the sheet's to fix, the run Completed
    assert not PREFECT_IMPORTED.search(stderr), "the run imported Prefect"
    assert "Not recorded in Prefect" not in stderr
    run_id = flow_run_id(stdout, prefect_server.ui_url)
    got = read_back(prefect_server.api_url, run_id)
    run = got["run"]
    assert got["flow"].name == "import_sheet" and run.name == "jicoo: bookings.xlsx"
    assert run.state.type.value == "COMPLETED" and got["states"] == ["PENDING", "RUNNING", "COMPLETED"]
    assert run.parameters == flow_parameters(sheet=str(SHEET), mapping=str(MAPPING), out=str(out), rate=0.0,
                                             ledger=str(tmp_path / "l.sqlite"))
    logs = got["logs"]
    assert "read 60 rows from bookings.xlsx with jicoo.yaml: 55 valid, 5 invalid" in logs, logs
    assert f"rows: 54 created, 5 invalid, 1 rejected; results workbook: {out.resolve()}" in logs, logs
    assert "Finished in state Completed()" in logs
    (artifact,) = got["artifacts"]
    assert artifact["key"] == "jicoo-import-summary" and artifact["type"] == "markdown"
    assert "| created | 54 |" in artifact["data"] and f"`{out.resolve()}`" in artifact["data"]
    assert got["task_runs"] == []  # one stream: no chunks, so no task runs


@pytest.mark.prefect
def test_the_artifact_is_summary_markdown_and_a_server_gone_at_the_end_is_one_warning(prefect_server, jicoo_sim,
                                                                                      jicoo_env, tmp_path):
    """In-process, with the engine's own run: the artifact's markdown is run_report.summary_markdown's. Then a
    second record whose server stops answering once the bookings are done: one warning, no exception."""
    from flows.engine.plan import prepare
    from flows.prefect_record import FlowRunRecord, PrefectServer
    from flows.run_report import flow_parameters, summary_markdown

    server = PrefectServer.configured({"PREFECT_API_URL": prefect_server.api_url}, tmp_path)
    assert server is not None
    plan = prepare(SHEET, MAPPING)
    run = import_now(plan, ledger_url=f"sqlite:///{tmp_path / 'l.sqlite'}", rate=None, out=tmp_path / "r.xlsx")
    parameters = flow_parameters(sheet=str(SHEET), mapping=str(MAPPING))
    warnings: list[str] = []

    async def record(gone: bool) -> FlowRunRecord:
        async with FlowRunRecord(server, warn=warnings.append) as rec:
            await rec.check()
            await rec.begin(parameters, plan)
            if gone:  # the same server, now at an address nobody answers
                rec.server = PrefectServer(f"http://127.0.0.1:{free_port()}/api", server.ui_url, server.headers)
            await rec.finish(run, run.results_path, str(SHEET), rerun=False)
        return rec

    rec = asyncio.run(record(gone=False))
    assert warnings == [] and rec.recorded == "COMPLETED"
    (artifact,) = read_back(prefect_server.api_url, str(rec.flow_run_id))["artifacts"]
    assert artifact["data"] == summary_markdown(run, str(SHEET), False)

    lost = asyncio.run(record(gone=True))
    assert lost.lost and lost.recorded is None and len(warnings) == 1, warnings
    assert "stopped answering" in warnings[0] and "not recorded in Prefect" in warnings[0]
    got = read_back(prefect_server.api_url, str(lost.flow_run_id))
    assert got["run"].state.type.value == "RUNNING" and got["artifacts"] == []


@pytest.mark.prefect
def test_a_recorded_run_waits_for_the_providers_callbacks_in_process(prefect_server, bridge, bridge_env, tmp_path):
    """Systems X Bridge accepts each booking and confirms it by a callback: `run --wait-callbacks` receives them in
    its own process, and the flow run recorded on the server counts them."""
    bridge.callback_delay = 0.05
    out = tmp_path / "r.xlsx"
    p = cli(["run", bridge_support.SHEET, "-m", bridge_support.MAPPING, "--ledger", tmp_path / "l.sqlite",
             "--rate", "0", "-o", out, "--wait-callbacks", "10", "-q"], prefect_server.api_url, tmp_path,
            importtime=False)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr  # four invalid rows
    df, summary = read_results(out)
    assert dict(df["_status"].value_counts()) == {"created": 32, "invalid": 4}
    assert summary["confirmed by callback"] == "32"
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    assert got["run"].parameters["wait_callbacks"] == 10
    assert got["run"].state.type.value == "COMPLETED"  # invalid rows are the sheet's to fix, not a failed run
    assert "| created | 32 |" in got["artifacts"][0]["data"], got["artifacts"][0]["data"]


@pytest.mark.prefect
def test_a_failed_row_ends_the_flow_run_failed_with_the_problems(prefect_server, jicoo_sim, jicoo_env, tmp_path):
    mapping = mapping_variant(tmp_path, request__responses={409: {"action": "fail", "message": "slot taken"}})
    out = tmp_path / "r.xlsx"
    p = cli(["run", SHEET, "-m", mapping, "--ledger", tmp_path / "l.sqlite", "-o", out, "--rate", "0", "-q"],
            prefect_server.api_url, tmp_path)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    state = got["run"].state
    assert state.type.value == "FAILED", state
    assert state.message == f"bookings.xlsx: needs attention: 1 failed; results: {out.resolve()}"
    assert got["run"].name == "variant-jicoo: bookings.xlsx"

    again = tmp_path / "again.xlsx"  # the rerun of its workbook is recorded too, as the flow names and tags it
    p = cli(["rerun", out, "-o", again, "--rate", "0", "-q"], prefect_server.api_url, tmp_path)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    assert got["run"].name == "rerun: r.xlsx" and got["run"].parameters["rerun"] is True
    assert got["run"].state.type.value == "FAILED" and got["artifacts"][0]["key"] == "jicoo-rerun-summary"
    assert "read 60 rows from r.xlsx with variant-jicoo.yaml: 55 valid, 5 invalid" in got["logs"], got["logs"]


@pytest.mark.prefect
def test_a_refusal_before_sending_is_exit_2_and_the_flow_run_failed_with_it(prefect_server, jicoo_env, tmp_path):
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "-o", tmp_path / "r.xlsx", "-q"],
            prefect_server.api_url, tmp_path, importtime=False, JICOO_BASE_URL="https://jicoo.invalid/v1")
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 2, stderr
    assert stderr.startswith("error: the base URL https://jicoo.invalid/v1 is a placeholder"), stderr
    assert "Traceback" not in stderr
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    state = got["run"].state
    assert state.type.value == "FAILED"
    assert state.message.startswith("Flow run encountered an exception: ConfigError: the base URL"), state.message
    assert any(m.startswith("nothing was sent: the base URL") for m in got["logs"]), got["logs"]
    assert got["artifacts"] == []


@pytest.mark.prefect
def test_a_ledger_password_is_in_no_record(prefect_server, jicoo_sim, jicoo_env, tmp_path, request):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(request.getfixturevalue("pg_url"))  # skips, saying why, without PostgreSQL
    secret = "s3cret-Ledger-pw"
    ledger = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{secret}@{parts.hostname}:{parts.port}"))
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", ledger, "-o", tmp_path / "r.xlsx", "--rate", "0", "-q"],
            prefect_server.api_url, tmp_path)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, stderr
    assert len(jicoo_sim.bookings) == 54
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    assert str(parts.port) in got["run"].parameters["ledger"]
    assert secret not in json.dumps(got["run"].parameters) and secret not in json.dumps(got["logs"])
    assert secret not in got["artifacts"][0]["data"] and secret not in stdout + stderr


@pytest.mark.prefect
@pytest.mark.parametrize("sig, code, why", [
    (signal.SIGINT, 130, "Execution was aborted by an interrupt signal."),
    (signal.SIGTERM, 143, "Execution was aborted by a termination signal."),
], ids=["sigint", "sigterm"])
def test_a_signal_records_the_run_crashed_writes_the_workbook_and_exits_128_plus_it(sig, code, why, prefect_server,
                                                                                    jicoo_sim, jicoo_env, tmp_path):
    jicoo_sim.faults = Faults(latency_ms=40)
    out = tmp_path / "stopped.xlsx"
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "--rate", "0", "--concurrency", "2",
             "-o", out, "-q"], prefect_server.api_url, tmp_path, importtime=False)
    deadline = time.monotonic() + 120
    while len(jicoo_sim.bookings) < 10:
        assert time.monotonic() < deadline and p.poll() is None, "the run never got going"
        time.sleep(0.05)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == code, stderr
    assert "Traceback" not in stderr
    df, summary = read_results(out)
    assert summary["interrupted"] == "yes" and len(df) == 60
    got = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    state = got["run"].state
    assert state.type.value == "CRASHED" and state.message == why
    assert f"Crash detected! {why}" in got["logs"], got["logs"]


@pytest.mark.prefect
def test_the_engine_path_records_the_same_fields_but_task_runs(prefect_server, jicoo_env, tmp_path):
    """`--prefect` on the same server (Prefect's engine): the same flow, name, parameters, states, lines and artifact;
    what differs: its chunks are task runs (and their lines), and the sending line names chunks."""
    runs, providers = {}, {}
    for how in ("recorded", "--prefect"):
        with served(JicooSimulator()) as sim:  # a fresh provider each, so both runs book the same rows
            providers[how] = sim.url
            folder = tmp_path / how
            folder.mkdir()
            args = ["run", SHEET, "-m", MAPPING, "--ledger", "l.sqlite", "-o", "r.xlsx", "--rate", "0", "-q"]
            p = cli([*args, *(["--prefect"] if how == "--prefect" else [])], prefect_server.api_url, folder,
                    JICOO_BASE_URL=f"{sim.url}/v1")
            stdout, stderr = p.communicate(timeout=180)
            assert p.returncode == 1, stderr
            assert bool(PREFECT_IMPORTED.search(stderr)) == (how == "--prefect")
            runs[how] = read_back(prefect_server.api_url, flow_run_id(stdout, prefect_server.ui_url))
    mine, engine = runs["recorded"], runs["--prefect"]
    assert mine["flow"].id == engine["flow"].id
    for field in ("name", "flow_version", "empirical_policy", "tags"):
        assert getattr(mine["run"], field) == getattr(engine["run"], field), field
    assert mine["run"].state.type == engine["run"].state.type and mine["states"] == engine["states"]

    def same(parameters: dict[str, Any]) -> dict[str, Any]:  # each run wrote to its own folder
        return {k: v for k, v in parameters.items() if k not in ("out", "ledger")}

    assert same(mine["run"].parameters) == same(engine["run"].parameters)

    def alike(text: str, how: str) -> str:  # each run wrote to its own folder, each booked on its own simulator
        return text.replace(str(tmp_path / how), "FOLDER").replace(providers[how], "PROVIDER")

    assert alike(mine["artifacts"][0]["data"], "recorded") == alike(engine["artifacts"][0]["data"], "--prefect")
    assert mine["task_runs"] == [] and len(engine["task_runs"]) == 2  # prepare-rows, send-chunk-0
    lines = {how: [alike(m, how) for m in got["logs"] if "Finished in state" not in m] for how, got in runs.items()}
    assert [m for m in lines["recorded"] if not m.startswith("sending ")] == \
        [m for m in lines["--prefect"] if not m.startswith(("sending ", "chunk "))]


def test_a_server_that_does_not_answer_is_one_line_exit_2_and_nothing_booked(jicoo_sim, jicoo_env, tmp_path):
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "-o", tmp_path / "r.xlsx", "--rate", "0"],
            f"http://127.0.0.1:{free_port()}/api", tmp_path)
    _stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: the Prefect server at http://127.0.0.1:"), errors
    assert "PREFECT_API_URL" in errors[0] and "prefect server start" in errors[0] and "--prefect" in errors[0]
    assert jicoo_sim.bookings == [] and not (tmp_path / "r.xlsx").exists()


def test_the_recorded_parameters_are_the_flows():
    from flows.import_sheet import import_sheet
    from flows.run_report import FLOW_DEFAULTS

    signature = inspect.signature(import_sheet.fn)
    assert list(FLOW_DEFAULTS) == list(signature.parameters)
    assert {k: v.default for k, v in signature.parameters.items() if v.default is not inspect.Parameter.empty} == \
        {k: v for k, v in FLOW_DEFAULTS.items() if k != "sheet"}


@pytest.mark.parametrize("settings", [
    {"PREFECT_API_URL": "http://127.0.0.1:4200/api"},
    {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "PREFECT_API_KEY": "pnu_k3y"},
    {"PREFECT_API_URL": "https://prefect.example/api", "PREFECT_API_KEY": "pnu_k3y",
     "PREFECT_API_AUTH_STRING": "ops:pw"},
    {"PREFECT_API_URL": "https://api.prefect.cloud/api/accounts/a1/workspaces/w2", "PREFECT_API_KEY": "pnu_k3y"},
    {"PREFECT_API_URL": "http://10.0.0.5:4200/api", "PREFECT_UI_URL": "https://prefect-ui.example"},
], ids=["bare", "key", "auth-string-wins", "cloud", "ui-url"])
def test_headers_and_ui_address_are_those_of_prefects_own_client(settings, tmp_path):
    """The credentials and API version header Prefect's own client sends, and the UI address Prefect derives, for
    the same settings; the key appears in no repr."""
    from prefect.client.orchestration import get_client
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_KEY,
        PREFECT_API_URL,
        PREFECT_UI_URL,
        temporary_settings,
    )

    from flows.prefect_record import PrefectServer

    names = {"PREFECT_API_URL": PREFECT_API_URL, "PREFECT_API_KEY": PREFECT_API_KEY,
             "PREFECT_API_AUTH_STRING": PREFECT_API_AUTH_STRING, "PREFECT_UI_URL": PREFECT_UI_URL}
    with temporary_settings(updates={names[k]: v for k, v in settings.items()},
                            set_defaults={PREFECT_API_KEY: None, PREFECT_API_AUTH_STRING: None, PREFECT_UI_URL: None}):
        theirs = get_client()._client.headers
        their_ui = PREFECT_UI_URL.value()
    mine = PrefectServer.configured(settings, tmp_path)
    assert mine is not None
    assert mine.headers.get("Authorization") == theirs.get("Authorization")
    assert mine.headers["X-PREFECT-API-VERSION"] == theirs["X-PREFECT-API-VERSION"]
    assert mine.ui_url == their_ui.rstrip("/")
    assert "pnu_k3y" not in repr(mine) and "ops:pw" not in repr(mine)
