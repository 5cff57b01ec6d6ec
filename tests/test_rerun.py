"""``booking-import rerun``: a results workbook, edited by hand the way analysts do in Excel, run
again through the same engine against the simulators, and nothing booked twice."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import httpx
import openpyxl
import pytest

from flows.cli import main
from flows.engine.rerun import default_rerun_path, load_rerun
from flows.engine.run import ImportRun
from flows.ledger.ledger import open_ledger
from flows.outcomes import Status
from flows.sandbox import Faults
from flows.workbooks.results import read_results

from .conftest import MAPPINGS, SAMPLES, import_now, mapping_variant, use_sandbox

SHEET = SAMPLES / "jicoo" / "bookings.xlsx"
MAPPING = MAPPINGS / "jicoo.yaml"
VALID = 54  # 60 rows: 5 invalid, 1 slot conflict (JB-1045 loses to JB-1022)


def first_run(out: Path, ledger_url: str, sheet=SHEET, mapping=MAPPING, **options) -> ImportRun:
    return import_now(sheet, mapping, ledger_url=ledger_url, out=out, rate=None, **options)


def rerun(results: Path, out: Path | None = None, **kwargs) -> ImportRun:
    """What the rerun flow does, without Prefect: load_rerun, then the engine with the rows it settled."""
    resend_unknown = kwargs.pop("resend_unknown", False)
    again = load_rerun(results, out=out, **kwargs)
    return import_now(again.plan, ledger_url=again.ledger_url, out=again.out, rate=None, settled=again.settled,
                      describe=again.describe, resend_unknown=resend_unknown)


class Edit:
    """The Results sheet of a workbook, opened with openpyxl the way Excel would change it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wb = openpyxl.load_workbook(path)
        self.ws = self.wb["Results"]

    @property
    def header(self) -> list[str]:
        return [c.value for c in self.ws[1]]

    def row_of(self, ref: str) -> int:
        col = self.header.index("Booking Ref") + 1
        for r in range(2, self.ws.max_row + 1):
            if self.ws.cell(r, col).value == ref:
                return r
        raise KeyError(ref)

    def set(self, ref: str, column: str, value) -> None:
        self.ws.cell(self.row_of(ref), self.header.index(column) + 1).value = value

    def delete(self, ref: str) -> None:
        self.ws.delete_rows(self.row_of(ref))

    def move_column_to_end(self, column: str) -> None:
        j = self.header.index(column) + 1
        values = [self.ws.cell(r, j).value for r in range(1, self.ws.max_row + 1)]
        self.ws.delete_cols(j)
        end = self.ws.max_column + 1
        for r, v in enumerate(values, start=1):
            self.ws.cell(r, end).value = v

    def add_column(self, name: str, values: dict[str, str]) -> None:
        end = self.ws.max_column + 1
        self.ws.cell(1, end).value = name
        for ref, v in values.items():
            self.ws.cell(self.row_of(ref), end).value = v

    def save(self, path: Path) -> Path:
        self.wb.save(path)
        return path


def statuses(run: ImportRun) -> Counter:
    return Counter(o.status.value for o in run.outcomes)


def by_ref(run: ImportRun) -> dict:
    return {r.key[0]: run.outcomes[r.index] for r in run.plan.rows}


def open_slots(sim) -> list[tuple]:
    return [(b["eventTypeId"], b["startedAt"]) for b in sim.bookings if b["status"] == "open"]


