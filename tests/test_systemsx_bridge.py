"""Systems X Bridge end to end over loopback: the contract and its one-of rule, the mapping's form and
JSON bodies byte for byte as the simulator received them, accepted rows, 400 messages on the sheet
columns they name, run values (the callback address), and a rerun that books nothing twice."""
from __future__ import annotations

import json
import urllib.parse
from collections import Counter

import pytest
from aiohttp import web
from pydantic import ValidationError

from flows.engine.answers import _column_mentioned
from flows.engine.plan import prepare
from flows.engine.run import ImportRun, RunOptions
from flows.errors import ConfigError
from flows.http.loopback import LoopbackServer
from flows.mapping.model import RunValue, compile_mapping, load_mapping
from flows.outcomes import Status
from flows.providers.systemsx_bridge import CreateBooking
from flows.sandbox import DEFAULT_BRIDGE_API_KEY
from flows.workbooks.results import read_results

from .bridge_support import (  # noqa: F401  (fixtures)
    INVALID_REFS,
    MAPPING,
    SHEET,
    bridge,
    bridge_env,
    by_ref,
    receiver,
    row,
    run_import,
    write_sheet,
)
from .conftest import mapping_variant

BASE = {"type": "po", "bookingReference": "PO-1", "organisationName": "Harbour Lights", "agentName": "Megan Hale"}


# --- the contract --------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, problem", [
    ({"username": "mhale", "password": "pw"}, None),
    ({"email_address": "ann@example.com", "password": "pw"}, None),
    ({"username": "mhale", "email_address": "ann@example.com", "password": "pw"}, "both username and email_address"),
    ({"password": "pw"}, "username or email_address is needed"),
    ({"username": "", "email_address": "", "password": "pw"}, "at least 1 character"),
    ({"username": "mhale"}, "Field required"),
    ({"email_address": "not-an-address", "password": "pw"}, "not a valid e-mail"),
], ids=["username", "email", "both", "neither", "both-empty", "no-password", "bad-email"])
def test_exactly_one_portal_login_and_a_password(fields, problem):
    payload = {**BASE, "bookingFields": fields}
    if problem is None:
        CreateBooking.model_validate(payload)
        return
    with pytest.raises(ValidationError) as info:
        CreateBooking.model_validate(payload)
    assert problem in str(info.value)


@pytest.mark.parametrize("change, field", [({"type": "cunard"}, "type"), ({"api_key": "k"}, "api_key"),
                                           ({"return_url": "ftp://x"}, "return_url")])
def test_the_contract_rejects_what_bridge_does_not_take(change, field):
    with pytest.raises(ValidationError) as info:
        CreateBooking.model_validate({**BASE, "bookingFields": {"username": "u", "password": "p"}, **change})
    assert info.value.errors()[0]["loc"][0] == field


def test_the_sample_sheet_invalid_rows_name_their_columns():
    plan = prepare(SHEET, MAPPING)
    invalid = {r.key[1]: "; ".join(map(str, r.problems)) for r in plan.rows if r.payload is None}
    assert set(invalid) == INVALID_REFS and len(plan.rows) == 36
    assert invalid["TUI-70310"].startswith("Portal Username + Portal Email: both username and email_address")
    assert invalid["MSC-51200871"].startswith("Portal Username + Portal Email: username or email_address is needed")
    assert invalid["CUN-20001"] == "Type: must be one of 'po', 'msc' or 'tui'"
    kinds = Counter("email" if "email_address" in r.payload["bookingFields"] else "username" for r in plan.valid)
    assert kinds["email"] >= 5 and kinds["username"] >= 5
    assert all(r.payload["return_url"] == "{callback_url}" and isinstance(r.payload["return_url"], RunValue)
               for r in plan.valid)


# --- free-text errors find their column -----------------------------------------------------------

