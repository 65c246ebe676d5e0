"""Submitting a job: store it, then hand it to the broker. The API and benchmarks use this."""

from __future__ import annotations

import logging
import time
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL, log_job
from schemas.jobs import JobKind
from service.errors import BackendUnavailableError

logger = logging.getLogger(__name__)

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
    try:
        await backend.store.create(job)
    except backend.unavailable_errors as error:
        raise BackendUnavailableError(f"could not store the job: {error}") from error
    try:
        await (
            task.kicker()
            .with_task_id(job.id)
            .with_labels(**{JOB_KIND_LABEL: kind.value})
            .kiq(request)
        )
    except backend.unavailable_errors as error:
        await _forget(backend, job.id)
        raise BackendUnavailableError(f"could not queue the job: {error}") from error
    log_job(job.id, "queued", kind=kind.value, tenant=tenant)
    return job


async def _forget(backend: Backend, job_id: str) -> None:
    try:
        await backend.store.discard(job_id)
    except backend.unavailable_errors:
        logger.warning("job %s was stored but not queued, and could not be removed", job_id)
