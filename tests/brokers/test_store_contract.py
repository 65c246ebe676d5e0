"""The job store contract (brokers.contract.JobStore), on the embedded and the Redis store.

Each test runs on both: guarded transitions, listing (newest first, a cursor, filters by
status and kind), indexes that follow every transition, delete and purge.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from brokers.contract import (
    Admission,
    DeleteOutcome,
    JobQuery,
    JobRecord,
    JobStore,
    new_job_id,
)
from brokers.redis.keys import Keys
from brokers.redis.store import RedisJobStore
from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore
from schemas.jobs import JobError, JobResult, JobStatus, Progress
from tasks.maintenance import TOMBSTONE_SECONDS
from tests.support.redis_server import RedisServer

BAD_INPUT = JobError(type="bad_input", message="no", retryable=False)


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    if request.param == "sqlite":
        database = Database(tmp_path / "offload.db")
        yield SqliteJobStore(database)
        database.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = Redis.from_url(server.url, decode_responses=True)
    yield RedisJobStore(redis, Keys(prefix=f"test-{uuid.uuid4().hex[:12]}"))
    await redis.aclose()


class Clock:
    """Creation times a millisecond apart, so ids (and listings) have a definite order."""

    def __init__(self) -> None:
        self.now = time.time()

    def tick(self) -> float:
        self.now += 0.001
        return self.now


async def new_job(
    store: JobStore,
    clock: Clock | None = None,
    *,
    tenant: str = "local",
    kind: str = "qr",
    expires_in: float = 60,
    max_attempts: int = 3,
) -> str:
    now = (clock or Clock()).tick()
    job_id = new_job_id(now)
    await store.create(
        JobRecord(id=job_id, tenant=tenant, kind=kind, request={"data": "x"}, created_at=now,
                  expires_at=now + expires_in, max_attempts=max_attempts)
    )  # fmt: skip
    return job_id


async def run(store: JobStore, job_id: str) -> int:
    admitted = await store.begin_attempt(job_id, time.time())
    assert admitted.admission is Admission.RUN
    return admitted.fence


async def succeed(store: JobStore, job_id: str, result: JobResult | None = None) -> None:
    attempt = await run(store, job_id)
    assert await store.finish(
        job_id, attempt, time.time(), result=result or JobResult(), error=None
    )


async def listed(store: JobStore, **query: object) -> list[str]:
    """Every id the listing returns, following cursors, newest first."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        records, cursor = await store.list(JobQuery(tenant="local", cursor=cursor, **query))  # type: ignore[arg-type]
        ids += [record.id for record in records]
        if cursor is None:
            return ids


async def status_of(store: JobStore, job_id: str) -> JobStatus:
    record = await store.get(job_id)
    assert record is not None, f"no job {job_id}"
    return record.status


# -- guarded transitions ---------------------------------------------------------------------


async def test_a_succeeded_job_is_never_moved_back_or_given_a_second_result(
    store: JobStore,
) -> None:
    job_id = await new_job(store)
    first = JobResult(data={"n": 1})
    await succeed(store, job_id, first)
    assert (await store.begin_attempt(job_id, time.time())).admission is Admission.DROP
    assert not await store.finish(
        job_id, 2, time.time(), result=JobResult(data={"n": 2}), error=None
    )
    assert not await store.release(job_id, 1)
    record = await store.get(job_id)
    assert record is not None
    assert record.status is JobStatus.SUCCEEDED
    assert record.result == first
    assert record.attempts == 1


async def test_a_failure_is_recorded_with_its_reason(store: JobStore) -> None:
    job_id = await new_job(store)
    attempt = await run(store, job_id)
    assert await store.finish(job_id, attempt, time.time(), result=None, error=BAD_INPUT)
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.error == BAD_INPUT
    assert record.finished_at is not None and record.result is None


async def test_a_queued_job_cannot_be_finished(store: JobStore) -> None:
    job_id = await new_job(store)
    assert not await store.finish(job_id, 0, time.time(), result=JobResult(), error=None)
    assert not await store.finish(job_id, 1, time.time(), result=JobResult(), error=None)
    assert await status_of(store, job_id) is JobStatus.QUEUED


async def test_plain_taskiq_tasks_are_not_jobs(store: JobStore) -> None:
    admitted = await store.begin_attempt("not-a-job", time.time())
    assert admitted.admission is Admission.NOT_A_JOB


async def test_an_orphaned_running_job_runs_again_counting_the_attempt(store: JobStore) -> None:
    job_id = await new_job(store)
    await run(store, job_id)
    await run(store, job_id)  # redelivered after its worker died
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.RUNNING and record.attempts == 2


