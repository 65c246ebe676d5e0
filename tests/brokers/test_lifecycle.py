"""Job outcomes recorded by the lifecycle middleware, through the real embedded worker."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Request
from taskiq import AsyncTaskiqDecoratedTask, TaskiqDepends, TaskiqMessage, TaskiqResult
from taskiq.kicker import AsyncKicker

from brokers import broker
from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL, JobFailure, JobLifecycleMiddleware, describe_error
from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore
from schemas.jobs import JobStatus
from service.logs import JsonFormatter
from service.submission import submit_job
from tests.support.jobs import wait_for_job


class PrinterOnFire(JobFailure):
    error_type = "printer_on_fire"
    retryable = True


@broker.task(task_name="tests.lifecycle.explode")
def explode(request: dict[str, str]) -> None:
    raise PrinterOnFire(request["reason"])


@broker.task(task_name="tests.lifecycle.crash")
async def crash(request: dict[str, str]) -> None:
    raise ZeroDivisionError("division by zero")


@broker.task(task_name="tests.lifecycle.bad_result")
async def bad_result(request: dict[str, str]) -> int:
    return 42


async def test_a_failing_job_records_why_and_the_worker_goes_on(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    failing = await submit_job(
        any_backend, explode, tenant="local", kind="qr", request={"reason": "smoke"}
    )
    job = await wait_for_job(client, failing.id)
    assert job["status"] == "failed"
    assert job["error"] == {"type": "printer_on_fire", "message": "smoke", "retryable": True}
    assert job["result"] is None
    after = await client.post("/v1/jobs/qr", json={"data": "still alive"})
    assert (await wait_for_job(client, after.json()["id"]))["status"] == "succeeded"


@pytest.mark.parametrize(
    ("task", "error_type"), [(crash, "zero_division_error"), (bad_result, "invalid_result")]
)
async def test_unexpected_errors_fail_the_job_with_a_named_type(
    client: httpx.AsyncClient,
    any_backend: Backend,
    task: AsyncTaskiqDecoratedTask[Any, Any],
    error_type: str,
) -> None:
    record = await submit_job(
        any_backend,
        task,
        tenant="local",
        kind="qr",
        request={},
    )
    job = await wait_for_job(client, record.id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == error_type
    assert job["error"]["retryable"] is False


def test_timeouts_are_retryable() -> None:
    assert describe_error(TimeoutError()).retryable


async def test_each_state_change_is_one_structured_log_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="offload.jobs")
    job_id = (await client.post("/v1/jobs/qr", json={"data": "logged"})).json()["id"]
    await wait_for_job(client, job_id)
    mine = [r for r in caplog.records if getattr(r, "job_id", None) == job_id]
    assert [r.status for r in mine] == ["queued", "running", "succeeded"]  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(mine[-1]))
    assert line["job_id"] == job_id
    assert line["status"] == "succeeded"
    assert line["message"] == f"job {job_id} succeeded"


async def test_a_job_cut_short_by_shutdown_is_not_recorded_as_failed(tmp_path: Path) -> None:
    store = SqliteJobStore(Database(tmp_path / "offload.db"))
    now = time.time()
    job = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 60, max_attempts=3,
    )  # fmt: skip
    await store.create(job)
    await store.begin_attempt(job.id, now)
    message = TaskiqMessage(
        task_id=job.id, task_name="t", labels={JOB_KIND_LABEL: "qr"}, args=[], kwargs={}
    )
    cancelled: TaskiqResult[None] = TaskiqResult(
        is_err=True, return_value=None, execution_time=0.1, error=asyncio.CancelledError()
    )
    await JobLifecycleMiddleware(store).post_execute(message, cancelled)
    record = await store.get(job.id)
    assert record is not None and record.status is JobStatus.RUNNING and record.error is None


@broker.task(task_name="tests.lifecycle.app_title")
async def app_title(
    request: dict[str, str], http: Annotated[Request, TaskiqDepends()]
) -> dict[str, Any]:
    return {"data": {"title": http.app.title}, "files": []}


async def test_tasks_can_reach_the_fastapi_app_without_per_message_overrides(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    record = await submit_job(any_backend, app_title, tenant="local", kind="qr", request={})
    job = await wait_for_job(client, record.id)
    assert job["result"]["data"] == {"title": "Offload"}
    assert any_backend.broker.dependency_overrides == {}


@broker.task(task_name="tests.lifecycle.plain")
async def plain(x: int) -> int:
    return x * 2


async def test_plain_tasks_keep_taskiq_results_and_jobs_keep_theirs_in_the_store(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    kicker: AsyncKicker[[int], int] = AsyncKicker("tests.lifecycle.plain", any_backend.broker, {})
    kicked = await kicker.kiq(21)
    assert (await kicked.wait_result(timeout=10)).return_value == 42
    job_id = (await client.post("/v1/jobs/qr", json={"data": "x"})).json()["id"]
    assert (await wait_for_job(client, job_id))["status"] == "succeeded"
    assert not await any_backend.broker.result_backend.is_result_ready(job_id)
