"""/readyz says what is degraded: the embedded worker that failed and was started again."""

from __future__ import annotations

from typing import Any

import httpx

from brokers.factory import Backend
from tests.support.jobs import wait_for_job


async def test_a_failed_embedded_worker_is_reported_and_started_again(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    broker: Any = any_backend.broker
    real_hand_out = broker._hand_out
    failures = [RuntimeError("the receiver broke")]

    async def hand_out_failing_once(*args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real_hand_out(*args)

    broker._hand_out = hand_out_failing_once
    try:
        first = (await client.post("/v1/jobs/qr", json={"data": "one"})).json()["id"]
        job = await wait_for_job(client, first, timeout=40)
    finally:
        broker._hand_out = real_hand_out
    assert job["status"] == "succeeded"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert "the receiver broke" in ready.json()["checks"]["worker"]
