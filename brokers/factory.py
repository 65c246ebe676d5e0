"""Builds the backend named by ``OFFLOAD_BROKER_URL``: broker, job store, results, schedules."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from taskiq import AsyncBroker, ScheduleSource
from taskiq.schedule_sources import LabelScheduleSource

from brokers.contract import JobStore, JobSubmitter
from brokers.files import LocalFileStore
from brokers.lifecycle import JobLifecycleMiddleware
from brokers.schedules import OncePerTick
from brokers.sqlite.broker import SqliteBroker
from brokers.sqlite.database import Database
from brokers.sqlite.result_backend import SqliteResultBackend
from brokers.sqlite.schedule_source import SqliteScheduleSource, SqliteTickLedger
from brokers.sqlite.store import SqliteJobStore
from brokers.sqlite.submitter import SqliteJobSubmitter
from service.settings import Settings, SettingsError


@dataclass
class Backend:
    settings: Settings
    broker: AsyncBroker
    store: JobStore
    submitter: JobSubmitter
    files: LocalFileStore
    schedule_sources: list[ScheduleSource] = field(default_factory=list)
    database: Database | None = None
    unavailable_errors: tuple[type[Exception], ...] = (OSError,)
    """Errors that mean "the backend cannot be reached now": the API answers 503."""

    @property
    def embedded(self) -> bool:
        return self.database is not None

    def use_data_dir(self, data_dir: Path) -> None:
        """Point an embedded backend, before it starts, at another directory (tests)."""
        if self.database is not None:
            self.database.close()
            self.database.path = data_dir / "offload.db"
        self.files.root = data_dir / "files"


def build_backend(settings: Settings) -> Backend:
    if settings.backend == "sqlite":
        return _build_sqlite(settings)
    raise SettingsError("OFFLOAD_BROKER_URL: the Redis backend is not available in this build")


def _build_sqlite(settings: Settings) -> Backend:
    database = Database(settings.sqlite_path)
    store = SqliteJobStore(database)
    broker = SqliteBroker(database, lease_seconds=settings.lease_seconds, gate=store)
    broker.with_result_backend(
        SqliteResultBackend(database, ttl_seconds=settings.job_ttl_seconds)
    ).with_middlewares(JobLifecycleMiddleware(store))
    ledger = SqliteTickLedger(database)
    return Backend(
        settings=settings,
        broker=broker,
        store=store,
        submitter=SqliteJobSubmitter(broker),
        files=LocalFileStore(settings.files_dir),
        schedule_sources=[
            OncePerTick(LabelScheduleSource(broker), ledger),
            OncePerTick(SqliteScheduleSource(database), ledger),
        ],
        database=database,
        unavailable_errors=(sqlite3.OperationalError, OSError),
    )