def test_an_edited_workbook_reruns_to_completion_without_a_duplicate(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    first = first_run(tmp_path / "r1.xlsx", ledger_url)
    assert statuses(first) == {"created": 54, "invalid": 5, "rejected": 1}
    ids = {ref: o.provider_id for ref, o in by_ref(first).items() if o.status is Status.CREATED}

    edit = Edit(tmp_path / "r1.xlsx")
    edit.set("JB-1007", "Email", "oliver.walker@example.org")  # the invalid e-mail, fixed
    edit.set("JB-1026", "Date", "28/02/2027")  # the impossible date, fixed
    edit.delete("JB-1013")  # the analyst gave up on this one
    edit.move_column_to_end("Email")  # columns reordered: Email after _attempts
    edit.add_column("Analyst notes", {"JB-1007": "typo fixed with the client", "JB-1001": "VIP"})
    edited = edit.save(tmp_path / "r1-edited.xlsx")

    second = rerun(edited, out=tmp_path / "r2.xlsx")
    assert statuses(second) == {"created": 56, "invalid": 2, "rejected": 1}
    now = by_ref(second)
    assert now["JB-1007"].status is Status.CREATED and now["JB-1026"].status is Status.CREATED
    assert {ref: o.provider_id for ref, o in now.items() if ref in ids} == ids  # carried over, same bookings
    assert sum(o.attempts > 0 for o in second.outcomes) == 3  # the two fixed rows and the conflict, nothing else
    assert len(jicoo_sim.bookings) == VALID + 2 and len(set(open_slots(jicoo_sim))) == VALID + 2

    df, summary = read_results(tmp_path / "r2.xlsx")
    assert len(df) == 59 and "JB-1013" not in set(df["Booking Ref"])
    assert list(df["Booking Ref"]) == [row[0] for row in first.plan.sheet.rows if row[0] != "JB-1013"]  # in order
    rows = dict(zip(df["Booking Ref"], df["_row"].astype(int), strict=True))
    assert rows["JB-1007"] == 8 and rows["JB-1014"] == 15  # the original row numbers, not renumbered
    assert list(df.columns[-8:]) == ["Email", "Analyst notes", "_row", "_status", "_provider_id", "_http_status",
                                     "_message", "_attempts"]
    notes = dict(zip(df["Booking Ref"], df["Analyst notes"], strict=True))
    assert notes["JB-1007"] == "typo fixed with the client" and notes["JB-1001"] == "VIP"
    assert summary["rows removed by hand"] == "1" and summary["rows sent in this rerun"] == "3"
    assert summary["invalid -> created"] == "2 row(s): 8, 27"
    assert summary["created: before -> after"] == "54 -> 56"
    assert summary["rerun of"] == str(edited) and summary["previous run id"] == first.run_id

    # the new workbook can be rerun in turn: nothing left to book, nothing booked twice
    third = rerun(tmp_path / "r2.xlsx", out=tmp_path / "r3.xlsx")
    assert statuses(third) == {"created": 56, "invalid": 2, "rejected": 1}
    assert len(jicoo_sim.bookings) == VALID + 2


def test_unknown_rows_are_checked_with_the_provider_and_resent_only_when_absent(jicoo_sim, jicoo_env, ledger_url,
                                                                                 tmp_path):
    jicoo_sim.faults = Faults(timeout_after_store_rate=0.2, drop_after_store_rate=0.1, stall_seconds=3, seed=11)
    mapping = mapping_variant(tmp_path, connection__timeout_seconds=0.5)
    first = first_run(tmp_path / "r1.xlsx", ledger_url, mapping=mapping)
    unknown = [ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN]
    assert len(unknown) >= 3, "the faults should have left rows unknown"
    assert len(jicoo_sim.bookings) == VALID, "the simulator stored them all, including the unknown ones"

    # one of them is really not there (say the provider rolled it back): cancel it at the provider
    gone = jicoo_sim.bookings[[b["email"] for b in jicoo_sim.bookings].index(
        first.plan.rows[[r.key[0] for r in first.plan.rows].index(unknown[0])].payload["email"])]
    jicoo_sim.faults = Faults()
    httpx.post(f"{jicoo_sim.url}/v1/bookings/{gone['uid']}/cancel",
               headers={"X-Jicoo-Api-Key": jicoo_env["JICOO_API_KEY"]}, json={"reason": "test"}).raise_for_status()

    second = rerun(tmp_path / "r1.xlsx", out=tmp_path / "r2.xlsx")
    now = by_ref(second)
    assert now[unknown[0]].status is Status.CREATED and now[unknown[0]].provider_id != gone["uid"]  # absent: resent
    for ref in unknown[1:]:  # present: found, not resent
        assert now[ref].status is Status.SKIPPED and "found at the provider" in now[ref].message, now[ref]
    assert statuses(second)["unknown"] == 0
    assert len(open_slots(jicoo_sim)) == VALID and len(set(open_slots(jicoo_sim))) == VALID
    _, summary = read_results(tmp_path / "r2.xlsx")
    assert summary["unknown -> skipped"].startswith(f"{len(unknown) - 1} row(s)")


def test_skipped_rows_are_sent_unless_the_ledger_shows_them_created(jicoo_sim, jicoo_env, ledger_url, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setenv("JICOO_API_KEY", "sk_test_wrong")
    first = first_run(tmp_path / "r1.xlsx", ledger_url, concurrency=4)
    assert statuses(first)["skipped"] >= 40 and jicoo_sim.bookings == []

    monkeypatch.setenv("JICOO_API_KEY", jicoo_env["JICOO_API_KEY"])
    second = rerun(tmp_path / "r1.xlsx", out=tmp_path / "r2.xlsx")  # skipped and failed rows: never created, so sent
    assert statuses(second) == {"created": 54, "invalid": 5, "rejected": 1}

    # a workbook whose skipped rows *were* created (a repeat run of the sheet): the ledger keeps them unsent
    third_run = first_run(tmp_path / "r3.xlsx", ledger_url)
    assert statuses(third_run)["skipped"] == 54
    fourth = rerun(tmp_path / "r3.xlsx", out=tmp_path / "r4.xlsx")
    assert statuses(fourth)["skipped"] == 54 and sum(o.attempts > 0 for o in fourth.outcomes) == 1  # the conflict
    assert len(jicoo_sim.bookings) == VALID


def test_an_edited_key_of_a_booked_row_is_refused_not_booked_again(jicoo_sim, jicoo_env, ledger_url, tmp_path):
    first = first_run(tmp_path / "r1.xlsx", ledger_url)
    was = by_ref(first)
    edit = Edit(tmp_path / "r1.xlsx")
    edit.set("JB-1002", "Booking Ref", "JB-9002")  # a key nobody knows
    edit.set("JB-1004", "Booking Ref", "JB-1003")  # the key of another booked row
    edited = edit.save(tmp_path / "edited.xlsx")

    second = rerun(edited, out=tmp_path / "r2.xlsx")
    rows = {r.line: second.outcomes[r.index] for r in second.plan.rows}
    assert rows[3].status is Status.INVALID and "JB-1002" in rows[3].message and "edited" in rows[3].message
    assert rows[3].provider_id == was["JB-1002"].provider_id
    assert rows[5].status is Status.INVALID and was["JB-1003"].provider_id in rows[5].message
    assert rows[4].status is Status.CREATED  # the real JB-1003 is untouched
    assert len(jicoo_sim.bookings) == VALID
    df, _ = read_results(tmp_path / "r2.xlsx")
    assert "key was edited" in df.loc[df["_row"] == 3, "_message"].iloc[0]

    fix = Edit(tmp_path / "r2.xlsx")  # put the keys back: the rows carry over again
    fix.set("JB-9002", "Booking Ref", "JB-1002")
    fix.ws.cell(5, fix.header.index("Booking Ref") + 1).value = "JB-1004"
    third = rerun(fix.save(tmp_path / "fixed.xlsx"), out=tmp_path / "r3.xlsx")
    assert by_ref(third)["JB-1002"].status is Status.CREATED and by_ref(third)["JB-1004"].status is Status.CREATED
    assert len(jicoo_sim.bookings) == VALID


def test_a_workbook_from_another_ledger_is_refused_with_exit_2(jicoo_sim, jicoo_env, ledger_url, tmp_path, capsys):
    first_run(tmp_path / "r1.xlsx", ledger_url)
    other = tmp_path / "other.sqlite"
    open_ledger(str(other)).close()  # another team's ledger: it cannot say what r1.xlsx booked
    code = main(["rerun", str(tmp_path / "r1.xlsx"), "--ledger", str(other)])
    err = capsys.readouterr().err
    assert code == 2 and "another ledger" in err and ledger_url.removeprefix("sqlite:///") in err
    assert "Traceback" not in err

    Path(ledger_url.removeprefix("sqlite:///")).rename(tmp_path / "moved.sqlite")  # the ledger it names is gone
    code = main(["rerun", str(tmp_path / "r1.xlsx")])
    assert code == 2 and "--ledger" in capsys.readouterr().err
    assert len(jicoo_sim.bookings) == VALID  # nothing sent by the refused reruns


def test_the_mapping_is_remembered_and_a_moved_one_can_be_named(jicoo_sim, jicoo_env, ledger_url, tmp_path, capsys):
    mapping = tmp_path / "maps" / "jicoo.yaml"
    mapping.parent.mkdir()
    shutil.copy(MAPPING, mapping)
    first_run(tmp_path / "r1.xlsx", ledger_url, mapping=mapping)
    assert load_rerun(tmp_path / "r1.xlsx").plan.mapping_path == mapping.resolve()

    mapping.rename(tmp_path / "jicoo-moved.yaml")
    code = main(["rerun", str(tmp_path / "r1.xlsx")])
    err = capsys.readouterr().err
    assert code == 2 and "is not there any more" in err and "--mapping" in err
    again = load_rerun(tmp_path / "r1.xlsx", mapping=tmp_path / "jicoo-moved.yaml")
    assert again.plan.mapping.provider == "jicoo" and again.carried == VALID
    assert "given with --mapping" in again.notes[0]

    bigchange = MAPPINGS / "bigchange.yaml"
    if bigchange.is_file():
        code = main(["rerun", str(tmp_path / "r1.xlsx"), "--mapping", str(bigchange)])
        assert code == 2 and "written for jicoo" in capsys.readouterr().err


def test_not_a_results_workbook_exits_2(tmp_path, capsys):
    code = main(["rerun", str(SHEET)])
    err = capsys.readouterr().err
    assert code == 2 and "not a results workbook" in err and "booking-import run" in err


def test_default_output_sits_beside_the_workbook_without_stacking_stamps(tmp_path):
    p = default_rerun_path(tmp_path / "bookings.results-20261121-134722.rerun-20261122-090000.xlsx")
    assert p.parent == tmp_path and p.name.startswith("bookings.rerun-") and p.name.count("rerun") == 1


def test_bridge_unknown_rows_stay_unknown_until_resend_unknown(tmp_path, ledger_url, monkeypatch):
    """Systems X Bridge offers no read-back: an unknown row is never resent unless the operator says so."""
    sims = pytest.importorskip("flows.sandbox")
    if "systemsx_bridge" not in sims.SIMULATORS or not (MAPPINGS / "systemsx_bridge.yaml").is_file():
        pytest.skip("no Systems X Bridge simulator yet")
    sim = sims.SIMULATORS["systemsx_bridge"](faults=Faults(drop_after_store_rate=0.3, seed=2))
    with sims.SimulatorServer(sim) as url:
        use_sandbox("systemsx_bridge", url, monkeypatch)
        # nobody listens: rows stay accepted
        monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "http://127.0.0.1:9/callbacks")
        sheet = SAMPLES / "systemsx_bridge" / "bookings.csv"
        mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml", retry__backoff_seconds=0.01)
        first = first_run(tmp_path / "r1.xlsx", ledger_url, sheet=sheet, mapping=mapping)
        unknown = {r.key for r in first.plan.rows if first.outcomes[r.index].status is Status.UNKNOWN}
        assert unknown
        stored = len(sim.bookings)
        sim.faults = Faults()

        second = rerun(tmp_path / "r1.xlsx", out=tmp_path / "r2.xlsx")
        assert {r.key for r in second.plan.rows if second.outcomes[r.index].status is Status.UNKNOWN} == unknown
        assert len(sim.bookings) == stored
        assert all("--resend-unknown" in second.outcomes[r.index].message for r in second.plan.rows if r.key in unknown)

        third = rerun(tmp_path / "r2.xlsx", out=tmp_path / "r3.xlsx", resend_unknown=True)
        assert not any(third.outcomes[r.index].status is Status.UNKNOWN for r in third.plan.rows)
        assert len(sim.bookings) == stored + len(unknown)  # resent, as the operator asked (they had been stored)


def test_bigchange_rerun_finds_unknown_jobs_and_creates_none_twice(tmp_path, ledger_url, monkeypatch):
    """A provider with lookups (names -> ids after login) and a two-step handler, through the same rerun."""
    sims = pytest.importorskip("flows.sandbox")
    if "bigchange" not in sims.SIMULATORS or not (MAPPINGS / "bigchange.yaml").is_file():
        pytest.skip("no BigChange simulator yet")
    sim = sims.SIMULATORS["bigchange"](faults=Faults(drop_after_store_rate=0.3, seed=11))
    with sims.SimulatorServer(sim) as url:
        use_sandbox("bigchange", url, monkeypatch)
        mapping = mapping_variant(tmp_path, "bigchange.yaml", retry__backoff_seconds=0.01,
                                  retry__max_backoff_seconds=0.05, connection__timeout_seconds=0.3)
        first = first_run(tmp_path / "r1.xlsx", ledger_url, sheet=SAMPLES / "bigchange" / "jobs.xlsx", mapping=mapping)
        unknown = {ref for ref, o in by_ref(first).items() if o.status is Status.UNKNOWN}
        created = {ref for ref, o in by_ref(first).items() if o.status is Status.CREATED}
        assert unknown and created
        jobs = len(sim.jobs)
        sim.faults = Faults()

        second = rerun(tmp_path / "r1.xlsx", out=tmp_path / "r2.xlsx")
        now = by_ref(second)
        assert all(now[ref].status is Status.CREATED and "found at BigChange" in now[ref].message for ref in unknown)
        assert all(now[ref].status is Status.CREATED and now[ref].attempts == 0 for ref in created)  # carried over
        assert len(sim.jobs) == jobs
        refs = [j["reference"] for j in sim.jobs]
        assert len(refs) == len(set(refs)), "one job per reference"


def test_a_sorted_workbook_comes_back_in_order_with_copies_refused_and_new_rows_sent(jicoo_sim, jicoo_env, ledger_url,
                                                                                     tmp_path):
    first = first_run(tmp_path / "r1.xlsx", ledger_url)
    edit = Edit(tmp_path / "r1.xlsx")
    ws, status_col = edit.ws, edit.header.index("_status")
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    rows.sort(key=lambda r: (r[status_col] == "created", r[status_col]))  # red rows first, as an analyst filters
    ref_col, header = edit.header.index("Booking Ref"), edit.header  # _status and _message lead (issue 15)
    copy = next(list(r) for r in rows if r[ref_col] == "JB-1001")
    typed = dict(zip(first.plan.sheet.columns, ["JB-2001", "Workshop", "01/03/2029", "10:00", "Europe/London",
                                                "New Guest", "new.guest@example.org", None, None, "Zoom",
                                                "added by hand", "en"], strict=True))
    new = [typed.get(name) for name in header]
    for r, values in enumerate([*rows, copy, new], start=2):
        for c, v in enumerate(values, start=1):
            ws.cell(r, c).value = v
    second = rerun(edit.save(tmp_path / "sorted.xlsx"), out=tmp_path / "r2.xlsx")

    df, _ = read_results(tmp_path / "r2.xlsx")
    copied = df.iloc[1]  # beside its original
    assert (copied["Booking Ref"] == "JB-1001" and copied["_status"] == "invalid"
            and "a copy of row 2" in copied["_message"])
    rest = df.drop(index=1)
    assert list(rest["Booking Ref"][:60]) == [row[0] for row in first.plan.sheet.rows]  # the original order again
    assert list(rest["_row"][:60].astype(int)) == [r.line for r in first.plan.rows]
    assert df["Booking Ref"].iloc[-1] == "JB-2001" and df["_status"].iloc[-1] == "created"
    assert statuses(second)["created"] == VALID + 1 and len(jicoo_sim.bookings) == VALID + 1


def test_a_validated_workbook_fixed_by_hand_is_sent_by_rerun(jicoo_sim, jicoo_env, tmp_path, capsys):
    validated = tmp_path / "checked.xlsx"
    assert main(["validate", str(SHEET), "-m", str(MAPPING), "-o", str(validated)]) == 1
    edit = Edit(validated)
    edit.set("JB-1007", "Email", "oliver.walker@example.org")
    run = rerun(edit.save(tmp_path / "fixed.xlsx"), out=tmp_path / "r.xlsx", ledger_url=str(tmp_path / "new.sqlite"))
    assert statuses(run) == {"created": VALID + 1, "invalid": 4, "rejected": 1}
    assert len(jicoo_sim.bookings) == VALID + 1
