"""Manual retry of failed and cancelled jobs, one or many, on both backends."""

from __future__ import annotations

from typing import Any

import httpx

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JobFailure
from schemas.jobs import JobKind
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
        backend, fails_first, tenant="local", kind=JobKind.QR, request={"key": new_job_id()}
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
