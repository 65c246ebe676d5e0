"""Worker and scheduler inside the API process, for the embedded default.

TaskiQ's ``run_receiver_task`` would mark the broker as a worker process, and
taskiq-fastapi would then build a second app; so the broker is started by the lifespan,
the receiver runs without its own startup, and the dependency context is filled in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from taskiq.acks import AcknowledgeType
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq_fastapi import populate_dependency_context

from brokers.dependencies import freeze_dependency_overrides
from brokers.factory import Backend
from scheduler import build_scheduler

logger = logging.getLogger(__name__)


class EmbeddedRuntime:
    def __init__(self, backend: Backend, app: FastAPI) -> None:
        self.backend = backend
        self.app = app
        self._finish = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        settings = self.backend.settings
        broker = self.backend.broker
        populate_dependency_context(broker, self.app)
        freeze_dependency_overrides(broker)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.worker_concurrency, thread_name_prefix="offload-job"
        )
        receiver = Receiver(
            broker,
            executor=self._executor,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            ack_type=AcknowledgeType.WHEN_SAVED,
            wait_tasks_timeout=settings.shutdown_grace_seconds,
        )
        self._worker = asyncio.create_task(receiver.listen(self._finish), name="offload-worker")
        self._worker.add_done_callback(_report_crash)
        scheduler = build_scheduler(self.backend)
        for source in scheduler.sources:
            await source.startup()
        self._scheduler = asyncio.create_task(
            SchedulerLoop(scheduler).run(), name="offload-scheduler"
        )
        self._scheduler.add_done_callback(_report_crash)
        logger.info(
            "embedded worker (%d at once) and scheduler running", settings.worker_concurrency
        )

    async def stop(self) -> None:
        """Let running jobs finish within the grace time; the broker then releases the rest."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        self._finish.set()
        if self._worker is not None:
            grace = self.backend.settings.shutdown_grace_seconds + 1.0
            try:
                await asyncio.wait_for(self._worker, grace)
            except (TimeoutError, asyncio.CancelledError):
                logger.warning("jobs still running after %.0f s; releasing them", grace)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=False)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s stopped", task.get_name(), exc_info=task.exception())
