"""Jobs due later (``run_at``/``delay_s``) and lanes, through the API, on both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from schemas.jobs import JobOptions, Lane
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.service.test_retry import api
from tests.support.jobs import wait_for_job

started: dict[str, list[float]] = {}
order: list[str] = []
"""Which job keys started, in order (the lanes test)."""
first_start: list[asyncio.Event] = []
"""Set at the next start (made on the test's own event loop)."""


@broker.task(task_name="tests.due.recorded")
async def recorded(request: dict[str, Any]) -> dict[str, Any]:
    started.setdefault(request["key"], []).append(time.time())
    order.append(request["key"])
    for event in first_start:
        event.set()
    await asyncio.sleep(request.get("sleep", 0))
    return {"data": {}, "files": []}


async def submit_recorded(
    backend: Backend, options: JobOptions | None = None, **request: Any
) -> tuple[str, str]:
    key = request.pop("key", None) or new_job_id()
    accepted = await submit(
        backend,
        QR_KIND,
        tenant="local",
        task=recorded,
        request={"key": key, **request},
        options=options,
    )
    return accepted.job.id, key


async def test_a_delayed_job_waits_queued_until_it_is_due(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    before = time.time()
    job_id, key = await submit_recorded(any_backend, JobOptions(delay_s=1.0))
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "queued" and job["run_at"] is not None
    # The sweeper must see its message (waiting for its time), not an orphan to requeue.
    swept = await any_backend.store.sweep(time.time())
    assert job_id not in swept.requeued and job_id not in swept.failed
    done = await wait_for_job(client, job_id)
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert len(started[key]) == 1
    assert started[key][0] >= before + 1.0 - 1e-3, "it started before it was due"


async def test_a_delayed_job_cancelled_before_it_is_due_never_runs(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id, key = await submit_recorded(any_backend, JobOptions(delay_s=0.3))
    response = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    await asyncio.sleep(0.9)  # past its due time, and a promotion or two
    marker, _ = await submit_recorded(any_backend)
    await wait_for_job(client, marker)
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == "cancelled"
    assert key not in started
    assert (await client.delete(f"/v1/jobs/{job_id}")).status_code == 204


BULK_JOBS = 10_000


async def submit_bulk(backend: Backend, count: int) -> None:
    """Many bulk jobs, submitted a batch at a time (the test is not about submit speed)."""
    bulk = JobOptions(lane=Lane.BULK)
    for first in range(0, count, 50):
        batch = range(first, min(count, first + 50))
        await asyncio.gather(
            *(submit_recorded(backend, bulk, key=f"bulk-{i}", sleep=0.002) for i in batch)
        )


@pytest.mark.timeout(240)
async def test_an_interactive_job_starts_ahead_of_ten_thousand_queued_bulk_jobs(
    any_backend: Backend,
) -> None:
    async with api(any_backend, worker=False):
        await submit_bulk(any_backend, BULK_JOBS)
    order.clear()
    first_start[:] = [asyncio.Event()]
    async with api(any_backend, worker=True) as client:
        await asyncio.wait_for(first_start[0].wait(), 30)  # the worker is on the bulk work
        job_id, key = await submit_recorded(any_backend)
        job = await wait_for_job(client, job_id, timeout=60)
        assert job["status"] == "succeeded"
        ahead = order.index(key)
        queued = (await client.get("/v1/jobs", params={"status": "queued", "limit": 100})).json()[
            "items"
        ]
    # It started while nearly all the bulk work still waited: not behind it.
    assert ahead < BULK_JOBS // 10, f"{ahead} bulk jobs started before the interactive one"
    assert len(queued) == 100, "the bulk queue had drained"
