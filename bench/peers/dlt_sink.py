"""dlt's destination sink (``@dlt.destination``) posting each row to Jicoo, a results CSV written as the
sink goes. A peer in bench/ttr.py's "time to results" table (issue 16). Runs in its own virtualenv
(bench/data/peers/dlt-venv: dlt is not a dependency of booking-importer).

    python bench/peers/dlt_sink.py SHEET.csv BASE_URL RESULTS.csv WORKDIR

The API key comes from ``JICOO_API_KEY``. dlt's own state (pipelines, load packages) goes to WORKDIR.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import dlt
import naive_map
import requests
from dlt.common.schema import TTableSchema


def _utc_text(value: Any) -> str:
    """dlt reads ``startedAt`` back as a datetime: Jicoo's text for it again."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    raise TypeError(f"not JSON: {type(value).__name__}")


def main(sheet: str, base_url: str, out: str, workdir: str) -> int:
    session = requests.Session()
    session.headers[naive_map.API_KEY_HEADER] = os.environ["JICOO_API_KEY"]
    session.headers["Content-Type"] = "application/json"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Booking Ref", "status", "uid", "error"])

        @dlt.destination(batch_size=100, name="jicoo", naming_convention="direct",
                         skip_dlt_columns_and_tables=True)
        def jicoo(items: list[dict[str, Any]], table: TTableSchema) -> None:
            for item in items:
                ref = item.pop("ref")
                body = json.dumps({k: v for k, v in item.items() if v is not None}, default=_utc_text)
                r = session.post(f"{base_url}/bookings", data=body, timeout=30)
                ok = r.status_code == 201
                writer.writerow([ref, r.status_code, r.json().get("uid", "") if ok else "",
                                 "" if ok else r.text[:200]])

        def rows() -> Iterator[dict[str, Any]]:
            with open(sheet, newline="", encoding="utf-8-sig") as src:
                for row in csv.DictReader(src):
                    yield {"ref": row["Booking Ref"], **naive_map.booking(row)}

        pipeline = dlt.pipeline("bench_jicoo", destination=jicoo, pipelines_dir=workdir)
        pipeline.run(rows(), table_name="bookings")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
