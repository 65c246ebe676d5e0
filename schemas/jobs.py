"""The job: one schema for every kind, every endpoint and every backend."""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from schemas.kinds import JobKind as JobKind  # re-exported: the names live in schemas.kinds
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
MAX_CALLBACK_URL_LENGTH = 2048


class JobOptions(BaseModel):
    """How to run a job; accepted on every submit. Each kind has defaults for the unset ones."""

    lane: Lane | None = Field(
        default=None,
        description="interactive or bulk; interactive jobs never wait behind bulk ones. "
        "Defaults to the kind's lane.",
    )
    run_at: Timestamp | None = Field(
        default=None,
        description="Start no earlier than this time (RFC 3339), at most 30 days ahead. "
        "Not with delay_s.",
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
        max_length=MAX_CALLBACK_URL_LENGTH,
        description="Offload POSTs the job here, signed, when it finishes: an absolute "
        "http(s) URL (https outside local setups).",
        examples=["https://example.com/hooks/offload"],
    )

    @field_validator("run_at")
    @classmethod
    def _not_too_far_ahead(cls, run_at: datetime | None) -> datetime | None:
        # Beyond the bound a job would wait past any sensible TTL (or past year 9999).
        if run_at is not None and run_at.timestamp() > time.time() + MAX_DELAY_SECONDS:
            raise ValueError(f"must be at most {MAX_DELAY_SECONDS // 86400} days from now")
        return run_at

    # A field validator, not a model one, so that the 422 names the field at fault. run_at is
    # declared (so validated) first: info.data holds it when it was valid.
    @field_validator("delay_s")
    @classmethod
    def _one_due_time(cls, delay_s: float | None, info: ValidationInfo) -> float | None:
        if delay_s is not None and info.data.get("run_at") is not None:
            raise ValueError("give run_at or delay_s, not both")
        return delay_s

    @field_validator("callback_url")
    @classmethod
    def _absolute_http_url(cls, url: str | None) -> str | None:
        # Only the shape is checked here; which hosts may be called is the webhook sender's
        # to decide when it resolves the address.
        if url is None:
            return None
        if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
            raise ValueError("must be an absolute http or https URL, without spaces")
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
            parts.port  # noqa: B018  # raises on a port that is not a number in range
        except ValueError as error:
            raise ValueError(f"must be an absolute http or https URL: {error}") from None
        if parts.scheme.lower() not in {"http", "https"} or not hostname:
            raise ValueError("must be an absolute http or https URL, e.g. https://example.com/hook")
        return url


class JobError(BaseModel):
    type: str = Field(description="Stable name of the failure, e.g. 'worker_lost'.")
    message: str = Field(description="What went wrong, for people.")
    retryable: bool = Field(description="Whether running the job again could succeed.")


class AttemptError(JobError):
    """How one attempt failed: kept for every attempt, across retries and manual retry."""

    attempt: int = Field(ge=1, description="Which attempt (1 for the first run).")
    at: datetime = Field(description="When the attempt failed.")
    retry_at: datetime | None = Field(
        default=None, description="When the next attempt was due; null if none followed."
    )


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
    attempt_errors: list[AttemptError] = Field(
        default_factory=list, description="The error of every failed attempt, oldest first."
    )
    next_attempt_at: datetime | None = Field(
        default=None, description="While `retrying`: when the next attempt is due."
    )
    cancel_requested: bool = Field(
        default=False,
        description="A cancel was asked while the job ran: it is being stopped (a job that "
        "finished before the cancel reached it keeps its outcome).",
    )
    result: JobResult | None = None
    lane: Lane = Lane.INTERACTIVE
    run_at: datetime | None = Field(
        default=None, description="When the job may start, if it was submitted for later."
    )
    timeout_s: float | None = Field(default=None, description="Time limit of one attempt.")
    callback_url: str | None = None
    version: int = Field(
        ge=0,
        description="Grows with every change of the job and never goes back: the `id` of its "
        "events and its ETag.",
    )
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
