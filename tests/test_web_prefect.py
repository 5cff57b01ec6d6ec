"""With a Prefect server configured, the web page books through the Prefect flow ``import_sheet`` (same engine),
and links the flow run in the Prefect UI. Marked ``prefect``: starting a temporary server takes a while."""
from __future__ import annotations

import asyncio
import time

import pytest
from starlette.testclient import TestClient

from .test_web import matched
from .web_support import make_app, sign_in

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def test_booking_is_a_prefect_flow_run_linked_from_the_results(prefect_api, jicoo_sim, jicoo_env, tmp_path):
    from prefect.client.orchestration import get_client

    app = make_app(tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        csrf = sign_in(client)
        base = matched(client, csrf, tmp_path)
        client.post(f"{base}/book", data={"csrf": csrf})
        deadline = time.monotonic() + 120
        while client.get(f"{base}/progress", follow_redirects=False).status_code != 303:
            assert time.monotonic() < deadline, "the flow run did not finish"
            time.sleep(0.2)
        page = client.get(f"{base}/results").text
    assert "in the Prefect UI" in page or "the run in the Prefect UI" in page
    assert len(jicoo_sim.bookings) == 54
    up = next(iter(app.state.uploads._items.values()))
    flow_run_id = up.flow_run_url.rsplit("/", 1)[-1]

    async def state():
        async with get_client() as c:
            return (await c.read_flow_run(flow_run_id)).state.type.value

    assert asyncio.run(state()) == "COMPLETED"