async def test_a_job_that_lost_every_attempt_fails_as_worker_lost(store: JobStore) -> None:
    job_id = await new_job(store, max_attempts=2)
    await run(store, job_id)
    await run(store, job_id)
    assert (await store.begin_attempt(job_id, time.time())).admission is Admission.DROP
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.attempts == 2
    assert record.error is not None and record.error.type == "worker_lost"
    assert record.error.retryable
    assert await listed(store, status=JobStatus.FAILED) == [job_id]
    assert await listed(store, status=JobStatus.RUNNING) == []


async def test_a_released_job_is_queued_again_with_its_attempt_given_back(
    store: JobStore,
) -> None:
    job_id = await new_job(store)
    assert not await store.release(job_id, 1), "only a running job can be released"
    attempt = await run(store, job_id)
    assert not await store.release(job_id, attempt + 1), "only by the attempt that runs it"
    assert await store.release(job_id, attempt)
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED and record.attempts == 0


async def test_progress_is_kept_only_while_running(store: JobStore) -> None:
    job_id = await new_job(store)
    assert not await store.set_progress(job_id, 1, Progress(done=1, total=2))
    record = await store.get(job_id)
    assert record is not None and record.progress is None
    attempt = await run(store, job_id)
    assert await store.set_progress(job_id, attempt, Progress(done=1, total=2, message="half"))
    record = await store.get(job_id)
    assert record is not None and record.progress == Progress(done=1, total=2, message="half")
    assert await store.finish(job_id, attempt, time.time(), result=JobResult(), error=None)
    assert not await store.set_progress(job_id, attempt, Progress(done=2, total=2))
    record = await store.get(job_id)
    assert record is not None and record.progress == Progress(done=1, total=2, message="half")


# -- listing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 7, 50])
async def test_listing_pages_newest_first_with_a_cursor(store: JobStore, limit: int) -> None:
    clock = Clock()
    created = [await new_job(store, clock) for _ in range(7)]
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        records, cursor = await store.list(JobQuery(tenant="local", limit=limit, cursor=cursor))
        pages.append([record.id for record in records])
        if cursor is None:
            break
        assert cursor == pages[-1][-1], "the cursor is the last id of the page"
    assert [job_id for page in pages for job_id in page] == created[::-1]
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit
    assert len(pages) == -(-7 // limit)


async def test_listing_is_per_tenant(store: JobStore) -> None:
    mine = await new_job(store, tenant="a")
    await new_job(store, tenant="b")
    records, cursor = await store.list(JobQuery(tenant="a"))
    assert [record.id for record in records] == [mine]
    assert cursor is None
    assert await store.list(JobQuery(tenant="nobody")) == ([], None)


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (None, None, ["pdf-done", "qr-done", "pdf-queued", "qr-queued"]),
        (JobStatus.SUCCEEDED, None, ["pdf-done", "qr-done"]),
        (JobStatus.QUEUED, None, ["pdf-queued", "qr-queued"]),
        (None, "qr", ["qr-done", "qr-queued"]),
        (None, "pdf", ["pdf-done", "pdf-queued"]),
        (JobStatus.SUCCEEDED, "qr", ["qr-done"]),
        (JobStatus.QUEUED, "pdf", ["pdf-queued"]),
        (JobStatus.RUNNING, "qr", []),
        (None, "zip", []),
    ],
)
async def test_listing_filters_by_status_and_kind(
    store: JobStore, status: JobStatus | None, kind: str | None, expected: list[str]
) -> None:
    clock = Clock()
    ids = {
        name: await new_job(store, clock, kind=name.split("-")[0])
        for name in ("qr-queued", "pdf-queued", "qr-done", "pdf-done")
    }
    await new_job(store, clock, tenant="other", kind="qr")
    for name in ("qr-done", "pdf-done"):
        await succeed(store, ids[name])
    names = {job_id: name for name, job_id in ids.items()}
    found = await listed(store, status=status, kind=kind, limit=1)
    assert [names[job_id] for job_id in found] == expected


@pytest.mark.parametrize(
    ("outcome", "final"),
    [
        ("succeed", JobStatus.SUCCEEDED),
        ("fail", JobStatus.FAILED),
        ("release", JobStatus.QUEUED),
    ],
)
async def test_status_listings_follow_every_transition(
    store: JobStore, outcome: str, final: JobStatus
) -> None:
    job_id = await new_job(store)
    watched = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED)

    async def where() -> set[JobStatus]:
        found = set()
        for status in watched:
            if job_id in await listed(store, status=status):
                found.add(status)
            if job_id in await listed(store, status=status, kind="qr"):
                found.add(status)
            assert await listed(store, status=status, kind="pdf") == []
        return found

    assert await where() == {JobStatus.QUEUED}
    attempt = await run(store, job_id)
    assert await where() == {JobStatus.RUNNING}
    if outcome == "release":
        assert await store.release(job_id, attempt)
    else:
        error = BAD_INPUT if outcome == "fail" else None
        result = None if error else JobResult()
        assert await store.finish(job_id, attempt, time.time(), result=result, error=error)
    assert await where() == {final}
    assert await status_of(store, job_id) is final
    assert await listed(store) == [job_id]
    assert await listed(store, kind="qr") == [job_id]


