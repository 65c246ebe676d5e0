"""Stopping running work in real worker processes, on both backends, through the HTTP API.

Each worker runs one job at a time (OFFLOAD_WORKER_CONCURRENCY=1, --max-async-tasks 1), so
a second job queued behind a stopped one shows whether the stopped job's slot was freed.
The API runs in the test process (without a worker of its own) on the workers' backend.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from brokers.factory import Backend, build_backend
from schemas.jobs import JobOptions
from service.app import create_app
from service.settings import Settings
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.support.jobs import wait_for_job
from tests.support.pids import wait_for_pid, wait_gone
from tests.support.processes import BIN_DIR, TASKIQ_LISTENING, Proc, Processes, job_log_line
from tests.support.redis_server import RedisServer
from tests.support.stop_tasks import cpu_spin, pool_whoami, silent_sleep, sync_sleep
from tests.system.test_redis_processes import WORKER_DIED, DurableRedisServer

pytestmark = pytest.mark.slow

GRACE_SECONDS = 1.0
LEASE_SECONDS = 2.0


@dataclass
class Stack:
    processes: Processes
    backend: Backend
    client: httpx.AsyncClient

    def worker(self, name: str = "worker", *options: str) -> Proc:
        argv = [str(BIN_DIR / "taskiq"), "worker", "brokers:broker", "tasks"]
        argv += ["tests.support.stop_tasks", "--workers", "1", "--max-async-tasks", "1"]
        argv += options
        proc = self.processes.start(name, argv)
        self.processes.wait_for_log(proc, TASKIQ_LISTENING)
        return proc

    async def submit(self, task: Any, request: dict[str, Any], **options: Any) -> str:
        accepted = await submit(
            self.backend,
            QR_KIND,
            task=task,
            tenant="local",
            request=request,
            options=JobOptions(**options),
        )
        return accepted.job.id

    async def cancel(self, job_id: str) -> httpx.Response:
        return await self.client.post(f"/v1/jobs/{job_id}/cancel")

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def stack(processes: Processes, redis_url: str | None) -> AsyncIterator[Stack]:
    settings: dict[str, str] = {
        "OFFLOAD_WORKER_CONCURRENCY": "1",
        "OFFLOAD_CANCEL_GRACE_SECONDS": str(GRACE_SECONDS),
        "OFFLOAD_LEASE_SECONDS": str(LEASE_SECONDS),
        "OFFLOAD_CPU_WORKERS": "1",
    }
    if redis_url is not None:
        settings["OFFLOAD_BROKER_URL"] = redis_url
        settings["OFFLOAD_REDIS_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    processes.settings.update(settings)
    backend = build_backend(
        Settings(
            data_dir=processes.data_dir,
            broker_url=settings.get("OFFLOAD_BROKER_URL"),
            redis_prefix=settings.get("OFFLOAD_REDIS_PREFIX", "offload"),
            lease_seconds=LEASE_SECONDS,
        )
    )
    app = create_app(backend, embedded_worker=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            base = "http://offload.test"
            async with httpx.AsyncClient(transport=transport, base_url=base) as http:
                yield Stack(processes, backend, http)
    finally:
        await backend.close()


@pytest.fixture(params=["sqlite", "redis"])
async def system(request: pytest.FixtureRequest, processes: Processes) -> AsyncIterator[Stack]:
    url = None if request.param == "sqlite" else request.getfixturevalue("redis_server").url
    async with stack(processes, url) as built:
        yield built


async def test_cancel_stops_a_silent_async_job_and_its_slot_takes_the_next(system: Stack) -> None:
    worker = system.worker()
    stuck = await system.submit(silent_sleep, {"seconds": 600})
    await wait_for_job(system.client, stuck, {"running"})
    behind = await system.submit(silent_sleep, {"seconds": 0})
    await asyncio.sleep(0.5)
    assert (await system.job(behind))["status"] == "queued", "the worker had a second slot"

    asked = time.monotonic()
    response = await system.cancel(stuck)
    assert response.status_code == 202, response.text
    job = await wait_for_job(system.client, stuck, timeout=10)
    took = time.monotonic() - asked
    system.processes.check(job["status"] == "cancelled", f"not cancelled: {job}")
    assert job["finished_at"] is not None and job["error"] is None
    after = await wait_for_job(system.client, behind, timeout=10)
    system.processes.check(after["status"] == "succeeded", f"the next job: {after}")
    assert worker.alive()
    assert job_log_line(stuck, "running (cancel asked; stopping it)") in worker.log()
    assert job_log_line(stuck, "cancelled") in worker.log()
    print(f"cancel to cancelled: {took * 1000:.0f} ms")  # noqa: T201 (read with -s)


async def test_cancel_kills_a_cpu_step_after_the_grace_period_and_the_pool_goes_on(
    system: Stack, tmp_path: Path
) -> None:
    worker = system.worker()
    pid_file = tmp_path / "spin.pid"
    spinning = await system.submit(cpu_spin, {"pid_file": str(pid_file)})
    pid = await wait_for_pid(pid_file)
    behind = await system.submit(pool_whoami, {})

    asked = time.monotonic()
    assert (await system.cancel(spinning)).status_code == 202
    job = await wait_for_job(system.client, spinning, timeout=20)
    waited = time.monotonic() - asked
    system.processes.check(job["status"] == "cancelled", f"not cancelled: {job}")
    assert waited >= GRACE_SECONDS, f"stopped {waited:.2f} s after the cancel, within its grace"
    await wait_gone(pid)

    after = await wait_for_job(system.client, behind, timeout=20)
    system.processes.check(after["status"] == "succeeded", f"the next job: {after}")
    assert after["result"]["data"]["pid"] != pid
    assert after["result"]["data"]["offload_modules"] == []
    assert worker.alive()
    print(f"cancel to cancelled, grace {GRACE_SECONDS:g} s: {waited * 1000:.0f} ms")  # noqa: T201


@pytest.mark.parametrize("work", ["async", "cpu", "sync"])
async def test_a_job_over_its_timeout_fails_as_timeout_and_frees_its_slot(
    system: Stack, work: str, tmp_path: Path
) -> None:
    worker = system.worker()
    pid_file = tmp_path / "spin.pid"
    chosen: dict[str, tuple[Any, dict[str, Any]]] = {
        "async": (silent_sleep, {"seconds": 600}),
        "cpu": (cpu_spin, {"pid_file": str(pid_file)}),
        "sync": (sync_sleep, {"seconds": 30}),
    }
    task, request = chosen[work]
    over = await system.submit(task, request, timeout_s=1.0, max_attempts=1)
    await wait_for_job(system.client, over, {"running"})
    behind = await system.submit(silent_sleep, {"seconds": 0})

    job = await wait_for_job(system.client, over, timeout=15)
    system.processes.check(job["status"] == "failed", f"not failed: {job}")
    assert job["error"]["type"] == "timeout" and job["error"]["retryable"] is True, job
    after = await wait_for_job(system.client, behind, timeout=10)
    # For the sync function the slot is free while its thread still sleeps (nothing can
    # stop a thread): the next job ran before the function returned.
    system.processes.check(after["status"] == "succeeded", f"the next job: {after}")
    if work == "cpu":
        await wait_gone(await wait_for_pid(pid_file))
    assert worker.alive()


async def test_a_job_cancelled_between_two_attempts_never_runs_again(system: Stack) -> None:
    """Its worker is killed mid-job; the cancel comes while no one runs it; the next worker
    that is handed it (after its lease) drops it as cancelled instead of a second attempt."""
    first = system.worker("first")
    job_id = await system.submit(silent_sleep, {"seconds": 600})
    await wait_for_job(system.client, job_id, {"running"})
    system.processes.kill(first)
    response = await system.cancel(job_id)
    assert response.status_code == 202, response.text  # still marked running: its lease holds

    second = system.worker("second")
    job = await wait_for_job(system.client, job_id, timeout=LEASE_SECONDS * 3 + 20)
    system.processes.check(job["status"] == "cancelled", f"not cancelled: {job}")
    assert job["attempts"] == 1, job
    assert job_log_line(job_id, "running") not in second.log()
    assert second.alive()


async def test_a_cpu_step_cut_short_by_a_shutdown_is_handed_back_not_failed(
    system: Stack, tmp_path: Path
) -> None:
    """SIGTERM still hands running jobs back (they run again), CPU steps included: the
    pool's process is killed with the worker, and the job is neither failed nor cancelled."""
    worker = system.worker("worker", "--wait-tasks-timeout", "0.5")
    pid_file = tmp_path / "spin.pid"
    job_id = await system.submit(cpu_spin, {"pid_file": str(pid_file)})
    pid = await wait_for_pid(pid_file)
    system.processes.terminate(worker, timeout=30)
    await wait_gone(pid)
    job = await system.job(job_id)
    system.processes.check(job["status"] == "queued", f"not handed back: {job}")
    assert job["error"] is None and job["finished_at"] is None, job
    assert job_log_line(job_id, "failed") not in worker.log()
    assert job_log_line(job_id, "cancelled") not in worker.log()


