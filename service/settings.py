"""Offload's settings: one typed object read from ``OFFLOAD_*`` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """Invalid settings; the message names each setting at fault."""


def _cores() -> int:
    """CPUs this process may run on (unlike os.cpu_count, this follows affinity masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFLOAD_", extra="ignore")

    broker_url: str | None = Field(
        default=None,
        description=(
            "Which engine runs the queue and the job store. Unset or sqlite:///PATH: the "
            "embedded SQLite default (PATH defaults to DATA_DIR/offload.db). redis://...: Redis."
        ),
    )
    data_dir: Path = Field(
        default=Path("./offload-data"),
        description="Where the embedded database (unless the URL names one) and result files live.",
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a claimed job is held without a heartbeat before another worker "
        "may take it. Heartbeats renew it every third of this.",
    )
    redis_prefix: str = Field(
        default="offload",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Prefix of every Redis key Offload writes, so several deployments can "
        "share one Redis.",
    )
    redis_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long a Redis connect or command may take before the API answers 503.",
    )
    job_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="How long a job, its result and its files are kept after submission.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="Largest request body the API accepts; larger ones get 413.",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="On SIGTERM, how long running jobs get to finish before their leases "
        "are released for another worker.",
    )
    worker_concurrency: int = Field(
        default=8,
        gt=0,
        le=1000,
        description="Jobs one worker process runs at once.",
    )
    cancel_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="After a cancel, how long a job inside a CPU step (run_cpu) gets to reach "
        "a checkpoint before the process running the step is killed.",
    )
    cancel_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        le=60,
        description="How often each worker process asks the store, in one read, whether a "
        "cancel was asked for any job it runs.",
    )
    cpu_workers: int = Field(
        default_factory=_cores,
        gt=0,
        le=1000,
        description="Processes in each worker process's pool for CPU steps (run_cpu); "
        "default: the CPUs. Started on first use.",
    )
    upload_max_bytes: int = Field(
        default=50 * 1024 * 1024,
        gt=0,
        description="Largest file POST /v1/files accepts (50 MiB); larger ones get 413. The "
        "upload is streamed to disk, so this bounds disk use, not memory.",
    )
    upload_ttl_seconds: int = Field(
        default=24 * 3600,
        gt=0,
        description="How long an uploaded file is kept; then it is gone (404) and the "
        "maintenance job deletes it.",
    )
    upload_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long `offload serve` waits for the body of an upload (POST "
        "/v1/files) to arrive, from the end of its headers; then 408.",
    )
    purge_cron: str = Field(
        default="*/5 * * * *",
        description="Cron expression for the maintenance job that purges expired jobs.",
    )
    qr_max_pixels: int = Field(
        default=4_000_000,
        # 217x217: a version 40 code with the largest border, at scale 1.
        ge=217 * 217,
        description="Most pixels a QR code PNG may have (4,000,000 is 2000x2000); larger "
        "ones are refused with 422. A 4,000,000-pixel RGBA render needs about 16 MB.",
    )
    qr_max_sync_renders: int = Field(
        default_factory=_cores,
        gt=0,
        le=1000,
        description="QR codes GET /v1/qr draws at once (default: the CPUs); further requests "
        "wait briefly for one to finish, then get 429.",
    )
    pdf_max_pages: int = Field(
        default=5_000,
        gt=0,
        le=1_000_000,
        description="Most pages one input PDF may have; more are refused with 422 at submit.",
    )
    pdf_max_merge_bytes: int = Field(
        default=200_000_000,
        ge=1_000_000,
        description="Most bytes the files of one merge may add up to (a worker holds them "
        "all while it writes the result); more are refused with 422 at submit.",
    )
    pdf_max_stream_bytes: int = Field(
        default=50_000_000,
        ge=1_000_000,
        description="Most bytes one stream of an input PDF may decode to (pypdf's limits); "
        "past it the job fails as input_limit_exceeded: a decompression bomb stops here.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log line format: text for people, json for collectors."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest log level written, in any case (debug, INFO, ...)."
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        description="Largest request line plus headers `offload serve` reads; a larger one gets "
        "431 and the connection is closed.",
    )
    request_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long `offload serve` waits for a whole request (headers and body) to "
        "arrive, from the connection or its first byte; then it answers 408 and closes.",
    )
    events_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="How often an open event stream with no news gets a comment line, so "
        "proxies and clients see that it is alive.",
    )

    webhook_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach private, loopback and other non-public addresses, "
        "and plain http: for local setups and tests only.",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Longest one webhook try may take, connect to last byte read.",
    )
    webhook_max_tries: int = Field(
        default=8,
        ge=1,
        le=20,
        description="Tries per webhook before it is given up as failed.",
    )
    webhook_backoff_base_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Wait before the second try; each later wait doubles (with jitter).",
    )
    webhook_backoff_cap_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="Longest wait between two tries of a webhook.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url in (None, ""):
            return None
        if not url.startswith(("sqlite:///", "redis://", "rediss://", "unix://")):
            raise ValueError("must start with sqlite:///, redis://, rediss:// or unix://")
        return url

    @field_validator("purge_cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) != 5:
            raise ValueError("must be a five-field cron expression, e.g. '*/5 * * * *'")
        return cron

    @field_validator("webhook_backoff_cap_seconds")
    @classmethod
    def _cap_above_base(cls, cap: float, info: ValidationInfo) -> float:
        base = info.data.get("webhook_backoff_base_seconds")
        if base is not None and cap < base:
            raise ValueError("must be at least OFFLOAD_WEBHOOK_BACKOFF_BASE_SECONDS")
        return cap

    @property
    def backend(self) -> Literal["sqlite", "redis"]:
        if self.broker_url is None or self.broker_url.startswith("sqlite:"):
            return "sqlite"
        return "redis"

    @property
    def sqlite_path(self) -> Path:
        if self.broker_url and self.broker_url.startswith("sqlite:///"):
            return Path(self.broker_url.removeprefix("sqlite:///"))
        return self.data_dir / "offload.db"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"


def load_settings() -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"OFFLOAD_{'_'.join(str(part) for part in issue['loc']).upper()}: {issue['msg']}"
            for issue in error.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