# -- delete and purge --------------------------------------------------------------------------


async def test_delete_refuses_unfinished_jobs_and_forgets_finished_ones(store: JobStore) -> None:
    job_id = await new_job(store)
    assert await store.delete(job_id) is DeleteOutcome.NOT_FINISHED
    attempt = await run(store, job_id)
    assert await store.delete(job_id) is DeleteOutcome.NOT_FINISHED
    assert await status_of(store, job_id) is JobStatus.RUNNING
    assert await listed(store, status=JobStatus.RUNNING) == [job_id]
    assert await store.finish(job_id, attempt, time.time(), result=JobResult(), error=None)
    assert await store.delete(job_id) is DeleteOutcome.DELETED
    assert await store.get(job_id) is None
    assert await listed(store) == []
    assert await listed(store, status=JobStatus.SUCCEEDED) == []
    assert await listed(store, status=JobStatus.SUCCEEDED, kind="qr") == []
    assert await store.delete(job_id) is DeleteOutcome.NOT_FOUND


async def test_purge_forgets_files_at_expiry_and_rows_after_the_tombstone(
    store: JobStore,
) -> None:
    clock = Clock()
    expired = await new_job(store, clock, expires_in=1)
    await succeed(store, expired, JobResult(data={"kept": False}))
    fresh = await new_job(store, clock, expires_in=60)
    await succeed(store, fresh)
    now = time.time() + 2

    report = await store.purge_expired(now, TOMBSTONE_SECONDS)
    assert report.files_of == [expired]
    assert report.rows_deleted == 0
    record = await store.get(expired)
    assert record is not None and record.files_purged and record.result is None
    assert record.status is JobStatus.SUCCEEDED
    assert (await store.purge_expired(now, TOMBSTONE_SECONDS)).files_of == []
    assert await listed(store) == [fresh, expired], "a purged job still answers until forgotten"

    report = await store.purge_expired(now + TOMBSTONE_SECONDS, TOMBSTONE_SECONDS)
    assert report.files_of == [fresh], "the fresh job has expired by now"
    assert report.rows_deleted == 1, "the expired job is past its tombstone"
    assert await store.get(expired) is None
    assert await listed(store) == [fresh]
    assert await listed(store, status=JobStatus.SUCCEEDED) == [fresh]

    report = await store.purge_expired(now + TOMBSTONE_SECONDS + 120, TOMBSTONE_SECONDS)
    assert report.files_of == [] and report.rows_deleted == 1
    assert await store.get(fresh) is None
    assert await listed(store) == []
    assert await listed(store, status=JobStatus.SUCCEEDED) == []


async def test_purge_honours_the_tombstone_time_it_is_given(store: JobStore) -> None:
    expired = await new_job(store, expires_in=-10)
    await store.fail_undeliverable(expired, time.time(), BAD_INPUT)
    report = await store.purge_expired(time.time() + 60, tombstone_seconds=30)
    assert report.files_of == [expired]
    assert report.rows_deleted == 1
    assert await store.get(expired) is None
    assert await listed(store) == []


async def test_purge_never_touches_a_job_that_has_not_finished(store: JobStore) -> None:
    """Its message would still run it and write files that nothing purges."""
    queued = await new_job(store, expires_in=1)
    running = await new_job(store, expires_in=1)
    await run(store, running)
    report = await store.purge_expired(time.time() + 10 * TOMBSTONE_SECONDS, TOMBSTONE_SECONDS)
    assert report.files_of == [] and report.rows_deleted == 0
    assert await status_of(store, queued) is JobStatus.QUEUED
    assert await status_of(store, running) is JobStatus.RUNNING


# -- fencing: only the attempt that holds a job touches it --------------------------------------


async def test_a_superseded_attempt_cannot_finish_or_report_progress(store: JobStore) -> None:
    job_id = await new_job(store)
    stalled = await run(store, job_id)
    current = await run(store, job_id)  # taken over after the stalled worker's lease ran out
    assert current == stalled + 1
    assert await store.holds(job_id, current)
    assert not await store.holds(job_id, stalled)
    assert not await store.set_progress(job_id, stalled, Progress(done=1))
    assert not await store.finish(job_id, stalled, time.time(), result=None, error=BAD_INPUT)
    assert not await store.release(job_id, stalled)
    assert await status_of(store, job_id) is JobStatus.RUNNING
    assert await store.finish(job_id, current, time.time(), result=JobResult(), error=None)
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED and record.error is None


