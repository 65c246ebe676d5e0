"""Stopping running jobs that reach no checkpoint: one watcher per worker process.

TaskiQ runs each message in an asyncio task of its own, and calls ``pre_execute`` from that
very task (taskiq/receiver/receiver.py, ``Receiver.callback`` then ``run_task``), so the
task seen there is the one to cancel. While this process runs jobs, one loop reads the
store every ``poll_seconds`` for all of their ids at once and cancels the task of each job
whose cancel was asked:

- async work is cancelled at once;
- a job inside a CPU step (``JobAttempt.run_cpu``) gets ``grace_seconds`` to finish it and
  reach a checkpoint; then its task is cancelled, which kills the pool process.

The receiver catches the CancelledError as the task's outcome and frees its slot; this
middleware's ``post_execute`` marks such a job with :data:`STOPPED_LABEL`, so the lifecycle
middleware records it ``cancelled`` rather than handing it back as it does when a shutdown
cuts a job short. A job that returns before its cancel reaches it keeps its result.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from brokers.background import stop_task
from brokers.contract import JobStore
from brokers.cpu_pool import CpuPool
from brokers.lifecycle import FENCE_LABEL, JOB_KIND_LABEL, STOPPED_LABEL, log_job

logger = logging.getLogger(__name__)

T = TypeVar("T")

RESEND_SECONDS = 2.0
"""A cancel not acted on after this long is sent again: on Python 3.11 asyncio.wait_for
(used by redis-py) can swallow a cancel that lands as its inner future finishes (gh-86296).
Only a task still inside its function can be that late, so a resend never reaches the
receiver's own code after the function returned."""


@dataclass
class _Running:
    task: asyncio.Task[Any]
    cpu_steps: int = 0
    cancel_seen_at: float | None = None
    sends: int = 0
    last_sent_at: float = 0.0


class JobStopper(TaskiqMiddleware):
    """Tracks the jobs this process runs, stops those cancelled, and owns the CPU pool."""

    def __init__(
        self,
        store: JobStore,
        *,
        poll_seconds: float,
        grace_seconds: float,
        cpu_workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.store = store
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.cpu = CpuPool(cpu_workers)
        self._running: dict[str, _Running] = {}
        self._work = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._failing = False

    # -- the receiver's hooks -----------------------------------------------------------

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        task = asyncio.current_task()
        if task is not None and JOB_KIND_LABEL in message.labels and FENCE_LABEL in message.labels:
            self._ensure_watching()
            self._running[message.task_id] = _Running(task)
            self._work.set()
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        # Synchronous and first (middlewares run in reverse here): from now on no cancel
        # can reach this task, which is back in the receiver's own code.
        running = self._running.get(message.task_id)
        if running is None or running.task is not asyncio.current_task():
            return  # (a later delivery of the same job in this process: not this one's)
        del self._running[message.task_id]
        if running.sends == 0:
            return
        message.labels[STOPPED_LABEL] = "cancelled"
        for _ in range(running.sends):
            running.task.uncancel()

    def startup(self) -> None:
        self.cpu.reopen()

    async def shutdown(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.get_loop() is asyncio.get_running_loop():
            await stop_task(watcher)  # asks again if redis-py swallowed the cancel
        await asyncio.to_thread(self.cpu.close)

    # -- CPU steps ------------------------------------------------------------------------

    async def run_cpu(self, job_id: str | None, fn: Callable[..., T], *args: Any) -> T:
        running = None if job_id is None else self._running.get(job_id)
        if running is not None:
            running.cpu_steps += 1
        try:
            return await self.cpu.run(fn, *args)
        finally:
            if running is not None:
                running.cpu_steps -= 1

    # -- the watcher ----------------------------------------------------------------------

    def _ensure_watching(self) -> None:
        loop = asyncio.get_running_loop()
        watcher = self._watcher
        if watcher is not None and not watcher.done() and watcher.get_loop() is loop:
            return
        if watcher is not None and watcher.get_loop() is not loop:
            # Left over from another event loop (tests start the broker in several): its
            # jobs and its event belong to that loop.
            self._running = {
                job_id: job for job_id, job in self._running.items() if job.task.get_loop() is loop
            }
        self._work = asyncio.Event()
        # Started from inside a job's task: not with that job's context.
        self._watcher = asyncio.create_task(
            self._watch(), name="offload-cancel-watcher", context=contextvars.Context()
        )

    async def _watch(self) -> None:
        while True:
            if not self._running:
                self._work.clear()
                await self._work.wait()
            await asyncio.sleep(self.poll_seconds)
            job_ids = list(self._running)
            if not job_ids:
                continue
            try:
                requested = await self.store.cancels_requested(job_ids)
            except Exception as error:
                # The backend is away: the jobs run on (their own checkpoints fail or wait);
                # ask again next time, and say so once per outage.
                if not self._failing:
                    logger.warning("cannot read cancel requests (%r); will keep asking", error)
                self._failing = True
                continue
            if self._failing:
                logger.info("reading cancel requests again")
                self._failing = False
            self.act(requested)

    def act(self, requested: set[str]) -> None:
        """Stop the jobs among ``requested`` that are due to stop (see the module doc)."""
        now = self.clock()
        for job_id in requested:
            running = self._running.get(job_id)
            if running is None:
                continue
            if running.cancel_seen_at is None:
                running.cancel_seen_at = now
                if running.cpu_steps:
                    log_job(job_id, f"running (cancel asked; {self.grace_seconds:g} s to stop)")
            if running.cpu_steps and now < running.cancel_seen_at + self.grace_seconds:
                continue
            if running.sends and now < running.last_sent_at + RESEND_SECONDS:
                continue
            running.sends += 1
            running.last_sent_at = now
            running.task.cancel("offload: the job was cancelled")
            if running.sends == 1:
                log_job(job_id, "running (cancel asked; stopping it)")