@pytest.mark.parametrize("message, column", [
    ("bookingReference field is Missing or Empty.", "Booking Reference"),
    ("Booking Reference field is Missing or Empty.", "Booking Reference"),
    ("booking_reference field is Missing or Empty.", "Booking Reference"),
    ("organisationName field is Missing or Empty.", "Organisation"),
    ("Organisation name is too long", "Organisation"),
    ("bookingFields[username] field is Missing or Empty.", "Portal Username"),
    ("bookingFields.email_address field is Invalid.", "Portal Email"),
    ("bookingFields[password] field is Missing or Empty.", "Portal Password"),
    ("bookingFields[username] or bookingFields[email_address] field is Missing or Empty.",
     "Portal Username + Portal Email"),
    ("Only one of bookingFields[username] or bookingFields[email_address] should be provided.",
     "Portal Username + Portal Email"),
    ("type field is Invalid.", "Type"),
    ("Portal Password field is Missing or Empty.", "Portal Password"),
    ("api_key field is Missing or Empty.", None),
    ("Something went wrong.", None),
])
def test_a_free_text_error_is_attached_to_the_column_it_names(message, column):
    mapper = compile_mapping(load_mapping(MAPPING), ["Type", "Booking Reference", "Organisation", "Agent",
                                                     "Portal Username", "Portal Email", "Portal Password"])
    assert _column_mentioned(message, mapper) == column


def test_a_shared_last_segment_names_no_column_but_a_full_path_does(tmp_path):
    mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml", fields__agentName=None,
                              **{"fields__agent.name": {"column": "Agent"}, "request__contract": None})
    mapper = compile_mapping(load_mapping(mapping), ["Type", "Booking Reference", "Organisation", "Agent",
                                                     "Portal Username", "Portal Email", "Portal Password"])
    assert _column_mentioned("agent.name is empty", mapper) == "Agent"
    assert _column_mentioned("username is wrong", mapper) == "Portal Username"


# --- bodies, byte for byte -------------------------------------------------------------------------

def _two_rows(tmp_path):
    return write_sheet(tmp_path / "two.csv", [
        row("PO-100", Agent="Zoë Brontë", **{"Portal Username": "zbronte", "Portal Password": "S3cret!pw&x"}),
        row("TUI-200", "tui", **{"Portal Username": "", "Portal Email": "Ann@Example.COM", "Portal Password": "p w+2"}),
    ])


def test_form_body_has_literal_bracket_keys_byte_for_byte(bridge, bridge_env, receiver, ledger_url, tmp_path):
    run = run_import(_two_rows(tmp_path), ledger_url=ledger_url, callback_url=receiver, out=tmp_path / "r.xlsx")
    assert Counter(o.status.value for o in run.outcomes) == {"accepted": 2}
    url = urllib.parse.quote_plus(run.run_values["callback_url"])
    got = {r.fields["bookingReference"]: r for r in bridge.received}
    assert got["PO-100"].content_type == "application/x-www-form-urlencoded"
    assert got["PO-100"].raw == (
        f"api_key={DEFAULT_BRIDGE_API_KEY}&type=po&bookingReference=PO-100&organisationName=Harbour+Lights+Travel+Ltd"
        f"&agentName=Zo%C3%AB+Bront%C3%AB&return_url={url}"
        f"&bookingFields%5Busername%5D=zbronte&bookingFields%5Bpassword%5D=S3cret%21pw%26x").encode()
    assert got["TUI-200"].raw == (
        f"api_key={DEFAULT_BRIDGE_API_KEY}&type=tui&bookingReference=TUI-200&organisationName=Harbour+Lights+Travel+Ltd"
        f"&agentName=Megan+Hale&return_url={url}"
        f"&bookingFields%5Bemail_address%5D=ann%40example.com&bookingFields%5Bpassword%5D=p+w%2B2").encode()
    assert {j.hash for j in bridge.jobs} == {o.provider_id for o in run.outcomes}


def test_json_body_has_a_nested_bookingfields_object_byte_for_byte(bridge, bridge_env, receiver, ledger_url, tmp_path):
    mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml", request__body="json")
    run = run_import(_two_rows(tmp_path), mapping, ledger_url=ledger_url, callback_url=receiver)
    assert Counter(o.status.value for o in run.outcomes) == {"accepted": 2}
    url = run.run_values["callback_url"]
    got = {r.fields["bookingReference"]: r for r in bridge.received}
    assert got["PO-100"].content_type == "application/json"
    assert got["PO-100"].raw == (
        '{"api_key":"' + DEFAULT_BRIDGE_API_KEY + '","type":"po","bookingReference":"PO-100",'
        '"organisationName":"Harbour Lights Travel Ltd","agentName":"Zoë Brontë","return_url":"' + url + '",'
        '"bookingFields":{"username":"zbronte","password":"S3cret!pw&x"}}').encode("utf-8")
    assert got["TUI-200"].raw == (
        '{"api_key":"' + DEFAULT_BRIDGE_API_KEY + '","type":"tui","bookingReference":"TUI-200",'
        '"organisationName":"Harbour Lights Travel Ltd","agentName":"Megan Hale","return_url":"' + url + '",'
        '"bookingFields":{"email_address":"ann@example.com","password":"p w+2"}}').encode("utf-8")


