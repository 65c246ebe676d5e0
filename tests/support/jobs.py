"""Helpers for making and following jobs in tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from taskiq import TaskiqMessage

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.redis.keys import Keys
from schemas.jobs import JobResult, JobStatus

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


async def store_job(backend: Backend, *, status: JobStatus, expired: bool = False) -> JobRecord:
    """A job written straight to the store (no message): ids a millisecond apart."""
    now = time.time()
    record = JobRecord(
        id=new_job_id(now),
        tenant="local",
        kind="qr",
        request={"data": "stored"},
        created_at=now - (3600 if expired else 0),
        expires_at=now - 1 if expired else now + 3600,
        max_attempts=3,
        status=status,
        result=JobResult(data={}) if status is JobStatus.SUCCEEDED else None,
    )
    await backend.store.create(record)
    await asyncio.sleep(0.002)
    return record


async def taken_over_job(backend: Backend) -> tuple[str, int, int]:
    """A running job that a second worker took over: (job id, stalled fence, current fence)."""
    record = await store_job(backend, status=JobStatus.QUEUED)
    stalled = (await backend.store.begin_attempt(record.id, time.time())).fence
    current = (await backend.store.begin_attempt(record.id, time.time())).fence
    return record.id, stalled, current


async def stored_labels(backend: Backend, job_id: str) -> dict[str, Any]:
    """The labels of the message stored with the job, typed as a worker reads them."""
    if backend.database is not None:
        with backend.database.transaction() as conn:
            [stored] = conn.execute("SELECT message FROM jobs WHERE id = ?", (job_id,)).fetchone()
    else:
        assert backend.redis is not None
        stored = await backend.redis.hget(
            Keys(backend.settings.redis_prefix).job(job_id), "message"
        )
    message = TaskiqMessage.model_validate_json(stored)
    message.parse_labels()
    return message.labels
