"""The naive script a user would write: read the sheet with pandas, POST each row in turn with requests,
write a results CSV. A peer in bench/ttr.py's "time to results" table (issue 16).

    python bench/peers/pandas_requests.py SHEET.csv BASE_URL RESULTS.csv

The API key comes from ``JICOO_API_KEY``, as for ``booking-import``.
"""
from __future__ import annotations

import os
import sys

import naive_map
import pandas as pd
import requests


def main(sheet: str, base_url: str, out: str) -> int:
    df = pd.read_csv(sheet, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    session = requests.Session()
    session.headers[naive_map.API_KEY_HEADER] = os.environ["JICOO_API_KEY"]
    results = []
    for row in df.to_dict("records"):
        try:
            r = session.post(f"{base_url}/bookings", json=naive_map.booking(row), timeout=30)
            ok = r.status_code == 201
            results.append({"Booking Ref": row["Booking Ref"], "status": r.status_code,
                            "uid": r.json().get("uid", "") if ok else "", "error": "" if ok else r.text[:200]})
        except (requests.RequestException, KeyError, ValueError) as exc:
            results.append({"Booking Ref": row["Booking Ref"], "status": "", "uid": "", "error": str(exc)})
    pd.DataFrame(results).to_csv(out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
