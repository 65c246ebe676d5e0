"""A task that reports progress on a timer, for event tests with a worker in another
process: ``taskiq worker brokers:broker tasks tests.support.event_tasks``."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers import broker
from tasks.deps import AttemptDep

STEPPED_TASK = "tests.events.stepped"


@broker.task(task_name=STEPPED_TASK)
async def stepped(request: dict[str, Any], attempt: AttemptDep) -> dict[str, Any]:
    """Report ``steps`` steps ``pause`` seconds apart (above the progress throttle)."""
    steps, pause = int(request["steps"]), float(request["pause"])
    for done in range(1, steps + 1):
        await asyncio.sleep(pause)
        await attempt.report(done, steps, f"step {done}")
    await asyncio.sleep(pause)
    return {"data": {"steps": steps}, "files": []}
