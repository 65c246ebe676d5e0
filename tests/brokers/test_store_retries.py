"""Retries in the job store contract, on the embedded and the Redis store: a retryable
failure queued again under a new message token, stale copies dropped, every error kept."""

from __future__ import annotations

import time

from brokers.contract import Admission, JobRecord, JobStore, RetryOutcome, new_job_id
from schemas.jobs import JobError, JobStatus
from tests.brokers.test_store_contract import store

SHARED_FIXTURES = (store,)
FLAKY = JobError(type="flaky", message="try again", retryable=True)


async def job_with_message(store: JobStore, max_attempts: int = 3) -> str:
    now = time.time()
    job_id = new_job_id(now)
    await store.create(
        JobRecord(id=job_id, tenant="local", kind="qr", request={}, created_at=now,
                  expires_at=now + 60, max_attempts=max_attempts, message=b"{}")
    )  # fmt: skip
    return job_id


async def start(store: JobStore, job_id: str, token: int = 0) -> int:
    admitted = await store.begin_attempt(job_id, time.time(), token=token)  # type: ignore[call-arg]
    assert admitted.admission is Admission.RUN, admitted
    return admitted.fence


async def record(store: JobStore, job_id: str) -> JobRecord:
    found = await store.get(job_id)
    assert found is not None
    return found


async def test_a_stale_copy_of_a_retried_jobs_message_neither_starts_it_early_nor_twice(
    store: JobStore,
) -> None:
    """The old delivery comes back (its worker died between the retry write and the ack):
    it is dropped and the job waits for its next message, which runs it."""
    job_id = await job_with_message(store)
    fence = await start(store, job_id)
    due = time.time() + 30
    assert await store.schedule_retry(job_id, fence, time.time(), FLAKY, due) is JobStatus.RETRYING
    waiting = await record(store, job_id)
    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == (
        JobStatus.RETRYING, 1, due
    )  # fmt: skip
    assert [(e.attempt, e.type) for e in waiting.attempt_errors] == [(1, "flaky")]
    assert waiting.attempt_errors[0].retry_at is not None

    stale = await store.begin_attempt(job_id, time.time(), token=0)  # type: ignore[call-arg]
    assert stale.admission is Admission.DROP
    assert (await record(store, job_id)).status is JobStatus.RETRYING, "the stale copy touched it"

    second = await start(store, job_id, token=1)
    assert second > fence
    running = await record(store, job_id)
    assert (running.status, running.attempts, running.next_attempt_at) == (
        JobStatus.RUNNING, 2, None
    )  # fmt: skip


async def test_an_outcome_recorded_again_by_the_same_attempt_changes_nothing(
    store: JobStore,
) -> None:
    job_id = await job_with_message(store)
    fence = await start(store, job_id)
    for _ in range(2):
        status = await store.schedule_retry(job_id, fence, time.time(), FLAKY, time.time() + 30)
        assert status is JobStatus.RETRYING
    assert len((await record(store, job_id)).attempt_errors) == 1


async def test_a_superseded_attempt_cannot_schedule_a_retry(store: JobStore) -> None:
    job_id = await job_with_message(store)
    stalled = await start(store, job_id)
    await start(store, job_id)  # another worker took it over
    assert await store.schedule_retry(job_id, stalled, time.time(), FLAKY, time.time()) is None
    assert (await record(store, job_id)).status is JobStatus.RUNNING


async def test_a_retry_of_a_cancelled_or_spent_attempt_ends_the_job(store: JobStore) -> None:
    cancelled = await job_with_message(store)
    fence = await start(store, cancelled)
    await store.cancel(cancelled, time.time())
    ended = await store.schedule_retry(cancelled, fence, time.time(), FLAKY, time.time())
    assert ended is JobStatus.CANCELLED
    assert (await record(store, cancelled)).status is JobStatus.CANCELLED

    spent = await job_with_message(store, max_attempts=1)
    fence = await start(store, spent)
    assert await store.schedule_retry(spent, fence, time.time(), FLAKY, time.time()) is (
        JobStatus.FAILED
    )
    failed = await record(store, spent)
    assert failed.status is JobStatus.FAILED and failed.error == FLAKY
    assert [e.attempt for e in failed.attempt_errors] == [1]


async def test_a_manual_retry_queues_a_fresh_message_and_the_old_one_goes_stale(
    store: JobStore,
) -> None:
    """The stranded-retry hazard: a retry landing between a worker's finish and its ack used
    to see the old message, add none, and leave the job queued with no message once the ack
    removed it. Now the retry always queues one, under a new token."""
    job_id = await job_with_message(store)
    fence = await start(store, job_id)
    assert await store.finish(job_id, fence, time.time(), result=None, error=FLAKY)
    assert await store.retry(job_id, 3) is RetryOutcome.RETRIED
    swept = await store.sweep(time.time())
    assert job_id not in swept.requeued, "the retry's own message was not seen"
    stale = await store.begin_attempt(job_id, time.time(), token=0)  # type: ignore[call-arg]
    assert stale.admission is Admission.DROP
    await start(store, job_id, token=1)
    assert [e.attempt for e in (await record(store, job_id)).attempt_errors] == [1]
