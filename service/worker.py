"""``offload worker``: TaskiQ's worker processes, each of which says when it takes jobs."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from typing import Any

from taskiq.acks import AcknowledgeType
from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import run_worker
from taskiq.receiver import Receiver

from service.settings import Settings, get_settings

logger = logging.getLogger("offload.worker")


class ReadyReceiver(Receiver):
    """TaskiQ's receiver, plus one log line once the broker is up and jobs are taken.

    TaskiQ's own "Listening started." is quieted (service.logs), and it names neither the
    process nor the backend.
    """

    def __init__(self, *args: Any, processes: str = "1", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processes = processes

    async def listen(self, finish_event: asyncio.Event) -> None:
        if self.run_startup:
            await self.broker.startup()
            self.run_startup = False
        if not finish_event.is_set():  # a SIGTERM during start-up: it will take no jobs
            self._log_ready()
        await super().listen(finish_event)

    def _log_ready(self) -> None:
        settings = get_settings()
        logger.info(
            "offload worker ready: %s (pid %d) of %s processes, %d jobs at once, backend %s",
            multiprocessing.current_process().name,
            os.getpid(),
            self.processes,
            settings.worker_concurrency,
            settings.backend,
        )


def run(processes: int, settings: Settings) -> int:
    """Run ``processes`` worker processes until SIGTERM; their exit status."""
    status = run_worker(
        WorkerArgs(
            broker="brokers:broker",
            modules=["tasks"],
            receiver=f"{__name__}:{ReadyReceiver.__name__}",
            receiver_arg=[("processes", str(processes))],
            configure_logging=False,
            workers=processes,
            max_async_tasks=settings.worker_concurrency,
            max_threadpool_threads=settings.worker_concurrency,
            ack_type=AcknowledgeType.WHEN_SAVED,
            wait_tasks_timeout=settings.shutdown_grace_seconds,
            shutdown_timeout=settings.shutdown_grace_seconds + 5,
        )
    )
    return status or 0
