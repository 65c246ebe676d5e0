"""Guarded job transitions and purging in the embedded job store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from brokers.contract import Admission, DeleteOutcome, JobQuery, JobRecord, new_job_id
from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore
from schemas.jobs import JobError, JobResult, JobStatus, Progress


@pytest.fixture
def store(tmp_path: Path) -> SqliteJobStore:
    return SqliteJobStore(Database(tmp_path / "offload.db"))


async def new_job(store: SqliteJobStore, *, expires_in: float = 60, tenant: str = "local") -> str:
    now = time.time()
    job_id = new_job_id(now)
    await store.create(
        JobRecord(id=job_id, tenant=tenant, kind="qr", request={"data": "x"}, created_at=now,
                  expires_at=now + expires_in, max_attempts=3)
    )  # fmt: skip
    return job_id


async def test_a_succeeded_job_is_never_moved_back_or_given_a_second_result(
    store: SqliteJobStore,
) -> None:
    job_id = await new_job(store)
    assert await store.begin_attempt(job_id, time.time()) is Admission.RUN
    first = JobResult(data={"n": 1})
    assert await store.finish(job_id, time.time(), result=first, error=None)
    assert await store.begin_attempt(job_id, time.time()) is Admission.DROP
    second = JobResult(data={"n": 2})
    assert not await store.finish(job_id, time.time(), result=second, error=None)
    record = await store.get(job_id)
    assert record is not None
    assert record.status is JobStatus.SUCCEEDED
    assert record.result == first
    assert record.attempts == 1


async def test_a_failure_is_recorded_with_its_reason(store: SqliteJobStore) -> None:
    job_id = await new_job(store)
    await store.begin_attempt(job_id, time.time())
    error = JobError(type="bad_input", message="no", retryable=False)
    assert await store.finish(job_id, time.time(), result=None, error=error)
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.error == error


async def test_plain_taskiq_tasks_are_not_jobs(store: SqliteJobStore) -> None:
    assert await store.begin_attempt("not-a-job", time.time()) is Admission.NOT_A_JOB


async def test_progress_is_kept_only_while_running(store: SqliteJobStore) -> None:
    job_id = await new_job(store)
    await store.set_progress(job_id, Progress(done=1, total=2))
    record = await store.get(job_id)
    assert record is not None and record.progress is None
    await store.begin_attempt(job_id, time.time())
    await store.set_progress(job_id, Progress(done=1, total=2, message="half"))
    record = await store.get(job_id)
    assert record is not None and record.progress == Progress(done=1, total=2, message="half")


async def test_delete_refuses_unfinished_jobs(store: SqliteJobStore) -> None:
    job_id = await new_job(store)
    assert await store.delete(job_id) is DeleteOutcome.NOT_FINISHED
    await store.begin_attempt(job_id, time.time())
    await store.finish(job_id, time.time(), result=JobResult(), error=None)
    assert await store.delete(job_id) is DeleteOutcome.DELETED
    assert await store.delete(job_id) is DeleteOutcome.NOT_FOUND


async def test_listing_is_per_tenant(store: SqliteJobStore) -> None:
    mine = await new_job(store, tenant="a")
    await new_job(store, tenant="b")
    records, cursor = await store.list(JobQuery(tenant="a"))
    assert [record.id for record in records] == [mine]
    assert cursor is None


async def test_listing_uses_an_index_not_a_scan(store: SqliteJobStore) -> None:
    plan = store.database.connection.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE tenant = ? AND status = ? "
        "AND id < ? ORDER BY id DESC LIMIT 51",
        ("local", "queued", "f" * 32),
    ).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX jobs_by_status" in details or "USING COVERING INDEX" in details, details
    assert "TEMP B-TREE" not in details, details


async def test_purge_forgets_files_at_expiry_and_rows_after_the_tombstone(
    store: SqliteJobStore,
) -> None:
    expired = await new_job(store, expires_in=-10)
    fresh = await new_job(store)
    report = await store.purge_expired(time.time(), tombstone_seconds=3600)
    assert report.files_of == [expired]
    assert report.rows_deleted == 0
    record = await store.get(expired)
    assert record is not None and record.files_purged
    assert (await store.purge_expired(time.time(), 3600)).files_of == []
    report = await store.purge_expired(time.time() + 7200, tombstone_seconds=3600)
    assert report.rows_deleted == 2 - (await store.get(fresh) is not None)
    assert await store.get(expired) is None
