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
from brokers.retries import BACKOFF_BASE_LABEL, BACKOFF_CAP_LABEL
from schemas.jobs import JobError, JobOptions
from service.errors import (
    BackendUnavailableError,
    IdempotencyKeyReusedError,
    SubmitUnconfirmedError,
)
from tasks.kinds import DEFAULT_MAX_ATTEMPTS, Kind, find_kind

__all__ = ["DEFAULT_MAX_ATTEMPTS", "Accepted", "fingerprint", "submit", "submit_job"]

WITHDRAW_FOR_SECONDS = 600.0
LANE_LABEL = "lane"
DELAY_LABEL = "delay"
TIMEOUT_LABEL = "timeout"
"""TaskiQ's own: seconds one attempt may run."""

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
    kind: str | Kind[Any],
    request: dict[str, Any],
    options: JobOptions | None = None,
) -> JobRecord:
    """Queue ``task`` as a job of the declared ``kind`` (its name or declaration), with that
    kind's defaults: for benchmarks and tests that run a task of their own under a kind. The
    API submits each kind's own task."""
    declared = kind if isinstance(kind, Kind) else find_kind(kind)
    if declared is None:
        raise ValueError(f"no job kind {kind!r} is declared")
    accepted = await submit(
        backend, declared, tenant=tenant, request=request, options=options, task=task
    )
    return accepted.job


async def submit(
    backend: Backend,
    kind: Kind[Any],
    *,
    tenant: str,
    request: dict[str, Any],
    idempotency_key: str | None = None,
    options: JobOptions | None = None,
    task: AsyncTaskiqDecoratedTask[Any, Any] | None = None,
) -> Accepted:
    """Store the job and queue its message in one step; unset options take the kind's
    defaults. ``task`` (the kind's own unless given) is what the message runs."""
    now = time.time()
    task = task or kind.task
    options = options or JobOptions()
    due_at = _due_at(options, now)
    job = JobRecord(
        id=new_job_id(now),
        tenant=tenant,
        kind=kind.name,
        request=request,
        created_at=now,
        expires_at=max(now, due_at or now) + backend.settings.job_ttl_seconds,
        max_attempts=options.max_attempts or kind.max_attempts,
        lane=(options.lane or kind.lane).value,
        due_at=due_at,
        timeout_s=_timeout(options, kind, task),
        callback_url=options.callback_url,
    )
    labels: dict[str, Any] = {
        JOB_KIND_LABEL: kind.name,
        LANE_LABEL: job.lane,
        # A foreign task's own backoff (a test's or benchmark's, run under a kind) wins.
        BACKOFF_BASE_LABEL: task.labels.get(BACKOFF_BASE_LABEL, kind.backoff.base_s),
        BACKOFF_CAP_LABEL: task.labels.get(BACKOFF_CAP_LABEL, kind.backoff.cap_s),
    }
    if job.timeout_s is not None:
        labels[TIMEOUT_LABEL] = job.timeout_s
    if due_at is not None:
        labels[DELAY_LABEL] = max(0.0, due_at - now)
    # taskiq's kiq() would send the message itself and hide errors in SendTaskError; building
    # the message here lets the job and its message land in one transaction.
    # ``_prepare_message`` is the one private taskiq name used (tests/brokers/
    # test_job_delivery.py pins it).
    kicker = task.kicker().with_task_id(job.id).with_labels(**labels)
    message = backend.broker.formatter.dumps(kicker._prepare_message(request))
    job.message = message.message
    key = None
    if idempotency_key is not None:
        key = IdempotencyKey(idempotency_key, fingerprint(kind.name, request, options))
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
        log_job(job.id, "queued", kind=kind.name, tenant=tenant)
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


def fingerprint(kind: str, request: dict[str, Any], options: JobOptions) -> str:
    """What an Idempotency-Key is first used with: the kind, the request and the options the
    client chose (not the defaults they resolved to, which a deploy may change)."""
    chosen = options.model_dump(mode="json", exclude_none=True)
    canonical = json.dumps([kind, request, chosen], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _timeout(
    options: JobOptions, kind: Kind[Any], task: AsyncTaskiqDecoratedTask[Any, Any]
) -> float | None:
    """The job's own limit, else a foreign task's own label (a test's or benchmark's task run
    under a kind; a kind's task may not have one), else the kind's."""
    if options.timeout_s is not None:
        return options.timeout_s
    own = task.labels.get(TIMEOUT_LABEL)
    return float(own) if own is not None else kind.timeout_s


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
