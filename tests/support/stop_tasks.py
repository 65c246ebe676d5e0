"""Tasks that never reach a checkpoint, for the cancel and timeout tests.

``taskiq worker brokers:broker tasks tests.support.stop_tasks`` runs them in real processes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from brokers import broker
from tasks.deps import AttemptDep
from tests.support.cpu_work import spin_forever, whoami

SILENT_SLEEP = "tests.stop.silent_sleep"
CPU_SPIN = "tests.stop.cpu_spin"
SYNC_SLEEP = "tests.stop.sync_sleep"
POOL_WHOAMI = "tests.stop.pool_whoami"


@broker.task(task_name=SILENT_SLEEP)
async def silent_sleep(request: dict[str, Any]) -> dict[str, Any]:
    """Await for ``seconds`` with no checkpoint."""
    await asyncio.sleep(float(request["seconds"]))
    return {"data": {"slept": request["seconds"]}, "files": []}


@broker.task(task_name=CPU_SPIN)
async def cpu_spin(request: dict[str, Any], attempt: AttemptDep) -> dict[str, Any]:
    """A CPU step that never returns (its pool process's pid goes to ``pid_file``)."""
    await attempt.run_cpu(spin_forever, str(request["pid_file"]))
    return {"data": {}, "files": []}


@broker.task(task_name=SYNC_SLEEP)
def sync_sleep(request: dict[str, Any]) -> dict[str, Any]:
    """A plain function: TaskiQ runs it in its thread pool, where nothing can stop it."""
    time.sleep(float(request["seconds"]))
    return {"data": {"slept": request["seconds"]}, "files": []}


@broker.task(task_name=POOL_WHOAMI)
async def pool_whoami(request: dict[str, Any], attempt: AttemptDep) -> dict[str, Any]:
    return {"data": await attempt.run_cpu(whoami), "files": []}
