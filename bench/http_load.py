"""Fallback load generator when ``wrk`` is not installed: asyncio + httpx, one process.

Keeps ``--connections`` requests in flight (one per keep-alive connection) for
``--duration`` seconds and prints one JSON line: requests, seconds, req/s, non-2xx. It is
much slower than wrk and shares the two cores with the server, so its req/s is a floor,
not the server's capacity::

    .venv/bin/python -m bench.http_load http://127.0.0.1:8001/v1/jobs/qr --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

BODY = {"data": "https://example.com/x"}


async def _hammer(client: httpx.AsyncClient, url: str, until: float, counts: list[int]) -> None:
    while time.perf_counter() < until:
        response = await client.post(url, json=BODY)
        counts[0] += 1
        if not 200 <= response.status_code < 300:
            counts[1] += 1


async def run(url: str, connections: int, duration: float) -> dict[str, float]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        counts = [0, 0]
        started = time.perf_counter()
        until = started + duration
        await asyncio.gather(*(_hammer(client, url, until, counts) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {
        "requests": counts[0],
        "seconds": elapsed,
        "rps": counts[0] / elapsed,
        "non_2xx": counts[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.connections, args.duration))
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
