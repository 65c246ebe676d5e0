"""A task for system tests: ``taskiq worker brokers:broker tasks tests.support.slow_tasks``."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers import broker

SLOW_TASK = "tests.slow"


@broker.task(task_name=SLOW_TASK)
async def slow(seconds: float) -> dict[str, Any]:
    """Sleep, then return a job result (schemas.jobs.JobResult) with no files."""
    await asyncio.sleep(seconds)
    return {"data": {"slept": seconds}, "files": []}
