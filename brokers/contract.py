"""What every backend provides: a job store beside TaskiQ's broker, results and schedules.

The embedded SQLite backend and the Redis backend each implement :class:`JobStore`; the
API, the lifecycle middleware and the tasks only ever talk to this contract.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from taskiq import BrokerMessage

from schemas.jobs import JobError, JobResult, JobStatus, Progress


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

    def is_expired(self, now: float) -> bool:
        return self.expires_at <= now


class Admission(Enum):
    """What a worker should do with a delivered message, decided from the job's state."""

    RUN = "run"
    DROP = "drop"
    NOT_A_JOB = "not_a_job"


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


class JobSubmitter(Protocol):
    async def submit(self, job: JobRecord, message: BrokerMessage) -> None:
        """Store the job and queue its message atomically: both happen or neither does."""
        ...


class JobStore(Protocol):
    """Durable job state. Every transition is guarded, so redelivery cannot rewind a job."""

    async def create(self, job: JobRecord) -> None: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def list(self, query: JobQuery) -> tuple[list[JobRecord], str | None]: ...

    async def begin_attempt(self, job_id: str, now: float) -> Admission:
        """Move a queued (or orphaned running) job to running and count the attempt.

        Returns DROP when the job already finished, or when its attempts are used up (the
        job is then failed with ``worker_lost``), and NOT_A_JOB for plain TaskiQ tasks.
        """
        ...

    async def finish(
        self, job_id: str, now: float, *, result: JobResult | None, error: JobError | None
    ) -> bool:
        """Record the outcome of a running job; False if it was not running any more."""
        ...

    async def requeue(self, job_id: str) -> bool:
        """Put a running job whose lease was released back to queued."""
        ...

    async def set_progress(self, job_id: str, progress: Progress) -> None: ...

    async def delete(self, job_id: str) -> DeleteOutcome:
        """Remove a finished job; refuse one that has not finished."""
        ...

    async def purge_expired(self, now: float, tombstone_seconds: float) -> PurgeReport:
        """Forget files of expired jobs; delete rows expired longer than the tombstone time."""
        ...

    async def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...