# --- outcomes ------------------------------------------------------------------------------------------

def test_the_sample_is_accepted_with_hashes_and_a_rerun_books_nothing_twice(bridge, bridge_env, receiver, ledger_url,
                                                                          tmp_path):
    first = run_import(ledger_url=ledger_url, callback_url=receiver, out=tmp_path / "r1.xlsx")
    assert Counter(o.status.value for o in first.outcomes) == {"accepted": 32, "invalid": 4}
    hashes = {j.hash for j in bridge.jobs}
    assert len(bridge.jobs) == 32 and {o.provider_id for o in first.outcomes if o.provider_id} == hashes
    df, summary = read_results(tmp_path / "r1.xlsx")
    assert set(df.loc[df["_status"] == "accepted", "_provider_id"]) == hashes
    assert summary["callback URL"].endswith("/systemsx_bridge/••••••")

    second = run_import(ledger_url=ledger_url, callback_url=receiver)
    assert Counter(o.status.value for o in second.outcomes) == {"skipped": 32, "invalid": 4}
    assert len(bridge.jobs) == 32, "the rerun must not queue a second job for any (type, bookingReference)"
    assert second.run_values["callback_url"] != first.run_values["callback_url"], "each run has its own token"
    for ref, outcome in by_ref(second).items():
        if outcome.status is Status.SKIPPED:
            assert outcome.message.startswith("already accepted by run") and "differ" not in outcome.message
            assert outcome.provider_id == by_ref(first)[ref].provider_id


def test_400_messages_are_attached_to_the_columns_they_name(bridge, bridge_env, receiver, ledger_url, tmp_path):
    # no contract and no required flags: the rows reach the simulator, which says what is wrong
    mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml", request__contract=None,
                              fields__organisationName__required=None, fields__agentName__required=None,
                              **{"fields__bookingFields.email_address__transforms": ["trim"]})
    sheet = write_sheet(tmp_path / "bad.csv", [
        row("PO-1", Organisation="", Agent=""),
        row("PO-2", **{"Portal Email": "a@example.com"}),
        row("PO-3", **{"Portal Username": ""}),
        row("CUN-4", "cunard"),
        row("PO-5"),
    ])
    run = run_import(sheet, mapping, ledger_url=ledger_url, callback_url=receiver, out=tmp_path / "r.xlsx")
    o = by_ref(run)
    assert o["PO-5"].status is Status.ACCEPTED
    assert all(o[ref].status is Status.REJECTED and o[ref].http_status == 400
               for ref in ("PO-1", "PO-2", "PO-3", "CUN-4"))
    assert o["PO-1"].column_messages == {"Organisation": ["organisationName field is Missing or Empty."],
                                         "Agent": ["agentName field is Missing or Empty."]}
    assert o["PO-2"].column_messages == {"Portal Username + Portal Email": [
        "Only one of bookingFields[username] or bookingFields[email_address] should be provided."]}
    assert list(o["PO-3"].column_messages) == ["Portal Username + Portal Email"]
    assert o["CUN-4"].column_messages == {"Type": ["type field is Invalid."]}
    df, _ = read_results(tmp_path / "r.xlsx")
    message = df.loc[df["Booking Reference"] == "PO-1", "_message"].iloc[0]
    assert message == ("Systems X Bridge rejected the row: Organisation: organisationName field is Missing or Empty.; "
                       "Agent: agentName field is Missing or Empty.")


def test_a_wrong_api_key_stops_the_run(bridge, bridge_env, receiver, ledger_url, monkeypatch):
    monkeypatch.setenv("SYSTEMSX_API_KEY", "sx_wrong_key")
    run = run_import(ledger_url=ledger_url, callback_url=receiver, concurrency=2)
    counts = Counter(o.status.value for o in run.outcomes)
    assert counts["failed"] <= 2 and counts["skipped"] >= 28
    assert bridge.jobs == []
    assert any("SYSTEMSX_API_KEY" in o.message for o in run.outcomes if o.status is Status.FAILED)


# --- the callback address as a run value ------------------------------------------------------------

def test_no_callback_address_stops_before_anything_is_sent(bridge, bridge_env, ledger_url):
    plan = prepare(SHEET, MAPPING)
    with pytest.raises(ConfigError, match=r"SYSTEMSX_BRIDGE_CALLBACK_URL.*--wait-callbacks"):
        ImportRun(plan, RunOptions(ledger_url=ledger_url))
    assert sum(bridge.requests.values()) == 0


