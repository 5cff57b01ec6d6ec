"""Masked values are never sent: a Systems X Bridge row rerun from its results workbook, where the portal
password shows as the mask, gets the password from the original sheet when the row is unchanged and that
sheet is at hand, else it is invalid and asks for the value again; and the engine refuses to send a mask
in a sensitive field whatever built the row. Against the Bridge simulator on loopback."""
from __future__ import annotations

import asyncio
from pathlib import Path

import openpyxl
import pytest

from flows.engine.plan import prepare
from flows.engine.rerun import load_rerun
from flows.engine.run import ImportRun, RunOptions, send_pending
from flows.outcomes import Status
from flows.redact import MASK
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .bridge_support import bridge, bridge_env, row, write_sheet  # noqa: F401 (fixtures)
from .conftest import import_now, mapping_variant


def run_import(plan, out: Path, ledger_url: str, **options) -> ImportRun:
    return import_now(plan, ledger_url=ledger_url, out=out, rate=None, **options)


def rerun(results: Path, out: Path) -> ImportRun:
    again = load_rerun(results, out=out)
    return run_import(again.plan, again.out, again.ledger_url, settled=again.settled, describe=again.describe)


def set_cell(path: Path, ref: str, column: str, value) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb["Results"]
    header = [c.value for c in ws[1]]
    for r in range(2, ws.max_row + 1):
        if ws.cell(r, header.index("Booking Reference") + 1).value == ref:
            ws.cell(r, header.index(column) + 1).value = value
    wb.save(path)


def passwords(sim) -> dict[str, str]:
    return {j.bookingReference: j.bookingFields.get("password") for j in sim.jobs}


@pytest.fixture
def setup(bridge, bridge_env, tmp_path, monkeypatch, ledger_url):
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "http://127.0.0.1:9/callbacks")  # held: rows stay accepted
    mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml", retry__attempts=2, retry__backoff_seconds=0.01)
    sheet = write_sheet(tmp_path / "cruises.csv", [row("PO-10000001"), row("PO-10000002"), row("PO-10000003"),
                                                   row("PO-10000004")])
    bridge.faults = Faults(unavailable_rate=1.0)  # every write 503: all four rows fail, nothing stored
    first = run_import(prepare(sheet, mapping), tmp_path / "r1.xlsx", ledger_url)
    assert {o.status for o in first.outcomes} == {Status.FAILED} and not bridge.jobs
    bridge.faults = Faults()
    df, _ = read_results(tmp_path / "r1.xlsx")
    assert set(df["Portal Password"]) == {MASK}  # what the analyst sees, and what would have been sent
    return bridge, sheet, tmp_path / "r1.xlsx"


def test_a_masked_password_is_taken_from_the_original_sheet_or_asked_for_again(setup, tmp_path):
    sim, _sheet, results = setup
    set_cell(results, "PO-10000002", "Agent", "Someone Else")  # fixed by hand: the row is not the original's any more
    set_cell(results, "PO-10000003", "Portal Password", "Typed-Again-7!")  # the analyst typed the value again
    set_cell(results, "PO-10000004", "Portal Password", f"x{MASK}")  # the mask, edited around
    second = rerun(results, tmp_path / "r2.xlsx")

    by_ref = {r.key[1]: second.outcomes[r.index] for r in second.plan.rows}
    assert by_ref["PO-10000001"].status is Status.ACCEPTED  # unchanged: the original sheet's password went
    assert by_ref["PO-10000003"].status is Status.ACCEPTED
    for ref in ("PO-10000002", "PO-10000004"):
        assert by_ref[ref].status is Status.INVALID
        assert "type the value again" in by_ref[ref].message and "Portal Password" in by_ref[ref].message
    assert "was edited (Agent)" in by_ref["PO-10000002"].message
    assert passwords(sim) == {"PO-10000001": "Pw-PO-10000001-x9!", "PO-10000003": "Typed-Again-7!"}
    assert not any(MASK in (p or "") for p in passwords(sim).values())

    df, summary = read_results(tmp_path / "r2.xlsx")
    assert set(df["Portal Password"]) == {MASK}  # still masked in the new workbook
    assert any("taken from the original sheet" in str(v) for v in summary.values())

    # a rerun of the rerun follows the Summaries back to the original sheet: the edited row, its password typed
    set_cell(tmp_path / "r2.xlsx", "PO-10000002", "Portal Password", "New-Secret-5?")
    third = rerun(tmp_path / "r2.xlsx", tmp_path / "r3.xlsx")
    assert {r.key[1]: third.outcomes[r.index].status for r in third.plan.rows}["PO-10000002"] is Status.ACCEPTED
    assert passwords(sim)["PO-10000002"] == "New-Secret-5?"


def test_without_the_original_sheet_a_masked_password_is_asked_for_again(setup, tmp_path):
    sim, sheet, results = setup
    sheet.rename(tmp_path / "moved.csv")
    before = sum(sim.requests.values())  # the first run's 503s
    second = rerun(results, tmp_path / "r2.xlsx")
    assert {o.status for o in second.outcomes} == {Status.INVALID}
    assert all("is not there any more" in o.message for o in second.outcomes)
    assert not sim.jobs and sum(sim.requests.values()) == before


def test_the_engine_never_sends_a_mask_in_a_sensitive_field(bridge, bridge_env, tmp_path, monkeypatch, ledger_url):
    """The last line of defence: a sheet holding the mask itself (pasted from a workbook) is refused row by row."""
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "http://127.0.0.1:9/callbacks")
    sheet = write_sheet(tmp_path / "pasted.csv", [row("PO-20000001", **{"Portal Password": MASK}),
                                                  row("PO-20000002")])
    run = run_import(prepare(sheet, mapping_variant(tmp_path, "systemsx_bridge.yaml")), tmp_path / "r.xlsx", ledger_url)
    assert [o.status for o in run.outcomes] == [Status.INVALID, Status.ACCEPTED]
    assert "never sent" in run.outcomes[0].message
    assert list(passwords(bridge)) == ["PO-20000002"]

    # and when a row's payload gets the mask after the run was set up, _send_row still refuses it
    plan = prepare(write_sheet(tmp_path / "late.csv", [row("PO-20000003")]),
                   mapping_variant(tmp_path, "systemsx_bridge.yaml"))
    late = ImportRun(plan, RunOptions(ledger_url=ledger_url, out=tmp_path / "late.xlsx", rate=None))
    try:
        plan.rows[0].payload["bookingFields"]["password"] = MASK
        asyncio.run(send_pending(late))
    finally:
        late.close()
    assert late.outcomes[0].status is Status.INVALID
    assert list(passwords(bridge)) == ["PO-20000002"]
