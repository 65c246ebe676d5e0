"""The benchmark's tasks: they do no work, so what is left is the queue's and the job store's.

Loaded by the worker as ``taskiq worker brokers:broker tasks bench.noop_tasks`` (or
``python -m bench.offload_worker``); the benchmark imports it too, after pointing
``OFFLOAD_DATA_DIR`` at its own directory.
"""

from __future__ import annotations

import time
from typing import Any

from brokers import broker


@broker.task(task_name="bench.noop")
async def noop(request: Any = None) -> dict[str, Any]:
    """A job that does no work: what is left is the queue's and the job store's cost."""
    return {"data": None, "files": []}


@broker.task(task_name="bench.stamp")
async def stamp(request: Any = None) -> dict[str, Any]:
    """Like :func:`noop`, but the result records when the task body ran (``time.time()``),
    the moment raw TaskiQ's no-op records, so pickup can be compared like for like."""
    return {"data": {"ran_at": time.time()}, "files": []}
