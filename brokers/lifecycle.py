"""The worker side of a job's life: a TaskiQ middleware that records each outcome.

The broker moves a job to ``running`` when it hands the message out to run, and tells this
middleware the attempt it admitted (see :class:`brokers.contract.HeldDeliveries`). This
middleware records how that attempt ended, fenced by the attempt number, and writes one log
line per state change.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from brokers.contract import HeldDeliveries, JobStore
from schemas.jobs import JobError, JobResult

logger = logging.getLogger("offload.jobs")

JOB_KIND_LABEL = "offload_kind"
ATTEMPT_LABEL = "offload_attempt"
"""Set on a job's message when it starts: the attempt that runs it (its fencing token)."""

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class JobFailure(Exception):
    """Base of the errors a task raises on purpose: a stable type and whether to retry."""

    error_type = "job_failed"
    retryable = False


class AttemptSuperseded(JobFailure):
    """This attempt no longer holds its job (another worker took it over): it writes nothing."""

    error_type = "attempt_superseded"
    retryable = True


def describe_error(error: BaseException) -> JobError:
    if isinstance(error, JobFailure):
        return JobError(type=error.error_type, message=str(error), retryable=error.retryable)
    if isinstance(error, TimeoutError):
        return JobError(type="timeout", message="the job ran past its time limit", retryable=True)
    if is_out_of_space(error):
        return JobError(type="storage_full", message=str(error), retryable=True)
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()
    return JobError(type=name, message=str(error) or type(error).__name__, retryable=False)


def is_out_of_space(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return True
    return isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error)


def log_job(job_id: str, status: str, **fields: Any) -> None:
    logger.info("job %s %s", job_id, status, extra={"job_id": job_id, "status": status, **fields})


class JobLifecycleMiddleware(TaskiqMiddleware):
    def __init__(
        self,
        store: JobStore,
        clock: Callable[[], float] = time.time,
        unavailable: tuple[type[Exception], ...] = (),
        record_for_seconds: float = 60.0,
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.unavailable = unavailable
        self.record_for_seconds = record_for_seconds

    @property
    def deliveries(self) -> HeldDeliveries | None:
        broker = getattr(self, "broker", None)
        return broker if isinstance(broker, HeldDeliveries) else None

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if JOB_KIND_LABEL in message.labels:
            deliveries = self.deliveries
            attempt = None if deliveries is None else deliveries.attempt_of(message.task_id)
            if attempt is not None:
                message.labels[ATTEMPT_LABEL] = attempt
            log_job(
                message.task_id, "running", kind=message.labels[JOB_KIND_LABEL], attempt=attempt
            )
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        if JOB_KIND_LABEL not in message.labels:
            return
        job_id = message.task_id
        attempt = message.labels.get(ATTEMPT_LABEL)
        if attempt is None:
            logger.error("job %s ran without an admitted attempt; nothing recorded", job_id)
            return
        deliveries = self.deliveries
        if isinstance(result.error, asyncio.CancelledError):
            # Cut short (shutdown, or the task's own cancel), not failed: it runs again.
            if deliveries is not None:
                await self._try(lambda: deliveries.hand_back(job_id))
            log_job(job_id, "queued", reason="interrupted")
            return
        outcome: JobResult | None = None
        error: JobError | None = None
        if result.is_err and result.error is not None:
            error = describe_error(result.error)
        else:
            try:
                outcome = JobResult.model_validate(result.return_value)
            except ValidationError as invalid:
                error = JobError(type="invalid_result", message=str(invalid), retryable=False)
        if deliveries is not None and error is not None and self._not_the_jobs_fault(result):
            # A full disk or an unreachable backend: let the job come back after its lease,
            # when space may be free and the backend back, instead of failing it.
            deliveries.abandon(job_id)
            log_job(job_id, f"running ({error.type}; delivered again after its lease)")
            return
        status = "failed" if error else "succeeded"
        recorded = await self._try(
            lambda: self.store.finish(
                job_id, int(attempt), self.clock(), result=outcome, error=error
            )
        )
        if recorded is None:
            if deliveries is not None:
                deliveries.abandon(job_id)
            logger.error(
                "could not record job %s as %s for %.0f s; it runs again after its lease",
                job_id,
                status,
                self.record_for_seconds,
            )
        elif recorded:
            log_job(job_id, status, error=error.type if error else None, attempt=attempt)
        else:
            log_job(
                job_id,
                f"{status} (not recorded: attempt {attempt} no longer holds the job)",
                attempt=attempt,
            )

    def _not_the_jobs_fault(self, result: TaskiqResult[Any]) -> bool:
        failure = result.error
        return failure is not None and (
            is_out_of_space(failure) or isinstance(failure, self.unavailable)
        )

    async def _try(self, write: Callable[[], Any]) -> Any:
        """Run ``write``, waiting out a store outage for a bounded time; None if it never
        succeeded. If this raised, TaskiQ would never ack the message and the heartbeat would
        keep its lease, leaving the job running."""
        deadline = time.monotonic() + self.record_for_seconds
        pause = 0.1
        while True:
            try:
                return await write()
            except self.unavailable as failure:
                if time.monotonic() + pause > deadline:
                    return None
                logger.warning("could not write a job's state (%s); retrying", failure)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
