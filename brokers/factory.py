"""Builds the backend named by ``OFFLOAD_BROKER_URL``: broker, job store, results, schedules."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AsyncBroker, ScheduleSource
from taskiq.schedule_sources import LabelScheduleSource
from taskiq.serializers import JSONSerializer
from taskiq_redis import ListRedisScheduleSource, RedisAsyncResultBackend

from brokers.contract import JobStore, JobSubmitter
from brokers.events import JobFeed
from brokers.files import LocalFileStore
from brokers.lifecycle import JobLifecycleMiddleware
from brokers.redis.broker import OffloadStreamBroker
from brokers.redis.events import RedisJobFeed
from brokers.redis.keys import Keys
from brokers.redis.schedules import RedisTickLedger
from brokers.redis.store import RedisJobStore
from brokers.redis.submitter import RedisJobSubmitter
from brokers.redis.webhooks import RedisWebhookOutbox
from brokers.redis.workers import RedisWorkerRegistry
from brokers.results import JobOutcomesInStore
from brokers.schedules import OncePerTick
from brokers.screening import MessageScreen
from brokers.sqlite.broker import SqliteBroker
from brokers.sqlite.database import Database
from brokers.sqlite.events import SqliteJobFeed
from brokers.sqlite.group_commit import GroupCommit
from brokers.sqlite.result_backend import SqliteResultBackend
from brokers.sqlite.schedule_source import SqliteScheduleSource, SqliteTickLedger
from brokers.sqlite.store import SqliteJobStore
from brokers.sqlite.submitter import SqliteJobSubmitter
from brokers.sqlite.webhooks import SqliteWebhookOutbox
from brokers.sqlite.workers import SqliteWorkerRegistry
from brokers.stopping import JobStopper
from brokers.uploads import LocalUploadStore
from brokers.webhooks import WebhookOutbox
from service.settings import Settings

BACKEND_STATE_KEY = "offload_backend"
SUBMIT_SETTLE_SECONDS = 0.5
"""How long a submit whose reply was lost keeps asking Redis whether the job was stored."""


@dataclass
class Backend:
    settings: Settings
    broker: AsyncBroker
    store: JobStore
    submitter: JobSubmitter
    files: LocalFileStore
    events: JobFeed
    """Tells waiting clients (SSE, long-poll) that a job changed, in any process."""
    schedule_sources: list[ScheduleSource] = field(default_factory=list)
    database: Database | None = None
    redis: Redis | None = None
    unavailable_errors: tuple[type[Exception], ...] = (OSError,)
    """Errors that mean "the backend cannot be reached now": the API answers 503."""
    stopper: JobStopper | None = None
    """Stops this process's cancelled jobs and runs their CPU steps (brokers/stopping.py)."""
    webhooks: WebhookOutbox | None = None
    """Webhooks due for delivery (set by both builders; optional for hand-made backends)."""
    uploads: LocalUploadStore = field(init=False)
    """Files clients uploaded for their jobs, under the data directory (brokers/uploads.py)."""

    def __post_init__(self) -> None:
        self.uploads = LocalUploadStore(self.settings.uploads_dir)
        setattr(self.broker.state, BACKEND_STATE_KEY, self)

    @property
    def embedded(self) -> bool:
        return self.database is not None

    def use_data_dir(self, data_dir: Path) -> None:
        """Point an embedded backend, before it starts, at another directory (tests)."""
        if self.database is not None:
            self.database.close()
            self.database.path = data_dir / "offload.db"
        self.files.root = data_dir / "files"
        self.uploads.root = data_dir / "uploads"

    def adopt_tasks(self, source: AsyncBroker) -> None:
        """Register every task of ``source`` on this backend's broker (tests, benchmarks)."""
        for task in source.get_all_tasks().values():
            self.broker.register_task(task.original_func, task.task_name, **task.labels)

    def wake_workers(self) -> None:
        """Tell an in-process embedded worker there is new work (others notice by themselves)."""
        wake = getattr(self.broker, "wake", None)
        if wake is not None:
            wake()

    async def close(self) -> None:
        """Release connections that the broker's shutdown does not own."""
        await self.events.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_backend(settings: Settings) -> Backend:
    if settings.backend == "sqlite":
        return _build_sqlite(settings)
    return _build_redis(settings)


