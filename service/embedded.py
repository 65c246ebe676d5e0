"""Worker and scheduler inside the API process, for the embedded default.

TaskiQ's ``run_receiver_task`` would mark the broker as a worker process, and
taskiq-fastapi would then build a second app; so the broker is started by the lifespan,
the receiver runs without its own startup, and the dependency context is filled in here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from taskiq.acks import AcknowledgeType
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq_fastapi import populate_dependency_context

from brokers.dependencies import freeze_dependency_overrides
from brokers.factory import Backend
from scheduler import build_scheduler
from service.webhooks.dispatcher import WebhookDispatcher, WebhookPolicy

logger = logging.getLogger(__name__)


RESTART_PAUSE_SECONDS = (0.5, 10.0)
"""First and longest pause before the worker is started again after it failed."""
FAILURE_SHOWN_SECONDS = 30.0
"""How long /readyz reports a worker failure after the worker was started again."""


class EmbeddedRuntime:
    def __init__(self, backend: Backend, app: FastAPI) -> None:
        self.backend = backend
        self.app = app
        self._finish = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._webhooks: WebhookDispatcher | None = None
        self._failure: tuple[float, str] | None = None
        """When and why the worker last stopped and was started again."""

    def checks(self) -> dict[str, str]:
        """The embedded parts' health, for /readyz."""
        checks = {"worker": "ok"}
        if self._failure is not None:
            at, why = self._failure
            if time.monotonic() - at < FAILURE_SHOWN_SECONDS:
                checks["worker"] = f"failed {time.monotonic() - at:.0f} s ago and restarted: {why}"
        scheduler = self._scheduler
        if scheduler is not None and scheduler.done() and not self._finish.is_set():
            checks["scheduler"] = "stopped"
        return checks

    async def start(self) -> None:
        settings = self.backend.settings
        broker = self.backend.broker
        populate_dependency_context(broker, self.app)
        freeze_dependency_overrides(broker)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.worker_concurrency, thread_name_prefix="offload-job"
        )
        self._worker = asyncio.create_task(self._run_worker(), name="offload-worker")
        self._worker.add_done_callback(_report_crash)
        scheduler = build_scheduler(self.backend)
        for source in scheduler.sources:
            await source.startup()
        self._scheduler = asyncio.create_task(
            SchedulerLoop(scheduler).run(), name="offload-scheduler"
        )
        self._scheduler.add_done_callback(_report_crash)
        if self.backend.webhooks is not None:
            self._webhooks = WebhookDispatcher(self.backend, WebhookPolicy.of(settings))
            self._webhooks.start()
        logger.info(
            "embedded worker (%d at once) and scheduler running", settings.worker_concurrency
        )

    def _receiver(self) -> Receiver:
        settings = self.backend.settings
        return Receiver(
            self.backend.broker,
            executor=self._executor,
            max_async_tasks=settings.worker_concurrency,
            run_startup=False,
            ack_type=AcknowledgeType.WHEN_SAVED,
            wait_tasks_timeout=settings.shutdown_grace_seconds,
        )

    async def _run_worker(self) -> None:
        """Run the receiver; if it fails, say so (``/readyz``) and start it again.

        The broker and its heartbeat carry on meanwhile: jobs already running finish and are
        acknowledged, and the rows it leased are handed out by the next receiver.
        """
        first, longest = RESTART_PAUSE_SECONDS
        pause = first
        while not self._finish.is_set():
            try:
                await self._receiver().listen(self._finish)
            except Exception as error:
                self._failure = (time.monotonic(), _describe(error))
                logger.exception("embedded worker stopped; starting it again in %.1f s", pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
                continue
            return

    async def stop(self) -> None:
        """Let running jobs finish within the grace time; the broker then releases the rest."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        if self._webhooks is not None:
            await self._webhooks.stop()
        self._finish.set()
        if self._worker is not None:
            grace = self.backend.settings.shutdown_grace_seconds + 1.0
            try:
                await asyncio.wait_for(self._worker, grace)
            except (TimeoutError, asyncio.CancelledError):
                logger.warning("jobs still running after %.0f s; releasing them", grace)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=False)


def _describe(error: BaseException) -> str:
    """The innermost error, unwrapped from the task groups that carried it."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s stopped", task.get_name(), exc_info=task.exception())
