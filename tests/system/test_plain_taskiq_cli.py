"""The plain TaskiQ CLI runs Offload: ``taskiq worker brokers:broker tasks`` and the scheduler."""

from __future__ import annotations

import asyncio
import io
import signal
import time

import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from schemas.jobs import JobStatus
from service.settings import Settings
from tests.support.processes import (
    SCHEDULER_STARTED,
    TASKIQ_LISTENING,
    InProcessJobs,
    Processes,
    job_log_line,
)

pytestmark = pytest.mark.slow

QR_TASK = "offload.qr.render"
PAYLOAD = "https://example.com/plain-taskiq-cli?job=1"
SCHEDULER_SECONDS = 2.0


async def test_a_qr_job_runs_on_a_plain_taskiq_worker_beside_the_plain_scheduler(
    processes: Processes,
) -> None:
    """Only ``taskiq worker brokers:broker tasks`` runs jobs here (no ``offload serve``), and
    ``taskiq scheduler scheduler:scheduler tasks`` runs beside it the whole time."""
    worker = processes.taskiq_worker("taskiq-worker", wait=False)
    scheduler = processes.taskiq_scheduler(wait=False)
    processes.wait_for_log(worker, TASKIQ_LISTENING)
    processes.wait_for_log(scheduler, SCHEDULER_STARTED)
    started_at = time.monotonic()

    options = {"data": PAYLOAD, "format": "png"}
    async with InProcessJobs(Settings(data_dir=processes.data_dir)) as jobs:
        job_id = await jobs.submit(QR_TASK, options, request=options)
        job = await jobs.wait_for(
            job_id, {JobStatus.SUCCEEDED, JobStatus.FAILED}, timeout=20, processes=processes
        )
        processes.check(job.status is JobStatus.SUCCEEDED, f"the job did not succeed: {job}")
        assert job.attempts == 1, job
        assert job.result is not None and job.result.data == {"format": "png"}, job
        [stored] = job.result.files
        path = jobs.backend.files.path(job_id, stored.id)
        assert path is not None, f"no result file for {stored}"

    content = path.read_bytes()
    assert len(content) == stored.size and stored.content_type == "image/png"
    symbols = decode(Image.open(io.BytesIO(content)))
    assert [bytes(symbol.data).decode() for symbol in symbols] == [PAYLOAD]
    assert job_log_line(job_id, "succeeded") in worker.log()

    # The scheduler has now run for a couple of seconds: still up, nothing went wrong.
    await asyncio.sleep(max(0.0, SCHEDULER_SECONDS - (time.monotonic() - started_at)))
    processes.check(scheduler.alive(), "the scheduler exited on its own")
    processes.check(
        "Traceback" not in scheduler.log() and "ERROR" not in scheduler.log(),
        "the scheduler logged errors",
    )
    # TaskiQ's scheduler installs no SIGTERM handler: the default action ends it at once.
    assert processes.terminate(scheduler, timeout=5) in (0, -signal.SIGTERM)
    # The worker's main process passes SIGTERM on to its worker process and waits for it.
    assert processes.terminate(worker, timeout=15) == 0
    processes.check("Traceback" not in worker.log(), "the worker logged a traceback")
