"""The webhook outbox on both backends: entries made by the terminal transition itself."""

from __future__ import annotations

import asyncio
import time

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.webhooks import DueWebhook, WebhookOutbox
from schemas.jobs import JobOptions, JobResult, JobStatus
from schemas.webhooks import WebhookDelivery, WebhookState
from service import submission
from tasks.qr import QR as QR_KIND


def outbox_of(backend: Backend) -> WebhookOutbox:
    assert backend.webhooks is not None
    return backend.webhooks


async def queued_job(backend: Backend, callback_url: str | None = "https://example.com/h") -> str:
    now = time.time()
    job = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 3600, max_attempts=3, callback_url=callback_url,
    )  # fmt: skip
    await backend.store.create(job)
    return job.id


def a_try(status: int) -> WebhookDelivery:
    return WebhookDelivery(at=time.time(), status_code=status, duration_ms=1.0)


async def test_only_a_finish_of_a_job_with_a_callback_makes_an_entry(
    any_backend: Backend,
) -> None:
    outbox = outbox_of(any_backend)
    plain = await queued_job(any_backend, callback_url=None)
    hooked = await queued_job(any_backend)
    now = time.time()
    assert await outbox.claim(now, 10, now + 30) == []  # not finished yet
    for job_id in (plain, hooked):
        fence = (await any_backend.store.begin_attempt(job_id, now)).fence
        assert await outbox.claim(time.time(), 10, now + 30) == []  # running is not terminal
        assert await any_backend.store.finish(job_id, fence, now, result=JobResult(), error=None)
    claimed = await outbox.claim(time.time(), 10, time.time() + 30)
    assert claimed == [DueWebhook(hooked, 1, 0)]
    assert await outbox.claim(time.time(), 10, time.time() + 30) == []  # leased
    job = await any_backend.store.get(hooked)
    assert job is not None and job.webhook is not None
    assert job.webhook.state is WebhookState.PENDING
    assert job.webhook.event_id == f"msg_{hooked}_1"
    assert (await any_backend.store.get(plain)).webhook is None  # type: ignore[union-attr]


async def test_a_try_is_recorded_once_and_a_later_finish_replaces_the_entry(
    any_backend: Backend,
) -> None:
    outbox = outbox_of(any_backend)
    accepted = await submission.submit(  # with its message, so it can be retried
        any_backend,
        QR_KIND,
        tenant="local",
        request={"data": "x"},
        options=JobOptions(callback_url="https://example.com/h", delay_s=600),
    )
    job_id = accepted.job.id
    assert await any_backend.store.cancel(job_id, time.time())
    (due,) = await outbox.claim(time.time(), 10, time.time() + 30)
    soon = time.time() + 0.05
    assert await outbox.record(due, a_try(500), WebhookState.PENDING, soon)
    assert not await outbox.record(due, a_try(500), WebhookState.PENDING, soon)  # stale claim
    await asyncio.sleep(0.06)
    (again,) = await outbox.claim(time.time(), 10, time.time() + 30)
    assert again == DueWebhook(job_id, 1, 1)
    # Retried by hand and cancelled again: a second event, with no tries yet.
    assert (await any_backend.store.retry(job_id, 1)).value == "retried"
    assert await any_backend.store.cancel(job_id, time.time())
    assert not await outbox.record(again, a_try(200), WebhookState.DELIVERED, None)
    (second,) = await outbox.claim(time.time(), 10, time.time() + 30)
    assert second == DueWebhook(job_id, 2, 0)
    assert await outbox.record(second, a_try(200), WebhookState.DELIVERED, None)
    job = await any_backend.store.get(job_id)
    assert job is not None and job.webhook is not None
    assert job.status is JobStatus.CANCELLED
    assert job.webhook.state is WebhookState.DELIVERED
    assert [d.status_code for d in job.webhook.deliveries] == [200]
    assert job.webhook.event_id == f"msg_{job_id}_2"
    later = time.time() + 10**6
    assert await outbox.claim(later, 10, later) == []


async def test_every_process_gets_the_same_secret(any_backend: Backend) -> None:
    outbox = outbox_of(any_backend)
    first = await outbox.secret("tenant-a", "whsec_first")
    assert first == "whsec_first"
    assert await outbox.secret("tenant-a", "whsec_second") == "whsec_first"
    assert await outbox.secret("tenant-b", "whsec_other") == "whsec_other"
