"""Stopping running work through the API, on both backends, with the in-process worker.

The real-process versions (a worker's slot freed, pool processes killed, Redis away) are in
tests/system/test_stopping.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokers import broker
from brokers.factory import Backend
from brokers.stopping import JobStopper
from schemas.jobs import JobOptions, JobStatus
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.support.jobs import store_job, wait_for_job
from tests.support.pids import wait_for_pid, wait_gone
from tests.support.stop_tasks import cpu_spin, silent_sleep, sync_sleep

released: dict[str, asyncio.Event] = {}


@broker.task(task_name="tests.stopping.wait_then_return")
async def wait_then_return(request: dict[str, str]) -> dict[str, Any]:
    """No checkpoint: waits until the test lets it go, then returns its result."""
    await released[request["key"]].wait()
    return {"data": {"finished": True}, "files": []}


@pytest.fixture
def stopper(any_backend: Backend) -> Iterator[JobStopper]:
    stopper = any_backend.stopper
    assert stopper is not None
    poll, grace = stopper.poll_seconds, stopper.grace_seconds
    yield stopper
    stopper.poll_seconds, stopper.grace_seconds = poll, grace


async def start(backend: Backend, task: Any, request: dict[str, Any], **options: Any) -> str:
    accepted = await submit(
        backend,
        QR_KIND,
        tenant="local",
        task=task,
        request=request,
        options=JobOptions(**options),
    )
    return accepted.job.id


async def test_a_silent_async_job_is_cancelled_without_a_checkpoint(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id = await start(any_backend, silent_sleep, {"seconds": 600})
    await wait_for_job(client, job_id, {"running"})
    response = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, job_id, timeout=10)
    assert job["status"] == "cancelled", job
    assert job["finished_at"] is not None and job["error"] is None and job["result"] is None
    assert job["attempts"] == 1


async def test_a_cpu_step_gets_the_grace_period_then_its_process_is_killed(
    client: httpx.AsyncClient, any_backend: Backend, stopper: JobStopper, tmp_path: Path
) -> None:
    stopper.grace_seconds = 1.0
    pid_file = tmp_path / "pid"
    job_id = await start(any_backend, cpu_spin, {"pid_file": str(pid_file)})
    pid = await wait_for_pid(pid_file)
    asked = time.monotonic()
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
    job = await wait_for_job(client, job_id, timeout=15)
    waited = time.monotonic() - asked
    assert job["status"] == "cancelled", job
    assert waited >= stopper.grace_seconds, f"killed after {waited:.2f} s, before the grace"
    await wait_gone(pid)


async def test_a_job_that_returns_before_its_cancel_is_seen_keeps_its_result(
    client: httpx.AsyncClient, any_backend: Backend, stopper: JobStopper
) -> None:
    """A cancel asks a running job to stop; one that finished first succeeded, and says it
    was asked (the work and its files exist: calling it cancelled would hide them)."""
    stopper.poll_seconds = 30.0  # the watcher looks only after the job has returned
    key = f"late-{time.monotonic_ns()}"
    released[key] = asyncio.Event()
    job_id = await start(any_backend, wait_then_return, {"key": key})
    await wait_for_job(client, job_id, {"running"})
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
    released[key].set()
    job = await wait_for_job(client, job_id, timeout=10)
    assert job["status"] == "succeeded", job
    assert job["cancel_requested"] is True
    assert job["result"]["data"] == {"finished": True}
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 409


async def test_an_async_job_over_its_timeout_fails_as_timeout(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id = await start(any_backend, silent_sleep, {"seconds": 600}, timeout_s=0.5, max_attempts=1)
    job = await wait_for_job(client, job_id, timeout=10)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "timeout" and job["error"]["retryable"] is True


async def test_a_cpu_step_over_its_timeout_is_killed_and_fails_as_timeout(
    client: httpx.AsyncClient, any_backend: Backend, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    job_id = await start(
        any_backend, cpu_spin, {"pid_file": str(pid_file)}, timeout_s=1.0, max_attempts=1
    )
    pid = await wait_for_pid(pid_file)
    job = await wait_for_job(client, job_id, timeout=15)
    assert job["status"] == "failed" and job["error"]["type"] == "timeout", job
    await wait_gone(pid)


async def test_a_plain_function_is_cancelled_and_freed_though_its_thread_runs_on(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    """Its thread cannot be stopped, but the job ends cancelled and its slot is free."""
    job_id = await start(any_backend, sync_sleep, {"seconds": 8})
    await wait_for_job(client, job_id, {"running"})
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code == 202
    job = await wait_for_job(client, job_id, timeout=6)  # before the function returns
    assert job["status"] == "cancelled", job


async def test_a_job_waiting_between_two_attempts_is_cancelled_at_once(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    """A job ``retrying`` (its last attempt failed, the next one not yet due) runs nowhere:
    it is cancelled on the spot and never runs again."""
    waiting = await store_job(any_backend, status=JobStatus.RETRYING)
    response = await client.post(f"/v1/jobs/{waiting.id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]
