"""The job: one schema for every kind, every endpoint and every backend."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from schemas.webhooks import JobWebhook


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobKind(StrEnum):
    QR = "qr"


class Lane(StrEnum):
    """Where a job waits: interactive work never queues behind bulk work."""

    INTERACTIVE = "interactive"
    BULK = "bulk"


class Progress(BaseModel):
    done: int = Field(ge=0, description="Units of work finished.")
    total: int | None = Field(default=None, ge=0, description="Units of work in all, if known.")
    message: str | None = Field(default=None, description="What the job is doing now.")


class JobProgress(Progress):
    percent: float | None = Field(default=None, description="done/total as a percentage.")

    @classmethod
    def of(cls, progress: Progress) -> JobProgress:
        percent = None
        if progress.total:
            percent = round(min(100.0, 100.0 * progress.done / progress.total), 1)
        return cls(**progress.model_dump(), percent=percent)


def _text_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-01-31T12:00:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_only)]
"""A date-time as JSON Schema means it: text with a time zone, never a number."""


MAX_DELAY_SECONDS = 30 * 86400
MAX_ATTEMPTS_LIMIT = 25
MAX_TIMEOUT_SECONDS = 86400


class JobOptions(BaseModel):
    """How to run a job; accepted on every submit. Each kind has defaults for the unset ones."""

    lane: Lane | None = Field(
        default=None,
        description="interactive or bulk; interactive jobs never wait behind bulk ones. "
        "Defaults to the kind's lane.",
    )
    run_at: Timestamp | None = Field(
        default=None, description="Start no earlier than this time (RFC 3339). Not with delay_s."
    )
    delay_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        description="Start no earlier than this many seconds from now. Not with run_at.",
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ATTEMPTS_LIMIT,
        description="Runs allowed, retries included. Defaults to the kind's.",
    )
    timeout_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds one attempt may run before it fails as `timeout`. "
        "Defaults to the kind's.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Offload POSTs the job here, signed, when it finishes (https).",
    )

    @model_validator(mode="after")
    def _one_due_time(self) -> JobOptions:
        if self.run_at is not None and self.delay_s is not None:
            raise ValueError("give run_at or delay_s, not both")
        return self


class JobError(BaseModel):
    type: str = Field(description="Stable name of the failure, e.g. 'worker_lost'.")
    message: str = Field(description="What went wrong, for people.")
    retryable: bool = Field(description="Whether running the job again could succeed.")


class ResultFile(BaseModel):
    id: str
    name: str
    content_type: str
    size: int = Field(ge=0)
    sha256: str = Field(description="Hex digest of the content; also the download's ETag.")
    url: str | None = Field(default=None, description="Where to download it.")


class JobResult(BaseModel):
    data: dict[str, Any] | None = None
    files: list[ResultFile] = Field(default_factory=list)


class JobLinks(BaseModel):
    self: str
    result: str


class Job(BaseModel):
    """A unit of work and everything known about it."""

    model_config = ConfigDict(use_enum_values=False)

    id: str
    tenant: str
    kind: JobKind
    status: JobStatus
    progress: JobProgress | None = None
    attempts: int = Field(ge=0, description="Runs started so far.")
    max_attempts: int = Field(ge=1)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime
    error: JobError | None = None
    cancel_requested: bool = Field(
        default=False,
        description="A cancel was asked while the job ran: it stops at its next checkpoint.",
    )
    result: JobResult | None = None
    lane: Lane = Lane.INTERACTIVE
    run_at: datetime | None = Field(
        default=None, description="When the job may start, if it was submitted for later."
    )
    timeout_s: float | None = Field(default=None, description="Time limit of one attempt.")
    callback_url: str | None = None
    webhook: JobWebhook | None = Field(
        default=None, description="Delivery of the webhook to callback_url, once finished."
    )
    links: JobLinks


class JobPage(BaseModel):
    items: list[Job]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


class RetryableStatus(StrEnum):
    FAILED = "failed"
    CANCELLED = "cancelled"


class RetryFilter(BaseModel):
    """Which finished jobs to queue again."""

    model_config = ConfigDict(extra="forbid")

    status: RetryableStatus = Field(
        default=RetryableStatus.FAILED, description="failed (default) or cancelled."
    )
    kind: JobKind | None = Field(default=None, description="Only jobs of this kind.")
    since: Timestamp | None = Field(
        default=None,
        description="Only jobs created at or after this time (RFC 3339).",
    )


class RetryCount(BaseModel):
    count: int = Field(ge=0, description="How many jobs were queued again.")
