"""Submitting a job: store it and queue it, atomically. The API and benchmarks use this."""

from __future__ import annotations

import time
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask
from taskiq.kicker import AsyncKicker

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL, log_job
from schemas.jobs import JobKind
from service.errors import BackendUnavailableError

DEFAULT_MAX_ATTEMPTS = 3


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
    broker = backend.broker
    kicker: AsyncKicker[Any, Any] = AsyncKicker(
        task.task_name, broker, {JOB_KIND_LABEL: kind.value}
    ).with_task_id(job.id)
    # taskiq's kiq() wraps every failure in SendTaskError and can only send; building the
    # message ourselves lets the job row and the message land in one transaction.
    message = broker.formatter.dumps(kicker._prepare_message(request))
    try:
        await backend.submitter.submit(job, message)
    except backend.unavailable_errors as error:
        raise BackendUnavailableError(f"could not queue the job: {error}") from error
    log_job(job.id, "queued", kind=kind.value, tenant=tenant)
    return job