@pytest.fixture
def remote_bridge():
    """A listening socket on this machine's non-loopback address, standing for a Bridge elsewhere: the
    callback check must refuse before anything connects to it. Yields (base URL, connections made)."""
    import socket

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.123", 9))  # no packet leaves: this only picks the outgoing interface
        ip = probe.getsockname()[0]
    except OSError:
        ip = ""
    finally:
        probe.close()
    if not ip or ip.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address")
    listener = socket.socket()
    listener.bind((ip, 0))
    listener.listen(8)
    listener.setblocking(False)

    def connections() -> int:
        n = 0
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1

    yield f"http://{ip}:{listener.getsockname()[1]}", connections
    listener.close()


#: (SYSTEMSX_BRIDGE_CALLBACK_URL, --wait-callbacks receiver, refused?) with Bridge on another machine
CALLBACK_ADDRESSES = [
    ("http://127.0.0.1:8081/hooks", None, True),
    ("http://localhost:8081", None, True),
    ("http://[::1]:8081", None, True),
    ("http://0.0.0.0:8081", None, True),
    (None, "http://127.0.0.1:8081", True),  # --wait-callbacks: the in-process receiver listens on loopback
    ("https://hooks.example.com/booking", None, False),
    ("https://hooks.example.com/booking", "http://127.0.0.1:8081", False),  # the public address wins
]


@pytest.mark.parametrize(("public", "in_process", "refused"), CALLBACK_ADDRESSES)
def test_a_loopback_return_url_for_a_bridge_elsewhere_is_refused_before_sending(
        remote_bridge, bridge_env, ledger_url, monkeypatch, public, in_process, refused):
    base, connections = remote_bridge
    monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", base)
    if public:
        monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", public)
    plan = prepare(SHEET, MAPPING)
    if refused:
        with pytest.raises(ConfigError) as info:
            ImportRun(plan, RunOptions(ledger_url=ledger_url, callback_url=in_process))
        message = str(info.value)
        assert "SYSTEMSX_BRIDGE_CALLBACK_URL" in message and "can never call it" in message and "\n" not in message
    else:
        run = ImportRun(plan, RunOptions(ledger_url=ledger_url, callback_url=in_process))
        assert run.run_values["callback_url"].startswith("https://hooks.example.com/booking/systemsx_bridge/")
        run.close()
    assert connections() == 0


