"""The Prefect shell: the ``import_sheet`` flow and the ``run`` command against a real (temporary)
Prefect server, including a run killed with SIGKILL and one interrupted with Ctrl-C. With PREFECT_API_URL set and
no --prefect, ``run`` is recorded through the REST API (flows/prefect_record.py, its own tests in
tests/test_prefect_record.py); with --prefect it is the flow through Prefect's engine."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, ROOT, SAMPLES
from .pg_support import pg_server, pg_url  # noqa: F401 (fixtures)

pytestmark = pytest.mark.prefect

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"


@pytest.fixture(scope="module")
def prefect_api():
    """One temporary Prefect server for the module (starting one takes several seconds)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def cli(args, env_extra, **popen) -> subprocess.Popen:
    env = {**os.environ, **env_extra}
    return subprocess.Popen([sys.executable, "-m", "flows", *map(str, args)], cwd=popen.pop("cwd", ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_flow_imports_the_sample_and_leaves_a_summary_artifact(prefect_api, jicoo_sim, jicoo_env, ledger_url, tmp_path):
    from flows.import_sheet import import_sheet

    out = tmp_path / "flow.xlsx"
    result = asyncio.run(import_sheet(sheet=str(SHEET), mapping=str(MAPPING), out=str(out), ledger=ledger_url, rate=0,
                                      chunk_size=20))
    assert result["counts"]["created"] == 54
    assert Path(result["results"]) == out
    df, _ = read_results(out)
    assert (df["_status"] == "created").sum() == 54

    artifacts = asyncio.run(api_post("/artifacts/filter", {
        "artifacts": {"key": {"any_": ["jicoo-import-summary"]}}, "limit": 5, "sort": "CREATED_DESC"}))
    # issue 15: a markdown summary (was a bare count table) with what to do next and the absolute path
    assert artifacts and artifacts[0]["type"] == "markdown"
    text = artifacts[0]["data"]
    assert "| created | 54 |" in text and f"`{out.resolve()}`" in text
    assert f"booking-import rerun {out.resolve()}" in text and "Fix the marked cells" in text

    # the flow run is named after the mapping and the file, ends Completed (invalid/rejected rows are the
    # sheet's to fix), and its own lines reach the UI's Logs tab
    (flow_run,) = asyncio.run(api_post("/flow_runs/filter", {"flow_runs": {"id": {"any_": [result["flow_run_id"]]}}}))
    assert flow_run["name"] == "jicoo: bookings.xlsx" and flow_run["state"]["type"] == "COMPLETED"
    logs = run_logs(flow_run["id"], until="rows: ")
    assert any(m.startswith("read 60 rows from bookings.xlsx with jicoo.yaml: 55 valid, 5 invalid") for m in logs), logs
    assert any(m.startswith("chunk 1 of 3 sent:") for m in logs) and any("results workbook:" in m for m in logs)


async def api_post(path: str, body: dict) -> list[dict]:
    from prefect.client.orchestration import get_client

    # a raw filter request: prefect 3.8.8's client sends nulls that its server (fastapi 0.154) rejects
    async with get_client() as client:
        response = await client._client.post(path, json=body)
        response.raise_for_status()
        return response.json()


def run_logs(flow_run_id: str, until: str) -> list[str]:
    """The messages the UI's Logs tab shows for a flow run; they are sent in batches (every 2 s by default),
    so this waits (up to 20 s) until one starting with ``until`` has arrived."""
    messages: list[str] = []
    for _ in range(100):
        logs = asyncio.run(api_post("/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}))
        messages = [entry["message"] for entry in logs]
        if any(m.startswith(until) for m in messages):
            break
        time.sleep(0.2)
    return messages


def test_refused_credentials_end_the_flow_run_failed_without_a_traceback(prefect_api, jicoo_sim, jicoo_env, tmp_path,
                                                                          monkeypatch):
    from flows.errors import RowsNeedAttention
    from flows.import_sheet import import_sheet

    monkeypatch.setenv("JICOO_API_KEY", "sk_test_wrong")
    out = tmp_path / "refused.xlsx"
    state = asyncio.run(import_sheet(sheet=str(SHEET), mapping=str(MAPPING), out=str(out),
                                     ledger=str(tmp_path / "l.sqlite"), rate=0, concurrency=1, return_state=True))
    assert state.is_failed()  # not a green Completed: Prefect automations on Failed fire
    assert "credentials refused" in state.message and f"results: {out.resolve()}" in state.message
    with pytest.raises(RowsNeedAttention) as caught:  # what a caller of the flow gets: the counts travel with it
        state.result()
    assert caught.value.result["counts"]["skipped"] == 54
    (flow_run,) = asyncio.run(api_post("/flow_runs/filter",
                                       {"flow_runs": {"id": {"any_": [str(state.state_details.flow_run_id)]}}}))
    assert flow_run["state"]["type"] == "FAILED"
    logs = run_logs(flow_run["id"], until="Finished in state")
    assert any(m.startswith("the run stopped sending: credentials refused") for m in logs), logs
    assert not any("Traceback" in m for m in logs), "an expected outcome, not a crash"
    assert jicoo_sim.bookings == []


def test_run_command_prints_only_progress_and_summary(prefect_api, jicoo_sim, jicoo_env, tmp_path):
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "-o", tmp_path / "r.xlsx", "--rate", "0"],
            {"PREFECT_API_URL": prefect_api}, cwd=tmp_path)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 1, err  # 5 invalid rows and one slot conflict
    assert "created   54" in out and f"results: {tmp_path / 'r.xlsx'}" in out
    # a Prefect server is configured: the terminal says where the flow run is
    assert f"Prefect flow run: {prefect_api.removesuffix('/api')}/runs/flow-run/" in out, out
    noise = [line for line in err.splitlines() if "rows settled" not in line and line.strip()]
    assert noise == [], "Prefect printed more than the progress: " + "\n".join(noise)


def test_a_run_killed_with_sigkill_loses_nothing_and_the_rerun_duplicates_nothing(prefect_api, jicoo_sim, jicoo_env,
                                                                                  tmp_path):
    jicoo_sim.faults = Faults(latency_ms=40)
    ledger = tmp_path / "l.sqlite"
    args = ["run", SHEET, "-m", MAPPING, "--ledger", ledger, "--rate", "0", "--concurrency", "4", "-q"]
    p = cli([*args, "-o", tmp_path / "killed.xlsx"], {"PREFECT_API_URL": prefect_api}, cwd=tmp_path)
    try:
        assert wait_for(lambda: len(jicoo_sim.bookings) >= 15, timeout=120), "the run never got going"
    finally:
        p.kill()
        p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    booked_before = len(jicoo_sim.bookings)
    assert booked_before < 54, "the run should have been killed mid-way"

    jicoo_sim.faults = Faults()
    p = cli([*args, "-o", tmp_path / "rerun.xlsx"], {"PREFECT_API_URL": prefect_api}, cwd=tmp_path)
    _out, err = p.communicate(timeout=180)
    assert p.returncode == 1, err
    df, _ = read_results(tmp_path / "rerun.xlsx")
    counts = df["_status"].value_counts().to_dict()
    assert counts.get("created", 0) + counts.get("skipped", 0) == 54, counts
    assert counts.get("skipped", 0) >= booked_before - 4  # at most the in-flight rows were unsure
    # The sheet's one row whose slot another row holds is refused with a conflict. The killed run may have
    # marked it "sending" ahead without sending it (flows/engine/sendqueue.py: a window of rows is committed
    # before any of them leaves); then nothing tells the rerun its request never left, the check finds no
    # booking of it, and it stays unknown for a person to look at instead of rejected. Never booked twice.
    refused = df[df["_status"].isin(["rejected", "unknown"])]
    assert len(refused) == 1 and counts.get("failed", 0) == 0, counts
    if refused["_status"].iloc[0] == "unknown":
        assert "the check did not find it" in refused["_message"].iloc[0]
    slots = [(b["eventTypeId"], b["startedAt"]) for b in jicoo_sim.bookings]
    assert len(jicoo_sim.bookings) == 54 and len(set(slots)) == 54
    assert (set(df.loc[df["_status"].isin(["created", "skipped"]), "_provider_id"])
            == {b["uid"] for b in jicoo_sim.bookings})


def test_ctrl_c_still_writes_the_results_workbook(prefect_api, jicoo_sim, jicoo_env, tmp_path):
    jicoo_sim.faults = Faults(latency_ms=40)
    out_path = tmp_path / "interrupted.xlsx"
    p = cli(["run", SHEET, "-m", MAPPING, "--ledger", tmp_path / "l.sqlite", "--rate", "0", "--concurrency", "2",
             "-o", out_path], {"PREFECT_API_URL": prefect_api}, cwd=tmp_path)
    assert wait_for(lambda: len(jicoo_sim.bookings) >= 10, timeout=120)
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "Crash detected" not in err
    df, summary = read_results(out_path)
    counts = df["_status"].value_counts().to_dict()
    # a row booked whose answer had not been read when Ctrl-C came is unknown (the next run checks it): at most
    # the two in flight; every booking the simulator holds is a created or an unknown row, none is lost
    assert counts.get("unknown", 0) <= 2 and counts["created"] >= 10 - 2 and counts.get("skipped", 0) > 0
    assert counts["created"] + counts.get("unknown", 0) >= len(jicoo_sim.bookings)
    assert summary["interrupted"] == "yes"
    assert len(df) == 60


def test_demo_imports_a_sample_twice_and_books_nothing_twice(prefect_api, tmp_path):
    import io

    from flows.demo import run_demo
    from flows.sandbox.demo import DEMOS

    out = io.StringIO()
    jicoo = tuple(d for d in DEMOS if d.provider == "jicoo")  # demos are derived from mappings/, in file order
    assert run_demo(tmp_path / "demo", demos=jicoo, stream=out) == 0
    text = out.getvalue()
    assert "created   54" in text and "skipped   54" in text
    assert "the simulator now holds 54 bookings" in text
    assert (tmp_path / "demo" / "jicoo-results-run1.xlsx").exists()


@pytest.mark.parametrize("how", [[], ["--prefect"]], ids=["recorded", "engine"])
def test_a_ledger_password_never_reaches_prefects_database(how, prefect_api, jicoo_sim, jicoo_env, tmp_path, request,
                                                           capsys):
    """`--ledger postgresql://user:PASSWORD@...`: the flow run's parameters, which Prefect stores, carry the
    URL without the password; the run still opens the ledger with it (resolved in-process). Both ways a run
    reaches Prefect: recorded through the REST API, and through Prefect's engine (--prefect)."""
    from urllib.parse import urlsplit, urlunsplit

    from prefect.client.orchestration import get_client

    from flows.cli import main

    pg_url = request.getfixturevalue("pg_url")  # skips, saying why, without PostgreSQL
    parts = urlsplit(pg_url)
    secret = "s3cret-Ledger-pw"
    with_password = urlunsplit(
        parts._replace(netloc=f"{parts.username or 'postgres'}:{secret}@{parts.hostname}:{parts.port}"))
    code = main(["run", str(SHEET), "-m", str(MAPPING), "--ledger", with_password, "-o", str(tmp_path / "r.xlsx"),
                 "--rate", "0", "-q", *how])
    assert code == 1  # 5 invalid rows, one slot conflict: the run itself went through
    assert len(jicoo_sim.bookings) == 54
    assert secret not in capsys.readouterr().out

    async def stored_runs():
        async with get_client() as client:
            response = await client._client.post("/flow_runs/filter",
                                                 json={"limit": 200, "sort": "EXPECTED_START_TIME_DESC"})
            response.raise_for_status()
            return response.json()

    runs = asyncio.run(stored_runs())
    mine = [r for r in runs if r["parameters"].get("ledger", "") and parts.hostname in str(r["parameters"]["ledger"])]
    assert mine, "the run's flow run was not found"
    assert all(secret not in json.dumps(r) for r in runs)
    _, summary = read_results(tmp_path / "r.xlsx")
    assert secret not in json.dumps(summary) and str(parts.port) in summary["ledger"]


# --- signals, with real processes and Prefect's temporary server (no PREFECT_API_URL, --prefect) -----------


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def handles_signals(pid: int) -> bool:
    """Whether ``run`` (pid) has taken charge of SIGINT and SIGTERM (flows.cli.signals.GracefulStop blocks SIGTERM
    in its main thread and takes it in a thread of its own); False once it has ended."""
    try:
        status = (Path("/proc") / str(pid) / "task" / str(pid) / "status").read_text()
    except OSError:
        return False
    blocked = next((line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), "0")
    return bool(int(blocked, 16) & (1 << (signal.SIGTERM - 1)))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by init) is not running
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def start_in_own_group(jicoo_sim, tmp_path, out: Path) -> tuple[subprocess.Popen, int]:
    """``booking-import run --prefect`` in a session of its own (as a terminal runs a foreground job), against the
    temporary Prefect server it starts itself; returns it once rows are being booked, with the server's pid."""
    if not sys.platform.startswith("linux"):
        pytest.skip("process groups and /proc: Linux")
    jicoo_sim.faults = Faults(latency_ms=40)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    p = subprocess.Popen([sys.executable, "-m", "flows", "run", str(SHEET), "-m", str(MAPPING), "--ledger",
                          str(tmp_path / "l.sqlite"), "--rate", "0", "--concurrency", "2", "-o", str(out), "--prefect"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    if not wait_for(lambda: len(jicoo_sim.bookings) >= 10, timeout=150):
        p.kill()
        pytest.fail("the run never got going: " + p.communicate(timeout=30)[1][-2000:])
    servers = [pid for pid, cmd in children(p.pid) if "uvicorn" in cmd and "prefect.server" in cmd]
    assert len(servers) == 1, children(p.pid)
    return p, servers[0]


@pytest.mark.parametrize("signals, code", [
    ([signal.SIGINT], 130),
    ([signal.SIGTERM], 143),
    ([signal.SIGINT, signal.SIGINT, signal.SIGTERM], 130),  # pressed again, then a service manager: first one wins
], ids=["sigint", "sigterm", "sigint-again-and-sigterm"])
def test_a_signal_to_the_whole_process_group_stops_the_run_cleanly(signals, code, jicoo_sim, jicoo_env, tmp_path):
    """Ctrl-C in a terminal signals every process of the foreground group, the temporary server too: the run
    still writes its workbook, prints no traceback, exits 128 + the signal, and leaves no server behind."""
    out = tmp_path / "stopped.xlsx"
    p, server = start_in_own_group(jicoo_sim, tmp_path, out)
    for sig in signals:
        os.killpg(p.pid, sig)
        time.sleep(0.1)
    _stdout, err = p.communicate(timeout=90)  # a backstop, not a timing assertion
    assert p.returncode == code, err
    assert "Traceback" not in err and "Crash detected" not in err, err
    df, summary = read_results(out)
    assert summary["interrupted"] == "yes" and len(df) == 60
    counts = df["_status"].value_counts().to_dict()
    assert counts["created"] + counts.get("unknown", 0) >= len(jicoo_sim.bookings) >= 10  # none booked unrecorded
    assert wait_for(lambda: not alive(server), timeout=30), "Prefect's temporary server outlived the run"


def test_sigkill_of_the_run_takes_its_temporary_server_with_it(jicoo_sim, jicoo_env, tmp_path):
    p, server = start_in_own_group(jicoo_sim, tmp_path, tmp_path / "killed.xlsx")
    p.kill()
    p.wait(timeout=30)
    try:
        assert wait_for(lambda: not alive(server), timeout=30), "Prefect's temporary server outlived a SIGKILLed run"
    finally:
        if alive(server):
            os.kill(server, signal.SIGKILL)  # never leave it running on the machine
    p.communicate(timeout=30)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_a_signal_while_the_run_starts_ends_it_cleanly_too(sig, code, jicoo_sim, jicoo_env, tmp_path):
    """Signals that land while the command loads its libraries or starts Prefect: raised there as
    KeyboardInterrupt they came out of pydantic as a PydanticSerializationError traceback (exit 1), or as
    death by SIGINT (-2). Several moments are tried; each must end with the signal's code and no traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    for delay in (0.0, 0.3, 0.9, 1.6):
        p = subprocess.Popen([sys.executable, "-m", "flows", "run", str(SHEET), "-m", str(MAPPING), "--ledger",
                              str(tmp_path / "l.sqlite"), "--rate", "0", "-o", str(tmp_path / f"r{delay}.xlsx"), "-q",
                              "--prefect"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        # the moments count from when the command has taken charge of the signals: before that, Python's own
        # start-up is still running (0.6-0.75 s at load 8 on 2 cores), and a signal there is the default action
        assert wait_for(lambda pid=p.pid: handles_signals(pid), timeout=60), p.communicate(timeout=30)[1][-2000:]
        time.sleep(delay)
        os.killpg(p.pid, sig)
        _, err = p.communicate(timeout=90)
        assert p.returncode == code, (delay, err)
        assert "Traceback" not in err and "Error" not in err, (delay, err)
