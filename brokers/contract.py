"""What every backend provides: a job store beside TaskiQ's broker, results and schedules.

The embedded SQLite backend and the Redis backend each implement :class:`JobStore`; the
API, the lifecycle middleware and the tasks only ever talk to this contract.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from taskiq import BrokerMessage

from schemas.jobs import AttemptError, JobError, JobResult, JobStatus, Progress
from schemas.webhooks import JobWebhook


def new_job_id(now: float | None = None) -> str:
    """A 32-hex id that sorts by creation time (48-bit milliseconds, then 80 random bits)."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}{os.urandom(10).hex()}"


@dataclass
class JobRecord:
    """A job as the store keeps it; times are Unix seconds."""

    id: str
    tenant: str
    kind: str
    request: dict[str, Any]
    created_at: float
    expires_at: float
    max_attempts: int
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    progress: Progress | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: JobError | None = None
    result: JobResult | None = None
    files_purged: bool = False
    cancel_requested: bool = False
    """A cancel arrived while the job ran: it stops at its next checkpoint."""
    message: bytes | None = None
    """The queued message, kept so a job whose message was lost can be queued again."""
    lane: str = "interactive"
    due_at: float | None = None
    """When a job submitted for later may start (``run_at``/``delay_s``)."""
    timeout_s: float | None = None
    """The time limit of one attempt, in seconds."""
    callback_url: str | None = None
    next_attempt_at: float | None = None
    """While ``retrying``: when the next attempt is due."""
    attempt_errors: list[AttemptError] = field(default_factory=list)
    """The error of every failed attempt, oldest first; a manual retry keeps them."""
    version: int = 1
    """Grows with every change a client can see and never goes back: the id of its events
    (brokers.events). The store keeps it; a new job starts at 1."""
    webhook: JobWebhook | None = None
    """Delivery of the webhook to ``callback_url`` once the job finished (read-only here)."""

    def is_expired(self, now: float) -> bool:
        return self.expires_at <= now


class Admission(Enum):
    """What a worker should do with a delivered message, decided from the job's state."""

    RUN = "run"
    DROP = "drop"
    NOT_A_JOB = "not_a_job"


@dataclass(frozen=True)
class Admitted:
    """The gate's answer for one delivery; a RUN carries the attempt's fencing token.

    The token grows by one at every start and never goes back (unlike ``attempts``, which a
    release gives back): only the attempt holding the current token may record the job's
    outcome, report progress or write its files.
    """

    admission: Admission
    fence: int = 0


class CancelOutcome(Enum):
    CANCELLED = "cancelled"
    """It had not started (or was cancelled already): it is cancelled now and never runs."""
    REQUESTED = "requested"
    """It runs: it stops at its next checkpoint."""
    FINISHED = "finished"
    """It succeeded or failed: nothing to cancel."""
    NOT_FOUND = "not_found"


class RetryOutcome(Enum):
    RETRIED = "retried"
    NOT_RETRYABLE = "not_retryable"
    """Only a failed or cancelled job can be retried."""
    NOT_FOUND = "not_found"


