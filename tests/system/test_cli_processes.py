"""``offload serve`` and ``offload worker`` as an operator runs them: start-up, logs, exit."""

from __future__ import annotations

import json
import re

import pytest

from schemas.jobs import JobStatus
from service.settings import Settings
from tests.support.processes import (
    OFFLOAD_WORKER_READY,
    SCHEDULER_STARTED,
    InProcessJobs,
    Processes,
    job_log_line,
)

pytestmark = pytest.mark.slow

SHUTDOWN_COMPLETE = "Application shutdown complete."
READY_LINE = re.compile(
    r"offload worker ready: worker-\d+ \(pid \d+\) of (\d+) processes, (\d+) jobs at once, "
    r"backend (sqlite|redis)"
)


def test_serve_exits_0_after_a_clean_sigterm(processes: Processes) -> None:
    serve = processes.serve()
    returncode = processes.terminate(serve, timeout=20)
    processes.check(SHUTDOWN_COMPLETE in serve.log(), "serve did not shut down cleanly")
    processes.check(returncode == 0, f"serve exited with {returncode} after a clean shutdown")


def test_the_scheduler_shuts_down_cleanly_and_exits_0_on_sigterm(processes: Processes) -> None:
    scheduler = processes.start("scheduler", [str(processes.bin_dir / "offload"), "scheduler"])
    processes.wait_for_log(scheduler, SCHEDULER_STARTED)
    returncode = processes.terminate(scheduler, timeout=20)
    processes.check("Scheduler shut down" in scheduler.log(), "the scheduler did not shut down")
    processes.check(returncode == 0, f"the scheduler exited with {returncode} after SIGTERM")


async def test_each_worker_process_says_once_when_it_takes_jobs(processes: Processes) -> None:
    worker = processes.offload_worker(
        "worker", "--processes", "2", wait=False, OFFLOAD_WORKER_CONCURRENCY="3"
    )
    processes.wait_until(
        lambda: worker.log().count(OFFLOAD_WORKER_READY) == 2,
        "two ready lines",
        timeout=30,
        watch=worker,
    )
    ready = READY_LINE.findall(worker.log())
    processes.check(ready == [("2", "3", "sqlite")] * 2, f"ready lines say {ready}")

    settings = Settings(data_dir=processes.data_dir)
    async with InProcessJobs(settings) as jobs:
        job_id = await jobs.submit("offload.qr.render", {"data": "ready", "format": "svg"})
        job = await jobs.wait_for(job_id, {JobStatus.SUCCEEDED}, timeout=20, processes=processes)
    assert job_log_line(job.id, "succeeded") in worker.log()
    returncode = processes.terminate(worker, timeout=30)
    processes.check(returncode == 0, f"the worker exited with {returncode} after SIGTERM")


def test_json_logs_are_one_plain_object_a_line_at_any_level_spelling(
    processes: Processes,
) -> None:
    serve = processes.serve(OFFLOAD_LOG_FORMAT="json", OFFLOAD_LOG_LEVEL="debug")
    processes.terminate(serve, timeout=20)
    lines = serve.log().splitlines()
    records = []
    for line in lines:
        processes.check("\x1b" not in line and "\\u001b" not in line, f"escape in {line!r}")
        records.append(json.loads(line))
    assert any(record["level"] == "DEBUG" for record in records), lines
    running = [record for record in records if "Uvicorn running on" in record["message"]]
    assert running, lines
    assert all("color_message" not in record for record in records), running
