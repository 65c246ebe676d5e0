"""Submitting a job: store it and queue it, atomically. The API and benchmarks use this."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from taskiq import AsyncTaskiqDecoratedTask

from brokers.contract import IdempotencyKey, JobRecord, SubmitOutcomeUnknown, new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL, log_job
from schemas.jobs import JobError, JobKind, JobOptions, Lane
from service.errors import (
    BackendUnavailableError,
    IdempotencyKeyReusedError,
    SubmitUnconfirmedError,
)

DEFAULT_MAX_ATTEMPTS = 3
WITHDRAW_FOR_SECONDS = 600.0

SUBMIT_UNCONFIRMED = JobError(
    type="submit_unconfirmed",
    message="the backend did not confirm this job when it was submitted, so the client was "
    "told it was not queued; it was withdrawn",
    retryable=True,
)
_withdrawals: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class Accepted:
    job: JobRecord
    created: bool
    """False when an earlier job with the same Idempotency-Key and body is answered."""


async def submit_job(
    backend: Backend,
    task: AsyncTaskiqDecoratedTask[Any, Any],
    *,
    tenant: str,
    kind: JobKind,
    request: dict[str, Any],
) -> JobRecord:
    accepted = await submit(backend, task, tenant=tenant, kind=kind, request=request)
    return accepted.job


async def submit(
    backend: Backend,
    task: AsyncTaskiqDecoratedTask[Any, Any],
    *,
    tenant: str,
    kind: JobKind,
    request: dict[str, Any],
    idempotency_key: str | None = None,
    options: JobOptions | None = None,
) -> Accepted:
    now = time.time()
    options = options or JobOptions()
    due_at = _due_at(options, now)
    job = JobRecord(
        id=new_job_id(now),
        tenant=tenant,
        kind=kind.value,
        request=request,
        created_at=now,
        expires_at=max(now, due_at or now) + backend.settings.job_ttl_seconds,
        max_attempts=options.max_attempts or DEFAULT_MAX_ATTEMPTS,
        lane=(options.lane or Lane.INTERACTIVE).value,
        due_at=due_at,
        timeout_s=options.timeout_s,
        callback_url=options.callback_url,
    )
    labels: dict[str, Any] = {JOB_KIND_LABEL: kind.value, "lane": job.lane}
    if due_at is not None:
        labels["delay"] = max(0.0, due_at - now)
    if job.timeout_s is not None:
        labels["timeout"] = job.timeout_s  # TaskiQ's own: bounds each attempt
    # The task's own kicker carries its labels (timeout, ...). taskiq's kiq() would send the
    # message itself and hide errors in SendTaskError; building the message here lets the job
    # and its message land in one transaction. ``_prepare_message`` is the one private taskiq
    # name used (tests/brokers/test_job_delivery.py pins it).
    kicker = task.kicker().with_task_id(job.id).with_labels(**labels)
    message = backend.broker.formatter.dumps(kicker._prepare_message(request))
    job.message = message.message
    key = None
    if idempotency_key is not None:
        key = IdempotencyKey(idempotency_key, fingerprint(kind, request, options))
    try:
        submitted = await backend.submitter.submit(job, message, key)
    except SubmitOutcomeUnknown as unknown:
        if key is None:
            # The client hears 503 and may submit again: the job, if it was stored after
            # all, should not run as well. Withdraw it as soon as the backend answers.
            withdrawal = asyncio.create_task(_withdraw(backend, job.id))
            _withdrawals.add(withdrawal)
            withdrawal.add_done_callback(_withdrawals.discard)
        # With a key, the client's retry with that key finds the job if it was stored.
        raise SubmitUnconfirmedError(job.id, str(unknown)) from unknown
    except backend.unavailable_errors as error:
        raise BackendUnavailableError(f"could not queue the job: {error}") from error
    if submitted.created:
        log_job(job.id, "queued", kind=kind.value, tenant=tenant)
        return Accepted(job, created=True)
    if key is None or submitted.fingerprint != key.fingerprint:
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key {idempotency_key!r} was first used with another request "
            f"(job {submitted.job_id})"
        )
    earlier = await backend.store.get(submitted.job_id)
    if earlier is None or earlier.tenant != tenant:
        raise BackendUnavailableError(f"job {submitted.job_id} vanished; try again")
    return Accepted(earlier, created=False)


def fingerprint(kind: JobKind, request: dict[str, Any], options: JobOptions) -> str:
    chosen = options.model_dump(mode="json", exclude_none=True)
    canonical = json.dumps([kind.value, request, chosen], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _due_at(options: JobOptions, now: float) -> float | None:
    if options.run_at is not None:
        return options.run_at.timestamp()
    if options.delay_s:
        return now + options.delay_s
    return None


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