class DeleteOutcome(Enum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    NOT_FINISHED = "not_finished"


@dataclass
class JobQuery:
    tenant: str
    status: JobStatus | None = None
    kind: str | None = None
    limit: int = 50
    cursor: str | None = None


@dataclass
class PurgeReport:
    files_of: list[str] = field(default_factory=list)
    rows_deleted: int = 0


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


WORKER_LOST = JobError(
    type="worker_lost",
    message="the worker running this job stopped before it finished, on every attempt",
    retryable=True,
)
EXPIRED = JobError(
    type="expired", message="the job expired before a worker could start it", retryable=False
)


class SubmitOutcomeUnknown(Exception):
    """A submit got no answer and the backend could not be asked whether the job was stored."""

    def __init__(self, job_id: str, reason: str) -> None:
        super().__init__(f"job {job_id} may or may not have been queued: {reason}")
        self.job_id = job_id


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's ``Idempotency-Key`` and what it was first sent with."""

    key: str
    fingerprint: str
    """A digest of the job's kind and request: the same key with another body is refused."""


@dataclass(frozen=True)
class Submitted:
    job_id: str
    """The job now queued, or the earlier job that already holds the idempotency key."""
    created: bool
    fingerprint: str = ""
    """For an earlier job: the fingerprint its key was first used with."""


class JobSubmitter(Protocol):
    async def submit(
        self, job: JobRecord, message: BrokerMessage, key: IdempotencyKey | None = None
    ) -> Submitted:
        """Store the job and queue its message atomically: both happen or neither does.

        With a key that an unexpired job of the tenant already holds, nothing is stored
        and that job is named instead.
        """
        ...


class JobStore(Protocol):
    """Durable job state. Every transition is guarded, so redelivery cannot rewind a job,
    and fenced by each attempt's token, so a worker that lost its job cannot touch it."""

    async def create(self, job: JobRecord) -> None: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]: ...

    async def begin_attempt(self, job_id: str, now: float) -> Admitted:
        """Move a queued (or orphaned running) job to running and count the attempt.

        Returns DROP when the job already finished, when its attempts are used up (the job
        is then failed with ``worker_lost``) or when it expired unstarted (failed as
        ``expired``), and NOT_A_JOB for plain TaskiQ tasks.
        """
        ...

    async def holds(self, job_id: str, fence: int) -> bool:
        """Whether the attempt with this token still runs the job, with no cancel asked.

        Progress reports are refused in the same cases."""
        ...

    async def finish(
        self,
        job_id: str,
        fence: int,
        now: float,
        *,
        result: JobResult | None,
        error: JobError | None,
        status: JobStatus | None = None,
    ) -> bool:
        """Record the outcome of the running attempt; False if the attempt no longer holds it.

        ``status`` is failed with an error, else succeeded, unless given (cancelled).

        Safe to repeat: recording the same attempt's outcome again answers True.
        """
        ...

    async def schedule_retry(
        self, job_id: str, fence: int, now: float, error: JobError, due_at: float
    ) -> JobStatus | None:
        """Record a retryable failure of the running attempt and queue the job's message
        again for ``due_at``, in one atomic write: the job is ``retrying`` until then.

        Answers the status recorded: ``retrying``; ``cancelled`` if a cancel was asked;
        ``failed`` if its attempts are spent after all. None if the attempt no longer
        holds the job. The error joins ``attempt_errors`` (as ``finish`` adds a final one).
        Safe to repeat: the same attempt asking again changes nothing. A job stored without
        its message (``create``) cannot be queued again: it fails.
        """
        ...

    async def release(self, job_id: str, fence: int) -> bool:
        """Put a running attempt that was handed back to queued, giving the attempt back."""
        ...

    async def fail_undeliverable(self, job_id: str, now: float, error: JobError) -> bool:
        """Fail an unfinished job whose message no worker can run; False if it finished."""
        ...

    async def cancel(self, job_id: str, now: float) -> CancelOutcome:
        """Cancel a job that has not started; ask a running one to stop (see CancelOutcome)."""
        ...

    async def cancels_requested(self, job_ids: Sequence[str]) -> set[str]:
        """Which of these jobs (those a worker process runs) have a cancel asked: one read."""
        ...

    async def retry(self, job_id: str, budget: int) -> RetryOutcome:
        """Queue a failed or cancelled job again under its id, from its stored message, with
        ``budget`` more attempts; ``attempts`` keeps counting."""
        ...

    async def withdraw(self, job_id: str, now: float, error: JobError) -> bool:
        """Withdraw a job whose submit was answered 503: fail it if it was stored and has
        not finished, and make sure it can no longer be stored. True if it was failed."""
        ...

    async def set_progress(self, job_id: str, fence: int, progress: Progress) -> bool: ...

    async def delete(self, job_id: str) -> DeleteOutcome:
        """Remove a finished job; refuse one that has not finished."""
        ...

    async def purge_expired(self, now: float, tombstone_seconds: float) -> PurgeReport:
        """Forget files of expired finished jobs; delete their rows after the tombstone time.

        A job still queued or running is never purged: its message would run it later.
        """
        ...

    async def sweep(self, now: float) -> SweepReport:
        """Repair unfinished jobs that have no message left: queue them again, or fail them
        as ``worker_lost`` when their attempts are spent."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...


@runtime_checkable
class HeldDeliveries(Protocol):
    """What a broker tells the lifecycle middleware about the jobs this process runs."""

    def fence_of(self, task_id: str) -> int | None:
        """The fencing token a running job was admitted with, or None."""
        ...

    async def hand_back(self, task_id: str) -> None:
        """Put the job's message back at once (it was cut short); the attempt counts, so a
        task that always cancels itself ends as ``worker_lost``."""
        ...

    def abandon(self, task_id: str) -> None:
        """Stop renewing the job's lease and ignore its ack: it comes back after the lease."""
        ...


class WorkerRegistry(Protocol):
    """Which task names live workers can run, so a message no worker knows can fail."""

    async def announce(self, consumer: str, task_names: list[str], now: float) -> None: ...

    async def leave(self, consumer: str) -> None: ...

    async def known_by_a_live_worker(self, task_name: str, now: float, within: float) -> bool: ...
