"""The worker side of a job's life: a TaskiQ middleware that records each outcome.

The broker moves a job to ``running`` when it hands the message out (see
:meth:`brokers.contract.JobStore.begin_attempt`); this middleware records how the run
ended, at most once, and writes one log line per state change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from brokers.contract import JobStore
from schemas.jobs import JobError, JobResult

logger = logging.getLogger("offload.jobs")

JOB_KIND_LABEL = "offload_kind"


class JobFailure(Exception):
    """Base of the errors a task raises on purpose: a stable type and whether to retry."""

    error_type = "job_failed"
    retryable = False


def describe_error(error: BaseException) -> JobError:
    if isinstance(error, JobFailure):
        return JobError(type=error.error_type, message=str(error), retryable=error.retryable)
    if isinstance(error, TimeoutError):
        return JobError(type="timeout", message="the job ran past its time limit", retryable=True)
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()
    return JobError(type=name, message=str(error) or type(error).__name__, retryable=False)


def log_job(job_id: str, status: str, **fields: Any) -> None:
    logger.info("job %s %s", job_id, status, extra={"job_id": job_id, "status": status, **fields})


class JobLifecycleMiddleware(TaskiqMiddleware):
    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], float] = time.time,
        unavailable: tuple[type[Exception], ...] = (),
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.unavailable = unavailable

    async def _record(self, job_id: str, outcome: JobResult | None, error: JobError | None) -> bool:
        """Record the outcome, waiting out a store outage: if this raised, TaskiQ would never
        ack the message and the heartbeat would keep its lease, leaving the job running."""
        pause = 0.1
        while True:
            try:
                return await self.store.finish(job_id, self.clock(), result=outcome, error=error)
            except self.unavailable as failure:
                logger.warning("could not record job %s (%s); retrying", job_id, failure)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if JOB_KIND_LABEL in message.labels:
            log_job(message.task_id, "running", kind=message.labels[JOB_KIND_LABEL])
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        if JOB_KIND_LABEL not in message.labels:
            return
        if isinstance(result.error, asyncio.CancelledError):
            return  # stopped by shutdown, not failed: the broker hands the job back
        outcome: JobResult | None = None
        error: JobError | None = None
        if result.is_err and result.error is not None:
            error = describe_error(result.error)
        else:
            try:
                outcome = JobResult.model_validate(result.return_value)
            except ValidationError as invalid:
                error = JobError(type="invalid_result", message=str(invalid), retryable=False)
        recorded = await self._record(message.task_id, outcome, error)
        status = "failed" if error else "succeeded"
        if recorded:
            log_job(message.task_id, status, error=error.type if error else None)
        else:
            log_job(message.task_id, f"{status} (ignored: job was no longer running)")
