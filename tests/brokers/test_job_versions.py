"""Every change a client can see bumps the job's version, on both backends, and the change
feed hands it to the watches of that job (brokers.events)."""

from __future__ import annotations

import time
from pathlib import Path

from brokers.contract import JobRecord, RetryOutcome, new_job_id
from brokers.factory import Backend
from brokers.sqlite.database import Database
from schemas.jobs import JobResult, JobStatus, Progress
from tests.support.jobs import store_job


async def version(backend: Backend, job_id: str) -> int:
    record = await backend.store.get(job_id)
    assert record is not None
    return record.version


async def test_each_visible_change_bumps_the_version(any_backend: Backend) -> None:
    store = any_backend.store
    now = time.time()
    record = JobRecord(new_job_id(now), "local", "qr", {}, now, now + 60, 3, message=b"{}")
    await store.create(record)
    seen = [await version(any_backend, record.id)]
    fence = (await store.begin_attempt(record.id, time.time())).fence
    seen.append(await version(any_backend, record.id))
    assert await store.set_progress(record.id, fence, Progress(done=1, total=2))
    seen.append(await version(any_backend, record.id))
    await store.cancel(record.id, time.time())  # running: only cancel_requested changes
    seen.append(await version(any_backend, record.id))
    await store.finish(
        record.id, fence, time.time(), result=None, error=None, status=JobStatus.CANCELLED
    )
    seen.append(await version(any_backend, record.id))
    assert await store.retry(record.id, 3) is RetryOutcome.RETRIED
    seen.append(await version(any_backend, record.id))
    assert seen[0] == 1
    assert seen == sorted(set(seen)), f"a change did not bump the version: {seen}"


async def test_a_refused_write_leaves_the_version(any_backend: Backend) -> None:
    record = await store_job(any_backend, status=JobStatus.SUCCEEDED)
    before = await version(any_backend, record.id)
    assert not await any_backend.store.set_progress(record.id, 99, Progress(done=1))
    assert not await any_backend.store.finish(
        record.id, 99, time.time(), result=JobResult(), error=None
    )
    assert await version(any_backend, record.id) == before


async def test_the_feed_hands_a_change_to_every_watch_of_the_job(any_backend: Backend) -> None:
    record = await store_job(any_backend, status=JobStatus.QUEUED)
    other = await store_job(any_backend, status=JobStatus.QUEUED)
    async with (
        any_backend.events.watch(record.id) as first,
        any_backend.events.watch(record.id) as second,
        any_backend.events.watch(other.id) as bystander,
    ):
        for watch in (first, second, bystander):
            watch.seen(1)
        await any_backend.store.cancel(record.id, time.time())
        changed = [await watch.next(10) for watch in (first, second)]
        untouched = await bystander.next(0.2)
    assert [c.status if c else None for c in changed] == [JobStatus.CANCELLED] * 2
    assert untouched is None
    assert any_backend.events.watch_count() == 0


def test_an_older_database_gains_the_version_column_and_its_trigger(tmp_path: Path) -> None:
    database = Database(tmp_path / "offload.db")
    conn = database.connection
    conn.execute("DROP TRIGGER jobs_version")
    conn.execute("ALTER TABLE jobs DROP COLUMN version")
    now = time.time()
    conn.execute(
        "INSERT INTO jobs (id, tenant, kind, status, request, attempts, max_attempts, "
        "created_at, expires_at) VALUES ('old', 'local', 'qr', 'queued', '{}', 0, 3, ?, ?)",
        (now, now + 60),
    )
    database.close()
    reopened = Database(tmp_path / "offload.db").connection
    assert reopened.execute("SELECT version FROM jobs").fetchone() == (1,)
    reopened.execute("UPDATE jobs SET status = 'cancelled'")
    assert reopened.execute("SELECT version FROM jobs").fetchone() == (2,)


def test_an_older_database_without_callbacks_gains_the_webhook_triggers(tmp_path: Path) -> None:
    database = Database(tmp_path / "offload.db")
    conn = database.connection
    conn.execute("DROP TRIGGER webhooks_on_finish")
    conn.execute("ALTER TABLE jobs DROP COLUMN callback_url")
    database.close()
    reopened = Database(tmp_path / "offload.db").connection
    now = time.time()
    reopened.execute(
        "INSERT INTO jobs (id, tenant, kind, status, request, attempts, max_attempts, "
        "created_at, expires_at, callback_url) "
        "VALUES ('old', 'local', 'qr', 'running', '{}', 1, 3, ?, ?, 'https://example.com/h')",
        (now, now + 60),
    )
    reopened.execute("UPDATE jobs SET status = 'succeeded'")
    assert reopened.execute("SELECT job_id, state FROM webhooks").fetchall() == [("old", "pending")]
