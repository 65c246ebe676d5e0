"""Submitting a job: store it and queue it, atomically. The API and benchmarks use this."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask

from brokers.contract import JobRecord, SubmitOutcomeUnknown, new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL, log_job
from schemas.jobs import JobError, JobKind
from service.errors import BackendUnavailableError, SubmitUnconfirmedError

DEFAULT_MAX_ATTEMPTS = 3
WITHDRAW_FOR_SECONDS = 600.0

SUBMIT_UNCONFIRMED = JobError(
    type="submit_unconfirmed",
    message="the backend did not confirm this job when it was submitted, so the client was "
    "told it was not queued; it was withdrawn",
    retryable=True,
)
_withdrawals: set[asyncio.Task[None]] = set()


async def submit_job(
    backend: Backend,
    task: AsyncTaskiqDecoratedTask[Any, Any],
    *,
    tenant: str,
    kind: JobKind,
    request: dict[str, Any],
) -> JobRecord:
    now = time.time()
    job = JobRecord(
        id=new_job_id(now),
        tenant=tenant,
        kind=kind.value,
        request=request,
        created_at=now,
        expires_at=now + backend.settings.job_ttl_seconds,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
    )
    # The task's own kicker carries its labels (timeout, ...). taskiq's kiq() would send the
    # message itself and hide errors in SendTaskError; building the message here lets the job
    # and its message land in one transaction. ``_prepare_message`` is the one private taskiq
    # name used (tests/brokers/test_taskiq_pins.py pins it).
    kicker = task.kicker().with_task_id(job.id).with_labels(**{JOB_KIND_LABEL: kind.value})
    message = backend.broker.formatter.dumps(kicker._prepare_message(request))
    job.message = message.message
    try:
        await backend.submitter.submit(job, message)
    except SubmitOutcomeUnknown as unknown:
        # The client hears 503 and will submit again: the job, if it was stored after all,
        # must not run as well. Withdraw it as soon as the backend answers.
        withdrawal = asyncio.create_task(_withdraw(backend, job.id))
        _withdrawals.add(withdrawal)
        withdrawal.add_done_callback(_withdrawals.discard)
        raise SubmitUnconfirmedError(job.id, str(unknown)) from unknown
    except backend.unavailable_errors as error:
        raise BackendUnavailableError(f"could not queue the job: {error}") from error
    log_job(job.id, "queued", kind=kind.value, tenant=tenant)
    return job


async def _withdraw(backend: Backend, job_id: str) -> None:
    deadline = time.monotonic() + WITHDRAW_FOR_SECONDS
    pause = 0.1
    while time.monotonic() < deadline:
        try:
            if await backend.store.withdraw(job_id, time.time(), SUBMIT_UNCONFIRMED):
                log_job(job_id, "failed", error=SUBMIT_UNCONFIRMED.type)
            return
        except backend.unavailable_errors:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)
