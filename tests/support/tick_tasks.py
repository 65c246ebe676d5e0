"""A task for scheduler tests: ``taskiq worker brokers:broker tasks tests.support.tick_tasks``.

Each run appends one JSON line to a Redis list of the backend it ran on, so a test can count
runs exactly (Redis backend only).
"""

from __future__ import annotations

import json
import time

from brokers import broker
from tasks.deps import BackendDep, ContextDep

TICK_TASK = "tests.tick"


@broker.task(task_name=TICK_TASK)
async def record_tick(key: str, backend: BackendDep, context: ContextDep) -> None:
    """RPUSH ``{"task_id", "schedule_id", "at"}`` to ``key``."""
    if backend.redis is None:
        raise RuntimeError("tests.tick records runs in Redis; run it on the Redis backend")
    run = {
        "task_id": context.message.task_id,
        "schedule_id": context.message.labels.get("schedule_id"),
        "at": time.time(),
    }
    await backend.redis.rpush(key, json.dumps(run))
