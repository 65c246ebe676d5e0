"""Manual retry of failed and cancelled jobs, one or many, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JobFailure
from service.app import create_app
from service.submission import submit_job
from tests.support.jobs import wait_for_job

failed_once: set[str] = set()


class NotYet(JobFailure):
    error_type = "not_yet"


@broker.task(task_name="tests.retry.fails_first")
async def fails_first(request: dict[str, str]) -> dict[str, Any]:
    if request["key"] not in failed_once:
        failed_once.add(request["key"])
        raise NotYet("the first run fails")
    return {"data": {"second": True}, "files": []}


async def failed_job(client: httpx.AsyncClient, backend: Backend) -> str:
    record = await submit_job(
        backend, fails_first, tenant="local", kind="qr", request={"key": new_job_id()}
    )
    job = await wait_for_job(client, record.id)
    assert job["status"] == "failed" and job["error"]["type"] == "not_yet"
    return record.id


async def test_a_failed_job_runs_again_under_its_id(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id = await failed_job(client, any_backend)
    response = await client.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued" and response.json()["error"] is None
    job = await wait_for_job(client, job_id)
    assert job["status"] == "succeeded" and job["result"]["data"] == {"second": True}
    assert job["attempts"] == 2, "attempts keep counting"


async def test_only_failed_or_cancelled_jobs_can_be_retried(client: httpx.AsyncClient) -> None:
    done = (await client.post("/v1/jobs/qr", json={"data": "x"})).json()["id"]
    await wait_for_job(client, done)
    refused = await client.post(f"/v1/jobs/{done}/retry")
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("job-not-retryable")
    assert (await client.post(f"/v1/jobs/{'0' * 32}/retry")).status_code == 404


async def test_many_failed_jobs_are_retried_in_one_call(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    failed = [await failed_job(client, any_backend) for _ in range(3)]
    done = (await client.post("/v1/jobs/qr", json={"data": "x"})).json()["id"]
    await wait_for_job(client, done)
    later = (await client.get(f"/v1/jobs/{failed[-1]}")).json()["created_at"]
    response = await client.post("/v1/jobs/retry", json={"since": later})
    assert response.status_code == 200 and response.json() == {"count": 1}
    response = await client.post("/v1/jobs/retry", json={})
    assert response.status_code == 200 and response.json() == {"count": 2}
    for job_id in failed:
        assert (await wait_for_job(client, job_id))["status"] == "succeeded"
    assert (await client.post("/v1/jobs/retry", json={})).json() == {"count": 0}
    wrong = await client.post("/v1/jobs/retry", json={"status": "running"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "status"
    for since in (0, "2026-01-31T12:00:00"):
        refused = await client.post("/v1/jobs/retry", json={"since": since})
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "since"


runs: dict[str, int] = {}


@broker.task(task_name="tests.retry.counted")
async def counted(request: dict[str, str]) -> dict[str, Any]:
    runs[request["key"]] = runs.get(request["key"], 0) + 1
    await asyncio.sleep(0.3)  # long enough for a second message to be admitted meanwhile
    return {"data": {}, "files": []}


@asynccontextmanager
async def api(backend: Backend, worker: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backend, embedded_worker=worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http


async def test_a_job_cancelled_and_retried_before_any_worker_saw_it_runs_once(
    any_backend: Backend,
) -> None:
    """Its first message is still in the broker: the retry must not add a second one."""
    key = new_job_id()
    async with api(any_backend, worker=False) as client:
        record = await submit_job(
            any_backend, counted, tenant="local", kind="qr", request={"key": key}
        )
        assert (await client.post(f"/v1/jobs/{record.id}/cancel")).status_code == 200
        assert (await client.post(f"/v1/jobs/{record.id}/retry")).status_code == 202
    async with api(any_backend, worker=True) as client:
        job = await wait_for_job(client, record.id)
        marker = (await client.post("/v1/jobs/qr", json={"data": "after"})).json()["id"]
        await wait_for_job(client, marker)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    assert runs[key] == 1
