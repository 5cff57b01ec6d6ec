"""A provider with no code is one mapping file: a plain JSON API, described in a temporary folder,
imported through a loopback server with no provider module, no simulator and no registry entry."""
from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from flows import RunOptions, prepare, run_import
from flows.mapping.catalog import provider_ids
from flows.sandbox import SimulatorServer, simulator_for

MAPPING = """\
provider: acme
description: Appointments for a plain JSON API (no provider code).
key: Ref
connection:
  base_url: https://api.acme.invalid/v2      # ACME_BASE_URL overrides
  auth:
    kind: api_key_header
    header: X-Api-Key
    secret: ACME_API_KEY
  rate: 100
request:
  method: POST
  path: /appointments
  body: json
  success: created
  provider_id: data.id
  responses:
    409: {action: reject, message: slot taken}
fields:
  reference:
    column: Ref
    required: true
  customer.name:
    column: Name
    transforms: [trim, collapse_spaces]
    required: true
  customer.email:
    column: Email
    transforms: [trim, lower, email]
    required: true
  startsAt:
    datetime:
      date: Date
      time: Time
      format: "%Y-%m-%d"
      timezone: Europe/Berlin
    required: true
"""

SHEET = """\
Ref,Name,Email,Date,Time
A-1,Ada  Lovelace,ADA@example.com,2027-03-01,09:30
A-2,Alan Turing,not-an-email,2027-03-01,10:00
A-3,Grace Hopper,grace@example.com,2027-03-02,14:15
A-4,Taken Slot,taken@example.com,2027-03-02,14:15
"""


class PlainApi:
    """Twelve lines of JSON API: checks the key, refuses a second booking at one time, answers {data: {id}}."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    def app(self) -> web.Application:
        async def create(request: web.Request) -> web.Response:
            if request.headers.get("X-Api-Key") != "acme-key":
                return web.json_response({"error": "bad key"}, status=401)
            body = await request.json()
            if any(b["startsAt"] == body["startsAt"] for b in self.received):
                return web.json_response({"error": "slot taken"}, status=409)
            self.received.append(body)
            return web.json_response({"data": {"id": uuid.uuid4().hex}}, status=201)

        app = web.Application()
        app.router.add_post("/v2/appointments", create)
        return app


def test_a_mapping_alone_imports_a_sheet_into_a_plain_json_api(tmp_path, monkeypatch):
    (tmp_path / "mappings").mkdir()
    mapping = tmp_path / "mappings" / "acme.yaml"
    mapping.write_text(MAPPING)
    sheet = tmp_path / "appointments.csv"
    sheet.write_text(SHEET)
    assert provider_ids(tmp_path / "mappings") == ("acme",) and simulator_for("acme") is None
    api = PlainApi()
    with SimulatorServer(api) as url:
        monkeypatch.setenv("ACME_BASE_URL", f"{url}/v2")
        monkeypatch.setenv("ACME_API_KEY", "acme-key")
        ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
        first = asyncio.run(run_import(prepare(sheet, mapping),
                                       RunOptions(ledger_url=ledger, out=tmp_path / "r1.xlsx")))
        again = asyncio.run(run_import(prepare(sheet, mapping),
                                       RunOptions(ledger_url=ledger, out=tmp_path / "r2.xlsx")))
    assert {k: v for k, v in first.counts.items() if v} == {"created": 2, "invalid": 1, "rejected": 1}
    by_ref = {b["reference"]: b for b in api.received}
    assert by_ref["A-1"]["customer"] == {"name": "Ada Lovelace", "email": "ada@example.com"}
    assert by_ref["A-1"]["startsAt"].startswith("2027-03-01T08:30")  # 09:30 in Berlin, sent as UTC
    assert first.outcomes[1].status.value == "invalid" and "Email" in first.outcomes[1].column_messages
    lost = [o for o in first.outcomes[2:] if o.status.value == "rejected"]  # race for one slot
    assert len(lost) == 1 and "slot taken" in lost[0].message and lost[0].http_status == 409
    assert first.results.is_file() and len(api.received) == 2
    assert again.counts["skipped"] == 2 and len(api.received) == 2, "a rerun books nothing twice"
