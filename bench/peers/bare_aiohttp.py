"""The floor: a bare aiohttp loop posting the engine's own payloads (bench/gen_data.py), 8 in flight,
then a results CSV. A peer in bench/ttr.py's "time to results" table (issue 16).

    python bench/peers/bare_aiohttp.py PAYLOADS.jsonl BASE_URL RESULTS.csv [CONCURRENCY]
"""
from __future__ import annotations

import asyncio
import csv
import os
import sys

import aiohttp

API_KEY_HEADER = "X-Jicoo-Api-Key"


async def send(payloads: list[bytes], base_url: str, concurrency: int) -> list[tuple[int, int, str]]:
    headers = {API_KEY_HEADER: os.environ["JICOO_API_KEY"], "Content-Type": "application/json"}
    results: list[tuple[int, int, str]] = []
    todo = list(enumerate(payloads))
    todo.reverse()
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker() -> None:
            while todo:
                i, body = todo.pop()
                async with session.post(f"{base_url}/bookings", data=body) as r:
                    answer = await r.json() if r.status == 201 else {}
                    results.append((i, r.status, answer.get("uid", "")))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(results)


def main(payloads_path: str, base_url: str, out: str, concurrency: str = "8") -> int:
    with open(payloads_path, "rb") as fh:
        payloads = [line.rstrip(b"\n") for line in fh if line.strip()]
    results = asyncio.run(send(payloads, base_url, int(concurrency)))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "status", "uid"])
        w.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