def test_the_run_command_refuses_a_loopback_return_url_with_one_line_and_exit_2(remote_bridge, bridge_env, tmp_path,
                                                                              monkeypatch, capsys):
    from flows.cli import main

    base, connections = remote_bridge
    monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", base)
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "http://127.0.0.1:8081")
    code = main(["run", str(SHEET), "-m", str(MAPPING), "--ledger", str(tmp_path / "l.sqlite"),
                 "--out", str(tmp_path / "r.xlsx"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "SYSTEMSX_BRIDGE_CALLBACK_URL" in err and "Traceback" not in err
    assert connections() == 0 and not (tmp_path / "r.xlsx").exists()


def test_the_environment_address_wins_and_an_optional_one_may_be_left_out(bridge, bridge_env, ledger_url, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "https://hooks.example.com/booking/")
    sheet = write_sheet(tmp_path / "one.csv", [row("PO-7")])
    run = run_import(sheet, ledger_url=ledger_url, callback_url="http://127.0.0.1:1")
    url = run.run_values["callback_url"]
    assert url.startswith("https://hooks.example.com/booking/systemsx_bridge/") and len(url.rsplit("/", 1)[1]) >= 32
    assert bridge.jobs[0].return_url == url
    token = url.rsplit("/", 1)[1]
    assert token.encode() not in (tmp_path / "ledger.sqlite").read_bytes(), "the ledger keeps only the token's hash"

    monkeypatch.delenv("SYSTEMSX_BRIDGE_CALLBACK_URL")
    optional = mapping_variant(tmp_path, "systemsx_bridge.yaml", fields__return_url__required=None)
    again = run_import(write_sheet(tmp_path / "two.csv", [row("PO-8")]), optional, ledger_url=ledger_url)
    assert again.outcomes[0].status is Status.ACCEPTED
    assert bridge.jobs[1].return_url is None and b"return_url" not in bridge.received[1].raw


def test_a_run_value_takes_no_transforms(tmp_path):
    bad = mapping_variant(tmp_path, "systemsx_bridge.yaml", fields__return_url={"run_value": "callback_url",
                                                                                "transforms": ["trim"]})
    with pytest.raises(ConfigError, match=r"run_value .* remove its transforms"):
        load_mapping(bad)


def test_render_masks_the_password_and_shows_the_callback_placeholder(capsys):
    from flows.cli import main

    assert main(["render", str(SHEET), "-m", str(MAPPING), "-n", "40"]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 32
    assert all(p["payload"]["bookingFields"]["password"] == "••••••" for p in lines)
    assert all(p["payload"]["return_url"] == "{callback_url}" for p in lines)
    from .bridge_support import sample_passwords

    for pw in sample_passwords():
        assert pw not in out and pw not in err


# --- a password quoted in a message is masked ---------------------------------------------------------

def test_a_row_problem_quoting_the_password_is_masked(tmp_path):
    mapping = mapping_variant(tmp_path, "systemsx_bridge.yaml",
                              **{"fields__bookingFields.password__transforms": ["email"]})  # a deliberately silly check
    plan = prepare(write_sheet(tmp_path / "s.csv", [row("PO-9", **{"Portal Password": "Sekr1t-Pass"})]), mapping)
    text = "; ".join(map(str, plan.rows[0].problems))
    assert "Portal Password" in text and "is not a valid e-mail" in text
    assert "Sekr1t-Pass" not in text and "••••••" in text


def test_a_provider_error_echoing_the_password_is_masked_in_results_and_ledger(bridge_env, ledger_url, tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("SYSTEMSX_BRIDGE_CALLBACK_URL", "https://hooks.example.com")

    async def answer(request: web.Request) -> web.Response:  # a bridge that quotes the password back
        fields = dict(urllib.parse.parse_qsl((await request.read()).decode()))
        return web.json_response({"hash": "H" * 21, "errors": [
            f"bookingFields[password] {fields['bookingFields[password]']} was refused by the portal."]}, status=400)

    app = web.Application()
    app.router.add_post("/{tail:.*}", answer)
    out = tmp_path / "r.xlsx"
    sheet = write_sheet(tmp_path / "s.csv", [row("PO-9", **{"Portal Password": "Sekr1t-Pass"})])
    with LoopbackServer(app) as url:
        monkeypatch.setenv("SYSTEMSX_BRIDGE_BASE_URL", url)
        run = run_import(sheet, ledger_url=ledger_url, out=out)
    outcome = run.outcomes[0]
    assert outcome.status is Status.REJECTED
    assert outcome.column_messages == {"Portal Password": ["bookingFields[password] •••••• was refused by the portal."]}
    assert "Sekr1t-Pass" not in outcome.message
    from .bridge_support import file_texts

    written = file_texts(tmp_path)
    assert b"Sekr1t-Pass" in written.pop("s.csv")  # the input sheet, the only file that may hold it
    assert {"r.xlsx", "ledger.sqlite"} <= set(written)
    assert [name for name, data in written.items() if b"Sekr1t-Pass" in data] == []


# --- one provider id names everything ---------------------------------------------------------------------

def test_one_provider_id_names_the_mapping_module_sample_simulator_and_demo(tmp_path):
    import importlib.util

    from flows.hooks import resolve
    from flows.mapping.catalog import provider_ids
    from flows.sandbox import SIMULATORS, BridgeSimulator
    from flows.sandbox.demo import DEMOS, sandbox_env

    assert "systemsx_bridge" in provider_ids() and SIMULATORS["systemsx_bridge"] is BridgeSimulator
    assert load_mapping(MAPPING).provider == "systemsx_bridge" and resolve("systemsx_bridge.read_callback")
    demo = next(d for d in DEMOS if d.provider == "systemsx_bridge")
    assert (demo.sheet, demo.mapping) == ("sample_data/systemsx_bridge/bookings.csv", "mappings/systemsx_bridge.yaml")
    assert demo.wait_callbacks > 0, "the demo shows accepted rows becoming created"
    assert set(sandbox_env("systemsx_bridge", "http://127.0.0.1:1")) == {"SYSTEMSX_BRIDGE_BASE_URL", "SYSTEMSX_API_KEY"}
    # the sample is what its generator writes
    spec = importlib.util.spec_from_file_location("bridge_sample", SHEET.parent / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.write_csv(tmp_path / "b.csv").read_bytes() == SHEET.read_bytes()
    assert set(module.PROBLEM_ROWS) == INVALID_REFS
