"""Helpers for following jobs in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

TERMINAL = {"succeeded", "failed", "cancelled"}


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, statuses: set[str] = TERMINAL, timeout: float = 20
) -> dict[str, Any]:
    """Poll the API until the job reaches one of ``statuses``; fail with its last state."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} did not reach {statuses} in {timeout} s: {job}")
