"""`run` and `rerun` without a Prefect server: the import itself, without Prefect (issue 16 target 1), ended
without the interpreter's walk of the heap (target 2). The Prefect side (a configured server, --prefect)
is tests/test_prefect_flow.py's."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli.entry import NOT_RECORDED, main
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, ROOT, SAMPLES

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"


def no_prefect_env(tmp_path: Path) -> dict[str, str]:
    """The environment with no Prefect server configured: no PREFECT_API_URL, an empty Prefect home."""
    unset = ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    (tmp_path / "prefect-home").mkdir(exist_ok=True)
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def test_a_run_without_a_server_imports_no_prefect_and_exits_with_everything_intact(jicoo_sim, jicoo_env, tmp_path):
    out = tmp_path / "r.xlsx"
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "flows", "run", str(SHEET), "-m", str(MAPPING),
                        "--ledger", str(tmp_path / "l.sqlite"), "-o", str(out), "-q"],
                       cwd=tmp_path, env=no_prefect_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr[-3000:]  # 5 invalid rows and one slot conflict, as with Prefect
    imported = [line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if line.startswith("import time:")]
    assert "flows.engine.run" in imported  # -X importtime did list the modules
    assert not [m for m in imported if m.split(".")[0] == "prefect"], "a run without a server loaded Prefect"
    # nor a second HTTP client: rows go over aiohttp (flows/http/client.py); httpx alone cost ~0.16 s to import
    assert not [m for m in imported if m.split(".")[0] == "httpx"], "a run loaded httpx"
    assert NOT_RECORDED in p.stderr
    # the process ended without the interpreter's finalisation: stdout, the exit code and the workbook are whole
    assert "created   54" in p.stdout and "rejected  1" in p.stdout and f"results: {out}" in p.stdout
    assert p.stdout.rstrip().splitlines()[-1].startswith("next: booking-import rerun")
    df, summary = read_results(out)
    assert len(df) == 60 and (df["_status"] == "created").sum() == 54 and summary["interrupted"] != "yes"
    assert len(jicoo_sim.bookings) == 54


def test_a_rerun_without_a_server_books_the_fixed_rows_only(jicoo_sim, jicoo_env, tmp_path):
    first, second = tmp_path / "r1.xlsx", tmp_path / "r2.xlsx"
    assert main(["run", str(SHEET), "-m", str(MAPPING), "--ledger", str(tmp_path / "l.sqlite"), "-o", str(first),
                 "-q"]) == 1
    p = subprocess.run([sys.executable, "-m", "flows", "rerun", str(first), "-o", str(second), "-q"], cwd=tmp_path,
                       env=no_prefect_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr[-3000:]  # nothing was fixed: the invalid rows are still invalid
    assert NOT_RECORDED in p.stderr and "Traceback" not in p.stderr
    df, _ = read_results(second)
    assert len(df) == 60 and (df["_status"] == "created").sum() == 54  # carried over from the ledger, not sent
    assert len(jicoo_sim.bookings) == 54


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_a_signal_stops_a_run_without_prefect_cleanly(sig, code, jicoo_sim, jicoo_env, tmp_path):
    """Ctrl-C (to the whole foreground group) or SIGTERM while rows are sent: the workbook of what was done,
    no traceback, 128 + the signal, as with Prefect."""
    if not sys.platform.startswith("linux"):
        pytest.skip("process groups: Linux")
    jicoo_sim.faults = Faults(latency_ms=40)
    out = tmp_path / "stopped.xlsx"
    p = subprocess.Popen([sys.executable, "-m", "flows", "run", str(SHEET), "-m", str(MAPPING), "--ledger",
                          str(tmp_path / "l.sqlite"), "--rate", "0", "--concurrency", "2", "-o", str(out)],
                         cwd=tmp_path, env=no_prefect_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    end = time.monotonic() + 60
    while len(jicoo_sim.bookings) < 10 and time.monotonic() < end and p.poll() is None:
        time.sleep(0.02)
    os.killpg(p.pid, sig)
    stdout, err = p.communicate(timeout=60)  # a backstop, not a timing assertion
    assert p.returncode == code, err
    assert "Traceback" not in err, err
    df, summary = read_results(out)
    assert summary["interrupted"] == "yes" and len(df) == 60
    counts = df["_status"].value_counts().to_dict()
    assert counts["created"] + counts.get("unknown", 0) >= len(jicoo_sim.bookings) >= 10  # none booked unrecorded
    assert f"results: {out}" in stdout


# --- is a Prefect server configured? Decided without importing Prefect, as Prefect decides it ---------------

_AGREE = r"""
import json, os, sys
from pathlib import Path
from flows.prefect_env import configured_api_url

cases, base = json.loads(sys.argv[1]), Path(sys.argv[2])
clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k.startswith("PREFECT_LOGGING")}

def enter(i, case):
    folder = base / str(i)
    folder.mkdir(exist_ok=True)
    for name, text in case["files"].items():
        (folder / name).write_text(text)
    os.environ.clear()
    given = {k: v.replace("{folder}", str(folder)) for k, v in case["env"].items()}
    os.environ.update(clean, PREFECT_HOME=str(folder), **given)
    os.chdir(folder)

ours = []
for i, case in enumerate(cases):
    enter(i, case)
    ours.append(configured_api_url())
assert not [m for m in sys.modules if m.split(".")[0] == "prefect"], "deciding imported Prefect"
from prefect.settings import Settings
theirs = []
for i, case in enumerate(cases):
    enter(i, case)
    theirs.append(Settings().api.url)
print(json.dumps({"ours": ours, "theirs": theirs}))
"""

LOCAL = 'active = "local"\n[profiles.local]\nPREFECT_API_URL = "http://profile:4200/api"\n[profiles.bare]\n'

CASES = {
    "nothing": ({}, {}, None),
    "environment": ({"PREFECT_API_URL": "http://env:4200/api"}, {}, "http://env:4200/api"),
    "active profile": ({}, {"profiles.toml": LOCAL}, "http://profile:4200/api"),
    "PREFECT_PROFILE": ({"PREFECT_PROFILE": "bare"}, {"profiles.toml": LOCAL}, None),
    "profile missing": ({}, {"profiles.toml": 'active = "gone"\n'}, None),
    "PREFECT_PROFILES_PATH": ({"PREFECT_PROFILES_PATH": "{folder}/elsewhere.toml"}, {"elsewhere.toml": LOCAL},
                              "http://profile:4200/api"),
    "prefect.toml": ({}, {"prefect.toml": '[api]\nurl = "http://toml:4200/api"\n', "profiles.toml": LOCAL},
                     "http://toml:4200/api"),
    "pyproject.toml": ({}, {"pyproject.toml": '[tool.prefect.api]\nurl = "http://py:4200/api"\n'}, "http://py:4200/api"),
    "environment wins": ({"PREFECT_API_URL": "http://env:4200/api"}, {"profiles.toml": LOCAL}, "http://env:4200/api"),
}


def test_whether_a_server_is_configured_is_decided_as_prefect_decides_it(tmp_path):
    cases = [{"env": env, "files": files} for env, files, _ in CASES.values()]
    p = subprocess.run([sys.executable, "-c", _AGREE, json.dumps(cases), str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert dict(zip(CASES, got["theirs"], strict=True)) == {name: want for name, (_, _, want) in CASES.items()}
    assert dict(zip(CASES, got["ours"], strict=True)) == dict(zip(CASES, got["theirs"], strict=True))