def _stopper(store: JobStore, settings: Settings) -> JobStopper:
    """After the lifecycle middleware, so its post_execute runs first (see brokers/stopping)."""
    return JobStopper(
        store,
        poll_seconds=settings.cancel_poll_seconds,
        grace_seconds=settings.cancel_grace_seconds,
        cpu_workers=settings.cpu_workers,
    )


def _build_sqlite(settings: Settings) -> Backend:
    database = Database(settings.sqlite_path)
    group = GroupCommit(database)
    store = SqliteJobStore(database, group)
    registry = SqliteWorkerRegistry(database)
    broker = SqliteBroker(
        database,
        lease_seconds=settings.lease_seconds,
        gate=store,
        group=group,
        registry=registry,
        concurrency=settings.worker_concurrency,
    )
    broker.screen = MessageScreen(broker, registry, live_within=settings.lease_seconds)
    broker.with_result_backend(
        JobOutcomesInStore(SqliteResultBackend(database, ttl_seconds=settings.job_ttl_seconds))
    ).with_middlewares(
        JobLifecycleMiddleware(store, unavailable=(sqlite3.OperationalError,)),
        stopper := _stopper(store, settings),
    )
    ledger = SqliteTickLedger(database)
    return Backend(
        settings=settings,
        broker=broker,
        store=store,
        submitter=SqliteJobSubmitter(broker),
        files=LocalFileStore(settings.files_dir),
        events=SqliteJobFeed(database),
        schedule_sources=[
            OncePerTick(LabelScheduleSource(broker), ledger),
            OncePerTick(SqliteScheduleSource(database), ledger),
        ],
        database=database,
        unavailable_errors=(sqlite3.OperationalError, OSError),
        stopper=stopper,
        webhooks=SqliteWebhookOutbox(database),
    )


def _build_redis(settings: Settings) -> Backend:
    url = str(settings.broker_url)
    keys = Keys(settings.redis_prefix)
    # Bounded waits: a dead or stuck Redis gives an error in seconds, never a hang. One
    # immediate retry on a connection error replaces a pooled connection that a Redis
    # restart closed, so the first request after an outage does not fail.
    timeouts: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "socket_timeout": settings.redis_timeout_seconds + 1.0,
        "retry_on_error": [RedisConnectionError],
    }
    redis = Redis.from_url(url, decode_responses=True, **timeouts)
    store = RedisJobStore(redis, keys)
    registry = RedisWorkerRegistry(redis, keys)
    broker = OffloadStreamBroker(
        url,
        keys=keys,
        lease_seconds=settings.lease_seconds,
        gate=store.begin_attempt,
        refuse=store.fail_undeliverable,
        registry=registry,
        **timeouts,
    )
    broker.screen = MessageScreen(broker, registry, live_within=settings.lease_seconds)
    broker.with_result_backend(
        JobOutcomesInStore(
            RedisAsyncResultBackend(
                url,
                serializer=JSONSerializer(),
                result_ex_time=settings.job_ttl_seconds,
                prefix_str=f"{keys.prefix}:result",
                **timeouts,
            )
        )
    ).with_middlewares(
        JobLifecycleMiddleware(store, unavailable=(RedisConnectionError, RedisTimeoutError)),
        stopper := _stopper(store, settings),
    )
    ledger = RedisTickLedger(redis, keys)
    schedules = ListRedisScheduleSource(
        url, prefix=keys.schedules, serializer=JSONSerializer(), **timeouts
    )
    return Backend(
        settings=settings,
        broker=broker,
        store=store,
        submitter=RedisJobSubmitter(store, broker, settle_seconds=SUBMIT_SETTLE_SECONDS),
        files=LocalFileStore(settings.files_dir),
        events=RedisJobFeed(redis, store, keys),
        schedule_sources=[
            OncePerTick(LabelScheduleSource(broker), ledger),
            OncePerTick(schedules, ledger),
        ],
        redis=redis,
        unavailable_errors=(RedisConnectionError, RedisTimeoutError, OSError),
        stopper=stopper,
        webhooks=RedisWebhookOutbox(redis, keys),
    )
