"""Shared pieces of the Systems X Bridge tests: the simulator on loopback, its environment, a
callback receiver, small sheets, and one-call imports through the engine."""
from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.engine.run import ImportRun

from .conftest import MAPPINGS, SAMPLES, import_now, served, use_sandbox

SHEET = SAMPLES / "systemsx_bridge" / "bookings.csv"
MAPPING = MAPPINGS / "systemsx_bridge.yaml"
COLUMNS = ["Type", "Booking Reference", "Organisation", "Agent", "Portal Username", "Portal Email", "Portal Password"]
#: the sample's rows the importer finds invalid before sending
INVALID_REFS = {"TUI-70310", "PO-48191120", "MSC-51200871", "CUN-20001"}


@pytest.fixture
def bridge() -> Iterator[Any]:
    """A Bridge simulator on 127.0.0.1 whose callbacks wait for ``release_callbacks()``; ``.url`` is its base."""
    from flows.sandbox import BridgeSimulator

    with served(BridgeSimulator(callback_delay=None, seed=4)) as sim:
        yield sim


@pytest.fixture
def bridge_env(bridge, monkeypatch) -> dict[str, str]:
    env = use_sandbox("systemsx_bridge", bridge.url, monkeypatch)
    monkeypatch.delenv("SYSTEMSX_BRIDGE_CALLBACK_URL", raising=False)
    return env


@pytest.fixture
def receiver(ledger_url) -> Iterator[str]:
    """A callback receiver on 127.0.0.1 writing into the test's ledger; yields its base URL."""
    from flows.http.callbacks import receiving

    with receiving(ledger_url) as url:
        yield url


def write_sheet(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c, "") for c in COLUMNS})
    return path


def row(ref: str, kind: str = "po", **cells: str) -> dict[str, str]:
    base = {"Type": kind, "Booking Reference": ref, "Organisation": "Harbour Lights Travel Ltd", "Agent": "Megan Hale",
            "Portal Username": f"user{ref[-3:]}", "Portal Password": f"Pw-{ref}-x9!"}
    base.update(cells)
    return base


def run_import(sheet: Path = SHEET, mapping: Path = MAPPING, *, wait: float = 0.0, **options: Any) -> ImportRun:
    """prepare -> send -> (wait for callbacks) -> write results, as the flow does, without Prefect."""
    options.setdefault("rate", None)
    return import_now(sheet, mapping, wait=wait, **options)


def by_ref(run: ImportRun) -> dict[str, Any]:
    return {r.key[1]: run.outcomes[r.index] for r in run.plan.rows}


def sample_passwords() -> list[str]:
    with SHEET.open(encoding="utf-8") as f:
        return [r["Portal Password"] for r in csv.DictReader(f) if r["Portal Password"]]


def file_texts(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` as bytes; an xlsx as the concatenation of its unzipped parts."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        data = p.read_bytes()
        if p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                data = b"".join(z.read(n) for n in z.namelist())
        out[str(p.relative_to(folder))] = data
    return out