async def test_recording_the_same_outcome_twice_answers_true(store: JobStore) -> None:
    """redis-py resends a script whose reply was lost: the repeat must not read as refused."""
    job_id = await new_job(store)
    attempt = await run(store, job_id)
    assert await store.finish(job_id, attempt, time.time(), result=None, error=BAD_INPUT)
    assert await store.finish(job_id, attempt, time.time(), result=None, error=BAD_INPUT)
    assert not await store.finish(job_id, attempt, time.time(), result=JobResult(), error=None)
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED


async def test_a_job_that_expired_before_it_started_fails_as_expired(store: JobStore) -> None:
    job_id = await new_job(store, expires_in=-1)
    assert (await store.begin_attempt(job_id, time.time())).admission is Admission.DROP
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED and record.attempts == 0
    assert record.error is not None and record.error.type == "expired"


async def test_an_undeliverable_job_fails_with_the_reason(store: JobStore) -> None:
    unknown = JobError(type="unknown_kind", message="no worker knows it", retryable=True)
    queued = await new_job(store)
    running = await new_job(store)
    finished = await new_job(store)
    await run(store, running)
    await succeed(store, finished)
    for job_id in (queued, running):
        assert await store.fail_undeliverable(job_id, time.time(), unknown)
        record = await store.get(job_id)
        assert record is not None and record.status is JobStatus.FAILED and record.error == unknown
    assert not await store.fail_undeliverable(finished, time.time(), unknown)
    assert await status_of(store, finished) is JobStatus.SUCCEEDED
    assert await listed(store, status=JobStatus.FAILED) == [running, queued]


# -- the sweeper -------------------------------------------------------------------------------


async def test_the_sweeper_queues_again_a_job_whose_message_is_gone(store: JobStore) -> None:
    now = time.time()
    job_id = new_job_id(now)
    await store.create(
        JobRecord(id=job_id, tenant="local", kind="qr", request={}, created_at=now,
                  expires_at=now + 60, max_attempts=3, message=b"the message")
    )  # fmt: skip
    attempt = await run(store, job_id)  # then its message was acked with no outcome
    report = await store.sweep(time.time())
    assert report.requeued == [job_id] and report.failed == []
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.QUEUED and record.attempts == attempt
    assert (await store.sweep(time.time())).requeued == [], "its message is back now"


async def test_the_sweeper_fails_a_lost_job_with_no_attempts_left(store: JobStore) -> None:
    spent = await new_job(store, max_attempts=1)
    await run(store, spent)
    no_message = await new_job(store)
    finished = await new_job(store)
    await succeed(store, finished)
    report = await store.sweep(time.time())
    assert sorted(report.failed) == sorted([spent, no_message]) and report.requeued == []
    for job_id in (spent, no_message):
        record = await store.get(job_id)
        assert record is not None and record.status is JobStatus.FAILED
        assert record.error is not None and record.error.type == "worker_lost"
    assert await status_of(store, finished) is JobStatus.SUCCEEDED


async def test_the_sweeper_ends_a_lost_job_with_a_cancel_requested_as_cancelled(
    store: JobStore,
) -> None:
    job_id = await new_job(store)
    await run(store, job_id)
    await store.cancel(job_id, time.time())
    await store.sweep(time.time())
    assert await status_of(store, job_id) is JobStatus.CANCELLED


async def test_cancels_requested_names_the_running_jobs_asked_to_stop(store: JobStore) -> None:
    clock = Clock()
    asked = await new_job(store, clock)
    running = await new_job(store, clock)
    queued = await new_job(store, clock)
    await run(store, asked)
    await run(store, running)
    await store.cancel(asked, time.time())
    await store.cancel(queued, time.time())  # cancelled at once, never asked to stop
    unknown = "0" * 32
    assert await store.cancels_requested([asked, running, queued, unknown]) == {asked}
    assert await store.cancels_requested([]) == set()


async def test_cancels_requested_reads_many_ids_at_once(store: JobStore) -> None:
    """A worker with more jobs than SQLite takes parameters in one query still gets them all."""
    clock = Clock()
    job_ids = [await new_job(store, clock) for _ in range(1_200)]
    for job_id in job_ids[::100]:
        await run(store, job_id)
        await store.cancel(job_id, time.time())
    assert await store.cancels_requested(job_ids) == set(job_ids[::100])