async def test_a_pool_process_killed_from_outside_fails_its_step_not_the_worker(
    system: Stack, tmp_path: Path
) -> None:
    worker = system.worker()
    pid_file = tmp_path / "spin.pid"
    job_id = await system.submit(cpu_spin, {"pid_file": str(pid_file)}, max_attempts=1)
    os.kill(await wait_for_pid(pid_file), signal.SIGKILL)  # the OOM killer, say
    job = await wait_for_job(system.client, job_id, timeout=15)
    system.processes.check(job["status"] == "failed", f"not failed: {job}")
    assert job["error"]["type"] == "cpu_step_died" and job["error"]["retryable"] is True
    after = await system.submit(pool_whoami, {})
    done = await wait_for_job(system.client, after, timeout=20)
    system.processes.check(done["status"] == "succeeded", f"the next job: {done}")
    assert worker.alive() and WORKER_DIED not in worker.log()


async def test_a_pool_process_dies_with_its_worker_even_on_kill_9(
    system: Stack, tmp_path: Path
) -> None:
    """Otherwise a step that never returns would spin on, orphaned, after the worker died."""
    manager = system.worker()
    system.processes.wait_for_log(manager, "Started process worker-0 with pid ")
    worker_pid = int(manager.log().split("Started process worker-0 with pid ")[1].split()[0])
    pid_file = tmp_path / "spin.pid"
    await system.submit(cpu_spin, {"pid_file": str(pid_file)})
    pool_pid = await wait_for_pid(pid_file)
    os.kill(worker_pid, signal.SIGKILL)  # the worker process alone, not its group
    await wait_gone(pool_pid)


async def test_the_watcher_outlives_a_redis_outage(processes: Processes, tmp_path: Path) -> None:
    redis: RedisServer = DurableRedisServer(tmp_path / "redis")
    redis.start()
    try:
        async with stack(processes, redis.url) as system:
            worker = system.worker()
            job_id = await system.submit(silent_sleep, {"seconds": 600})
            await wait_for_job(system.client, job_id, {"running"})
            await asyncio.to_thread(redis.stop)
            processes.wait_until(
                lambda: "cannot read cancel requests" in worker.log(),
                "the watcher to notice that Redis is away",
                timeout=15,
                watch=worker,
            )
            await asyncio.sleep(1.0)
            await asyncio.to_thread(redis.start)
            response = await system.cancel(job_id)
            assert response.status_code == 202, response.text
            job = await wait_for_job(system.client, job_id, timeout=20)
            processes.check(job["status"] == "cancelled", f"not cancelled: {job}")
            log = worker.log()
            # Stopped by the same watcher, in the same worker process, that saw Redis go.
            assert "reading cancel requests again" in log
            assert job_log_line(job_id, "running (cancel asked; stopping it)") in log
            assert WORKER_DIED not in log
            assert job["attempts"] == 1, job
    finally:
        redis.stop()
