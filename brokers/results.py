"""TaskiQ result backends that leave Offload jobs' outcomes to the job store."""

from __future__ import annotations

from typing import Any, TypeVar

from taskiq import AsyncResultBackend, TaskiqResult
from taskiq.depends.progress_tracker import TaskProgress

from brokers.lifecycle import JOB_KIND_LABEL

_ReturnType = TypeVar("_ReturnType")


class JobOutcomesInStore(AsyncResultBackend[_ReturnType]):
    """Wraps a result backend; a job's outcome is already in the job store (written by the
    lifecycle middleware just before), so storing it twice is one write per job for nothing.
    Plain TaskiQ tasks (cron maintenance, ``.kiq()`` callers) keep their results as usual."""

    def __init__(self, inner: AsyncResultBackend[_ReturnType]) -> None:
        self.inner = inner

    async def startup(self) -> None:
        await self.inner.startup()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        if JOB_KIND_LABEL not in result.labels:
            await self.inner.set_result(task_id, result)

    async def is_result_ready(self, task_id: str) -> bool:
        return await self.inner.is_result_ready(task_id)

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        return await self.inner.get_result(task_id, with_logs)

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        await self.inner.set_progress(task_id, progress)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        return await self.inner.get_progress(task_id)
