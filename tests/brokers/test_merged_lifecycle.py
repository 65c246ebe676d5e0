"""Where the lifecycle's parts meet, on both stores: retries, cancel, webhooks and versions."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from brokers.contract import Admission, JobRecord, JobStore, new_job_id
from brokers.redis.webhooks import RedisWebhookOutbox
from brokers.sqlite.store import SqliteJobStore
from brokers.sqlite.webhooks import SqliteWebhookOutbox
from brokers.webhooks import WebhookOutbox
from schemas.jobs import JobError, JobStatus
from schemas.webhooks import WebhookDelivery, WebhookState
from tests.brokers.test_store_contract import store

__all__ = ["store"]

FLAKY = JobError(type="flaky", message="try again", retryable=True)
HOOK = "https://example.com/hook"


async def stored_job(store: JobStore) -> str:
    now = time.time()
    job_id = new_job_id(now)
    await store.create(
        JobRecord(
            id=job_id, tenant="local", kind="qr", request={}, created_at=now,
            expires_at=now + 600, max_attempts=3, message=b"{}", callback_url=HOOK,
        )
    )  # fmt: skip
    return job_id


def outbox_of(store: JobStore) -> WebhookOutbox:
    if isinstance(store, SqliteJobStore):
        return SqliteWebhookOutbox(store.database)
    return RedisWebhookOutbox(store.redis, store.keys)  # type: ignore[attr-defined]


async def test_a_job_cancelled_while_retrying_shows_no_next_attempt(store: JobStore) -> None:
    job_id = await stored_job(store)
    attempt = await store.begin_attempt(job_id, time.time(), token=0)  # type: ignore[call-arg]
    assert attempt.admission is Admission.RUN
    retrying = await store.schedule_retry(
        job_id, attempt.fence, time.time(), FLAKY, time.time() + 30
    )
    assert retrying is JobStatus.RETRYING
    await store.cancel(job_id, time.time())
    record = await store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED
    assert record.next_attempt_at is None
    assert record.webhook is not None and record.webhook.state is WebhookState.PENDING


async def test_a_webhook_try_is_a_new_version_of_the_job(store: JobStore) -> None:
    """Long-polls and event streams of a finished job hear its webhook's tries."""
    job_id = await stored_job(store)
    attempt = await store.begin_attempt(job_id, time.time(), token=0)  # type: ignore[call-arg]
    failed = JobError(type="x", message="x", retryable=False)
    assert await store.finish(job_id, attempt.fence, time.time(), result=None, error=failed)
    before = await store.get(job_id)
    outbox = outbox_of(store)
    (due,) = await outbox.claim(time.time(), 10, time.time() + 15)
    tried = WebhookDelivery(at=datetime.now(UTC), status_code=500, error="x", duration_ms=1.0)
    assert await outbox.record(due, tried, WebhookState.PENDING, time.time() + 60)
    after = await store.get(job_id)
    assert before is not None and after is not None and after.webhook is not None
    assert len(after.webhook.deliveries) == 1
    assert after.version > before.version
