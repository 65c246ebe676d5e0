"""A worker killed with ``kill -9`` while a job waits out its backoff: the retry lives in
the backend, not in the worker, so a new worker runs the next attempt. Both backends."""

from __future__ import annotations

import time
from typing import Any

import pytest

from schemas.jobs import JobStatus
from service.settings import Settings
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.support.flaky_tasks import slow_flaky
from tests.support.processes import InProcessJobs, Processes, job_log_line
from tests.system.test_redis_processes import redis, use_redis

pytestmark = pytest.mark.slow

SHARED_FIXTURES = (redis,)
FLAKY_WORKER = ("tests.support.flaky_tasks",)
KILL_WITHIN = 1.0
"""The backoff left must be longer than this for the kill to land inside it."""


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
async def test_a_job_in_backoff_runs_its_next_attempt_on_a_new_worker_after_a_kill(
    processes: Processes, request: pytest.FixtureRequest, engine: str
) -> None:
    if engine == "redis":
        settings = use_redis(processes, request.getfixturevalue("redis"))
    else:
        settings = Settings(data_dir=processes.data_dir)
    worker_a = processes.taskiq_worker("worker-a", *FLAKY_WORKER)
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED}
    async with InProcessJobs(settings) as jobs:
        # The wait is drawn from [0, 6 s]: a draw too short to kill the worker in is let
        # finish, and another job tried.
        for attempt in range(5):
            marker = processes.tmp_path / f"failed-once-{attempt}"
            accepted = await submit(
                jobs.backend, QR_KIND, tenant="local", task=slow_flaky,
                request={"marker": str(marker)},
            )  # fmt: skip
            job_id = accepted.job.id
            waiting = await jobs.wait_for(
                job_id, {JobStatus.RETRYING, *terminal}, timeout=20, processes=processes
            )
            due: Any = waiting.next_attempt_at
            if waiting.status is JobStatus.RETRYING and due - time.time() > KILL_WITHIN:
                break
            await jobs.wait_for(job_id, terminal, timeout=20, processes=processes)
        else:
            processes.fail("no backoff was long enough to kill the worker in")
        processes.kill(worker_a)
        still = await jobs.get(job_id)
        processes.check(
            still.status is JobStatus.RETRYING and still.attempts == 1,
            f"worker A should have died during the backoff: {still}",
        )

        worker_b = processes.taskiq_worker("worker-b", *FLAKY_WORKER)
        done = await jobs.wait_for(job_id, terminal, timeout=30, processes=processes)

    processes.check(
        done.status is JobStatus.SUCCEEDED and done.attempts == 2,
        f"expected success on the second attempt, by the new worker: {done}",
    )
    assert [error.attempt for error in done.attempt_errors] == [1]
    assert job_log_line(job_id, "succeeded") in worker_b.log()
    assert job_log_line(job_id, "retrying") in worker_a.log()
