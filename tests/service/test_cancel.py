"""Cancelling jobs through the API, on both backends, with the real embedded worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from schemas.jobs import JobStatus
from service.app import create_app
from service.submission import submit_job
from tasks.deps import AttemptDep
from tests.support.jobs import store_job, wait_for_job

started: dict[str, asyncio.Event] = {}


@broker.task(task_name="tests.cancel.long_loop")
async def long_loop(request: dict[str, str], attempt: AttemptDep) -> dict[str, Any]:
    started[request["key"]].set()
    for done in range(1, 10_000):
        await attempt.report(done, 10_000)
        await asyncio.sleep(0.01)
    return {"data": {"finished": True}, "files": []}


async def cancel(client: httpx.AsyncClient, job_id: str) -> httpx.Response:
    return await client.post(f"/v1/jobs/{job_id}/cancel")


@asynccontextmanager
async def api(backend: Backend, worker: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backend, embedded_worker=worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http


async def test_a_queued_job_is_cancelled_at_once_and_never_runs(any_backend: Backend) -> None:
    """Its message is already in the broker when it is cancelled: the worker drops it."""
    key = new_job_id()
    started[key] = asyncio.Event()
    async with api(any_backend, worker=False) as client:
        record = await submit_job(
            any_backend, long_loop, tenant="local", kind="qr", request={"key": key}
        )
        response = await cancel(client, record.id)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "cancelled" and body["finished_at"] is not None
        again = await cancel(client, record.id)
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
    async with api(any_backend, worker=True) as client:
        after = await client.post("/v1/jobs/qr", json={"data": "after the cancel"})
        assert (await wait_for_job(client, after.json()["id"]))["status"] == "succeeded"
        final = (await client.get(f"/v1/jobs/{record.id}")).json()
    assert not started[key].is_set(), "a cancelled job started"
    assert final["status"] == "cancelled" and final["attempts"] == 0


async def test_a_running_job_stops_at_its_next_checkpoint(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    key = new_job_id()
    started[key] = asyncio.Event()
    record = await submit_job(
        any_backend, long_loop, tenant="local", kind="qr", request={"key": key}
    )
    await asyncio.wait_for(started[key].wait(), 20)
    response = await cancel(client, record.id)
    assert response.status_code == 202, response.text
    assert response.json()["cancel_requested"] is True
    job = await wait_for_job(client, record.id, timeout=10)
    assert job["status"] == "cancelled"
    assert job["error"] is None and job["result"] is None
    assert job["finished_at"] is not None
    assert (await cancel(client, record.id)).status_code == 200


async def test_a_finished_job_cannot_be_cancelled(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    done = (await client.post("/v1/jobs/qr", json={"data": "done"})).json()["id"]
    await wait_for_job(client, done)
    response = await cancel(client, done)
    assert response.status_code == 409
    assert response.json()["type"].endswith("job-finished")
    failed = await store_job(any_backend, status=JobStatus.FAILED)
    assert (await cancel(client, failed.id)).status_code == 409
    assert (await cancel(client, "0" * 32)).status_code == 404
