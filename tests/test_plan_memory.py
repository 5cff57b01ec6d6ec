"""A compact plan (issue 16, a million rows under 1 GiB) behaves as the plain one did: the packed payload is
the same payload, a change to a read payload is kept, problems and duplicate keys are still reported."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flows.engine import plan as plan_module
from flows.engine.payloads import pack_payload, unpack_payload
from flows.engine.plan import NO_PROBLEMS, PreparedRow, prepare
from flows.engine.summary import validated
from flows.ledger.ledger import payload_hash
from flows.mapping.fields import RunValue
from flows.mapping.model import Problem
from flows.mapping.transforms import build_transform
from flows.outcomes import NO_MESSAGES, Outcome, Status
from flows.workbooks.results import read_results

ROOT = Path(__file__).resolve().parents[1]
JICOO = ROOT / "mappings" / "jicoo.yaml"
HEADER = "Booking Ref,Event Type,Date,Start Time,Time Zone,Guest Name,Email,Phone,Company,Meeting,Notes,Language"


def write_csv(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "bookings.csv"
    p.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("payload", [
    {"name": "Ann", "n": 3, "x": 1.5, "ok": True, "none": None},
    {},
    {"a": {"b": [1, {"c": "d"}, []], "e": {}}, "f": "g"},
    {"list": [{"p": "1", "t": "home"}, {"p": "2", "t": "work"}], "tuple": ("kept", "as a leaf")},
    {"callback": RunValue("callback_url"), "nested": {"cb": RunValue("callback_url")}},
])
def test_a_packed_payload_unpacks_to_the_same_payload(payload):
    shape, leaves = pack_payload(payload)
    again = unpack_payload(shape, leaves)
    assert again == payload
    assert again is not payload
    assert payload_hash(again) == payload_hash(payload)  # the ledger's fingerprint cannot change
    assert list(again) == list(payload)  # the keys in the same order

    def walk(a, b):  # every leaf the very same object (a RunValue stays a RunValue)
        if type(a) is dict:
            for k in a:
                walk(a[k], b[k])
        elif type(a) is list:
            for x, y in zip(a, b, strict=True):
                walk(x, y)
        else:
            assert a is b

    walk(payload, again)


def test_rows_of_one_structure_share_one_shape():
    one, _ = pack_payload({"a": "1", "b": {"c": "2"}})
    two, _ = pack_payload({"a": "x", "b": {"c": "y"}})
    other, _ = pack_payload({"a": "x", "b": {"d": "y"}})
    assert one is two
    assert other is not one


@pytest.fixture(params=["small plan: payloads kept packed", "big plan: rows mapped again"])
def plan_size(request, monkeypatch):
    """Both ways a plan keeps its valid rows' payloads (plan.KEEP_PAYLOADS_UP_TO): a threshold of 0 makes a
    three-row sheet a big plan."""
    if request.param.startswith("big"):
        monkeypatch.setattr(plan_module, "KEEP_PAYLOADS_UP_TO", 0)
    return request.param


def test_a_plan_row_gives_the_payload_the_mapper_makes(tmp_path, plan_size):
    sheet = write_csv(
        tmp_path,
        "B1,Initial consultation,16/07/2026,09:00,,  Ann   Lee ,Ann@Example.com,07700 900123,Acme,zoom,hi,EN",
        "B2,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B3,Workshop,16/07/2026,,Asia/Tokyo,Cy,not-an-email,,,,,",
    )
    plan = prepare(sheet, JICOO)
    for r, cells in zip(plan.rows, plan.sheet.rows, strict=True):
        mapped = plan.mapper.map_row(cells)
        if r.is_valid:
            assert r.payload == mapped.payload and r.body == mapped.payload
            assert payload_hash(r.body) == payload_hash(mapped.payload)
            assert r.problems == [] and r.problems is NO_PROBLEMS
        else:
            assert r.payload is None
            assert [p.column for p in r.problems] == ["Start Time", "Email"]
            with pytest.raises(ValueError, match="row 4 is invalid"):
                r.body  # noqa: B018 (the property raises)
    assert [r.is_valid for r in plan.rows] == [True, True, False]
    assert [r.line for r in plan.valid] == [2, 3]
    packed = [r._leaves is not None for r in plan.valid]
    assert packed == ([True, True] if plan_size.startswith("small") else [False, False])


def test_a_change_to_a_read_payload_is_kept_after_it_leaves_the_recent_window(monkeypatch):
    monkeypatch.setattr(plan_module, "_RECENT", plan_module._Recent(2))
    rows = [PreparedRow(i, i + 2, (f"R{i}",), {"name": f"n{i}", "tags": [f"t{i}"]}) for i in range(5)]
    first = rows[0].payload
    assert first is not None
    assert rows[0].payload is first  # kept built while recent: the same dict
    first["name"] = "changed"
    first["tags"].append("more")
    for r in rows[1:]:  # pushes row 0 out: packed again from its dict
        assert r.payload is not None
    assert rows[0] not in plan_module._RECENT.built
    assert rows[0].payload == {"name": "changed", "tags": ["t0", "more"]}
    assert len(plan_module._RECENT.built) == 2


def test_a_plan_row_maps_its_cells_again_when_read_and_keeps_a_change(tmp_path, monkeypatch):
    monkeypatch.setattr(plan_module, "_RECENT", plan_module._Recent(1))
    monkeypatch.setattr(plan_module, "KEEP_PAYLOADS_UP_TO", 0)  # a big plan: its rows hold no payload
    sheet = write_csv(
        tmp_path,
        "B1,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B2,Workshop,16/07/2026,11:00,Asia/Tokyo,Cy Diaz,cy@example.com,,,,,",
    )
    plan = prepare(sheet, JICOO)
    first, second = plan.rows
    assert first._leaves is None and second._leaves is None  # nothing held a row: mapped again when read
    untouched = first.payload
    assert second.payload is not None  # pushes row 1 out: unchanged, so it keeps nothing
    assert first._leaves is None and first.payload == untouched
    changed = second.payload  # row 1 read again pushed row 2 out; read it back and change it
    assert changed is not None
    changed["name"] = "Changed"
    assert first.payload is not None  # pushes row 2 out: its change is packed into it
    assert second._leaves is not None
    assert second.payload == changed
    assert second.payload["name"] == "Changed" and second.payload["email"] == "cy@example.com"


def test_setting_a_payload_and_clearing_it():
    r = PreparedRow(0, 2, ("R1",), {"a": "1"})
    assert r.payload == {"a": "1"}
    r.payload = None
    assert not r.is_valid and r.payload is None
    r.payload = {"b": "2"}
    assert r.is_valid and r.payload == {"b": "2"}


def test_the_shared_empty_problems_list_refuses_changes():
    r = PreparedRow(0, 2, ("R1",), {"a": "1"})
    assert r.problems == [] and not r.problems
    with pytest.raises(TypeError, match="assign a new list"):
        r.problems.append(Problem("Ref", "x"))
    with pytest.raises(TypeError):
        r.problems += [Problem("Ref", "x")]
    assert NO_PROBLEMS == []
    given = [Problem("Ref", "is empty")]
    bad = PreparedRow(1, 3, ("",), None, given)
    assert bad.problems is given  # a row's own list is kept as given


def test_duplicate_keys_are_still_reported_on_every_copy(tmp_path, plan_size):
    sheet = write_csv(
        tmp_path,
        "B1,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B2,Workshop,16/07/2026,11:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B1,Workshop,16/07/2026,12:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
    )
    plan = prepare(sheet, JICOO)
    assert [r.is_valid for r in plan.rows] == [False, True, False]
    assert "is also the key of row 4" in plan.rows[0].problems[0].message
    assert "is also the key of row 2" in plan.rows[2].problems[0].message
    assert plan.rows[1].problems is NO_PROBLEMS


def test_unchanged_text_is_the_cells_own_string():
    lower = build_transform("lower")[1]
    collapse = build_transform("collapse_spaces")[1]
    cell = "".join(["ann@example.com"])  # a str object of its own
    assert lower(cell) is cell
    assert lower("Ann@Example.com") == "ann@example.com"
    spaced = "".join(["Ann Lee"])
    assert collapse(spaced) is spaced
    assert collapse("Ann   Lee") == "Ann Lee"
    text = RunValue("x")  # a str subclass comes back as plain text, as before
    assert type(lower(text)) is str


def test_outcomes_share_one_empty_read_only_column_messages():
    a, b = Outcome(Status.CREATED), Outcome(Status.SKIPPED)
    assert a.column_messages is b.column_messages is NO_MESSAGES
    assert a.column_messages == {}
    with pytest.raises(TypeError):
        a.column_messages["x"] = ["y"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        a.extra = 1  # type: ignore[attr-defined]


def test_validate_marks_the_same_rows_with_one_shared_outcome_for_valid_rows(tmp_path):
    sheet = write_csv(
        tmp_path,
        "B1,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B2,Workshop,16/07/2026,11:00,Asia/Tokyo,Bo Chen,not-an-email,,,,,",
        "B3,Workshop,16/07/2026,12:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
    )
    result = validated(prepare(sheet, JICOO), tmp_path / "v.xlsx")
    assert [o.status if o else None for o in result.outcomes] == [Status.SKIPPED, Status.INVALID, Status.SKIPPED]
    assert result.outcomes[0] is result.outcomes[2]
    frame, _ = read_results(result.results)
    assert list(frame["_status"]) == ["skipped", "invalid", "skipped"]
    assert list(frame["Booking Ref"]) == ["B1", "B2", "B3"]


def test_an_outcome_without_messages_pickles_and_keeps_the_shared_mapping():
    again = pickle.loads(pickle.dumps(Outcome(Status.CREATED, provider_id="bk_1", http_status=201, attempts=1)))
    assert again == Outcome(Status.CREATED, provider_id="bk_1", http_status=201, attempts=1)
    assert again.column_messages is NO_MESSAGES
    marked = Outcome(Status.INVALID, "Email: bad", column_messages={"Email": ["bad"]})
    assert pickle.loads(pickle.dumps(marked)) == marked


def test_a_payload_for_one_send_is_built_apart_unless_the_row_was_read_lately(tmp_path, plan_size, monkeypatch):
    """PreparedRow.payload_for_send: the dict a recent read gave (an edit is sent); otherwise a new dict equal to
    the payload, not kept among the recent ones (the send holds it while the row is in flight)."""
    monkeypatch.setattr(plan_module, "_RECENT", plan_module._Recent(8))
    sheet = write_csv(
        tmp_path,
        "B1,Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo@example.com,,,,,",
        "B2,Workshop,16/07/2026,11:00,Asia/Tokyo,Cy Diaz,cy@example.com,,,,,",
        "B3,Workshop,16/07/2026,,Asia/Tokyo,Cy,not-an-email,,,,,",
    )
    plan = prepare(sheet, JICOO)
    read, unread, invalid = plan.rows
    edited = read.payload
    assert edited is not None
    edited["name"] = "Edited"
    assert read.payload_for_send() is edited
    once = unread.payload_for_send()
    assert once == plan.mapper.map_row(plan.sheet.rows[1]).payload
    assert unread not in plan_module._RECENT.built  # built for the send alone
    assert unread.payload_for_send() is not once and unread.payload == once
    with pytest.raises(ValueError, match="row 4 is invalid"):
        invalid.payload_for_send()


def test_asyncio_run_does_not_format_every_outcome_of_a_finished_import(tmp_path, monkeypatch):
    """asyncio.run on Python 3.11 formats its task's repr, result included, as it puts the SIGINT handler back.
    A million-row validate built the repr of every outcome there (250 MB, after the workbook was written):
    RunResult's repr names the counts and the workbook, never the rows."""
    import asyncio

    from flows.engine.run import RunOptions, run_import

    sheet = write_csv(tmp_path, *(f"B{i},Workshop,16/07/2026,10:00,Asia/Tokyo,Bo Chen,bo{i}@example.com,,,,,"
                                  for i in range(3)))
    plan = prepare(sheet, JICOO)

    def no_repr(self):
        raise AssertionError("an outcome was formatted")

    monkeypatch.setattr(Outcome, "__repr__", no_repr)
    result = asyncio.run(run_import(plan, RunOptions(out=tmp_path / "results.xlsx"), validate=True))
    assert repr(result) == (f"RunResult(counts={result.counts!r}, results={str(tmp_path / 'results.xlsx')!r}, "
                            f"rows=3, run_id=None)")
