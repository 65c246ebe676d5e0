"""A worker killed with ``kill -9`` mid-job: another worker finishes the job, with no traffic."""

from __future__ import annotations

import time

import pytest

from schemas.jobs import JobStatus
from service.settings import Settings
from tests.support.processes import TASKIQ_LISTENING, InProcessJobs, Processes, job_log_line
from tests.support.slow_tasks import SLOW_TASK

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2.0
JOB_SECONDS = 3.0
SLACK_SECONDS = 5.0
SLOW_WORKER = ("tests.support.slow_tasks",)


async def test_a_job_whose_worker_is_killed_is_finished_by_another_worker(
    processes: Processes,
) -> None:
    processes.settings["OFFLOAD_LEASE_SECONDS"] = str(LEASE_SECONDS)
    settings = Settings(data_dir=processes.data_dir, lease_seconds=LEASE_SECONDS)
    # Both workers start (in parallel) before the job exists; whichever takes it is worker A
    # and gets killed, and the other one, idle and listening all along, is worker B.
    workers = [
        processes.taskiq_worker(name, *SLOW_WORKER, wait=False) for name in ("worker-1", "worker-2")
    ]
    for worker in workers:
        processes.wait_for_log(worker, TASKIQ_LISTENING)

    async with InProcessJobs(settings) as jobs:
        job_id = await jobs.submit(SLOW_TASK, seconds=JOB_SECONDS)
        running = await jobs.wait_for(job_id, {JobStatus.RUNNING}, timeout=10, processes=processes)
        assert running.attempts == 1, running
        worker_a, worker_b = processes.split_by_runner(job_id, workers)
        assert job_log_line(job_id, "running") not in worker_b.log()

        processes.kill(worker_a)
        killed_at = time.monotonic()
        still = await jobs.get(job_id)
        processes.check(
            still.status is JobStatus.RUNNING and still.attempts == 1,
            f"worker A should have been killed in the middle of the job: {still}",
        )

        deadline = 2 * LEASE_SECONDS + JOB_SECONDS + SLACK_SECONDS
        done = await jobs.wait_for(
            job_id, {JobStatus.SUCCEEDED, JobStatus.FAILED}, timeout=deadline, processes=processes
        )
        elapsed = time.monotonic() - killed_at

    processes.check(
        done.status is JobStatus.SUCCEEDED and done.attempts == 2,
        f"expected success on the second attempt, {elapsed:.1f} s after the kill: {done}",
    )
    assert done.result is not None and done.result.data == {"slept": JOB_SECONDS}, done
    assert elapsed >= JOB_SECONDS, "worker B cannot have run the whole job after the kill"
    log_b = worker_b.log()
    assert job_log_line(job_id, "running") in log_b
    assert job_log_line(job_id, "succeeded") in log_b
    assert job_log_line(job_id, "succeeded") not in worker_a.log()
    assert worker_b.alive()
