"""The worker side of a job's life: a TaskiQ middleware that records each outcome.

The broker moves a job to ``running`` when it hands the message out to run, and tells this
middleware the fencing token of the attempt it admitted (see
:class:`brokers.contract.HeldDeliveries`). This middleware records how that attempt ended,
fenced by the token, and writes one log line per state change.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import re
import sqlite3
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from brokers.contract import HeldDeliveries, JobStore
from brokers.progress import flush_progress
from brokers.retries import retry_due_at
from schemas.jobs import JobError, JobResult, JobStatus

logger = logging.getLogger("offload.jobs")

JOB_KIND_LABEL = "offload_kind"
FENCE_LABEL = "offload_fence"
"""Set on a job's message when it starts: the fencing token of the attempt that runs it."""
STOPPED_LABEL = "offload_stopped"
"""Set on a job's message when this process cancelled its task because a cancel was asked
(brokers/stopping.py): it ends cancelled, where a task cut short by a shutdown is handed back."""

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class JobFailure(Exception):
    """Base of the errors a task raises on purpose: a stable type and whether to retry."""

    error_type = "job_failed"
    retryable = False


class AttemptSuperseded(JobFailure):
    """This attempt no longer holds its job (another worker took it over): it writes nothing."""

    error_type = "attempt_superseded"
    retryable = True


class JobCancelled(JobFailure):
    """A cancel was asked for this job; it stops here (a checkpoint) and ends cancelled."""

    error_type = "cancelled"


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
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.unavailable = unavailable
        self.record_for_seconds = record_for_seconds
        self.rng = rng
        """Draws the backoff's jitter (tests pin it)."""

    @property
    def deliveries(self) -> HeldDeliveries | None:
        broker = getattr(self, "broker", None)
        return broker if isinstance(broker, HeldDeliveries) else None

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if JOB_KIND_LABEL in message.labels:
            deliveries = self.deliveries
            fence = None if deliveries is None else deliveries.fence_of(message.task_id)
            if fence is not None:
                message.labels[FENCE_LABEL] = fence
            log_job(message.task_id, "running", kind=message.labels[JOB_KIND_LABEL], fence=fence)
        return message

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        if JOB_KIND_LABEL not in message.labels:
            return
        job_id = message.task_id
        await self._try(lambda: flush_progress(job_id))
        fence = message.labels.get(FENCE_LABEL)
        if fence is None:
            # The broker lost the delivery before it started (another worker took it over);
            # the task could write nothing (tasks.deps.JobAttempt) and records nothing.
            logger.warning("job %s ran without holding it; nothing recorded", job_id)
            return
        deliveries = self.deliveries
        stopped = result.is_err and STOPPED_LABEL in message.labels
        if isinstance(result.error, asyncio.CancelledError) and not stopped:
            # Cut short (shutdown, or the task's own cancel), not failed: it runs again.
            if deliveries is not None:
                await self._try(lambda: deliveries.hand_back(job_id))
            log_job(job_id, "running (interrupted; delivered again at once)")
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
        if stopped:
            error = JobError(type=JobCancelled.error_type, message="cancelled", retryable=False)
        elif deliveries is not None and error is not None and self._not_the_jobs_fault(result):
            # A full disk or an unreachable backend: let the job come back after its lease,
            # when space may be free and the backend back, instead of failing it.
            deliveries.abandon(job_id)
            log_job(job_id, f"running ({error.type}; delivered again after its lease)")
            return
        final = JobStatus.FAILED if error else JobStatus.SUCCEEDED
        if error is not None and error.type == JobCancelled.error_type:
            final, error = JobStatus.CANCELLED, None
        recorded = await self._try(
            lambda: self._record(job_id, int(fence), message, outcome, error, final)
        )
        if recorded is None:
            if deliveries is not None:
                deliveries.abandon(job_id)
            logger.error(
                "could not record job %s as %s for %.0f s; it runs again after its lease",
                job_id,
                final.value,
                self.record_for_seconds,
            )
        elif recorded is not False:
            log_job(job_id, recorded.value, error=error.type if error else None, fence=fence)
        else:
            log_job(
                job_id,
                f"{final.value} (not recorded: this attempt no longer holds the job)",
                fence=fence,
            )

    async def _record(
        self,
        job_id: str,
        fence: int,
        message: TaskiqMessage,
        outcome: JobResult | None,
        error: JobError | None,
        final: JobStatus,
    ) -> JobStatus | Literal[False]:
        """Record the attempt's end: a retryable failure with attempts left is queued again
        after its backoff (only failures pay for the read this takes). False if the attempt
        no longer holds the job."""
        now = self.clock()
        if final is JobStatus.FAILED and error is not None and error.retryable:
            record = await self.store.get(job_id)
            due_at = None if record is None else retry_due_at(
                record, error, message.labels, now, self.rng
            )  # fmt: skip
            if due_at is not None:
                status = await self.store.schedule_retry(job_id, fence, now, error, due_at)
                return False if status is None else status
        done = await self.store.finish(
            job_id, fence, now, result=outcome, error=error, status=final
        )
        return final if done else False

    def _not_the_jobs_fault(self, result: TaskiqResult[Any]) -> bool:
        failure = result.error
        return failure is not None and (
            is_out_of_space(failure) or isinstance(failure, self.unavailable)
        )

    async def _try(self, write: Callable[[], Any]) -> Any:
        """Run ``write``, retrying any error (an outage, a Redis out of memory or read-only
        after a failover, a full disk) for a bounded time; None if it never succeeded. If this
        raised, TaskiQ would never ack the message while the heartbeat kept its lease, leaving
        the job running for good: the caller abandons the delivery instead."""
        deadline = time.monotonic() + self.record_for_seconds
        pause = 0.1
        while True:
            try:
                return await write()
            except Exception as failure:
                if time.monotonic() + pause > deadline:
                    logger.error("could not write a job's state (%r); giving up", failure)
                    return None
                logger.warning("could not write a job's state (%r); retrying", failure)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
