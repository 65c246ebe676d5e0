"""The embedded broker on a real database file, with several connections as processes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from taskiq import AckableMessage, BrokerMessage

from brokers.contract import JobRecord, new_job_id
from brokers.sqlite.broker import SqliteBroker
from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore
from schemas.jobs import JobStatus

BrokerFactory = Callable[..., SqliteBroker]


@pytest.fixture
async def make_broker(tmp_path: Path) -> AsyncIterator[BrokerFactory]:
    """Brokers on one file, each with its own connection, like separate processes."""
    started: list[SqliteBroker] = []

    def make(lease_seconds: float = 30.0) -> SqliteBroker:
        database = Database(tmp_path / "offload.db")
        broker = SqliteBroker(database, lease_seconds=lease_seconds, gate=SqliteJobStore(database))
        started.append(broker)
        return broker

    yield make
    for broker in started:
        await broker.shutdown()


async def kick(broker: SqliteBroker, task_id: str, **labels: str) -> None:
    await broker.kick(
        BrokerMessage(task_id=task_id, task_name="t", message=task_id.encode(), labels=labels)
    )


async def next_message(broker: SqliteBroker, timeout: float = 5.0) -> AckableMessage:
    async def first() -> AckableMessage:
        async for message in broker.listen():
            assert isinstance(message, AckableMessage)
            return message
        raise AssertionError("listen() ended")

    return await asyncio.wait_for(first(), timeout)


async def nothing_within(broker: SqliteBroker, seconds: float) -> bool:
    try:
        await next_message(broker, seconds)
    except TimeoutError:
        return True
    return False


def queue_rows(broker: SqliteBroker) -> int:
    return int(broker.database.connection.execute("SELECT count(*) FROM queue").fetchone()[0])


async def store_job(broker: SqliteBroker, status: JobStatus, attempts: int = 0) -> str:
    job_id = new_job_id()
    now = time.time()
    await SqliteJobStore(broker.database).create(
        JobRecord(
            id=job_id, tenant="local", kind="qr", request={}, created_at=now,
            expires_at=now + 60, max_attempts=2, status=status, attempts=attempts,
        )
    )  # fmt: skip
    return job_id


async def test_a_kicked_message_is_delivered_and_an_ack_removes_it(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker()
    await broker.startup()
    await kick(broker, "a")
    message = await next_message(broker)
    assert message.data == b"a"
    await message.ack()  # type: ignore[misc]
    assert queue_rows(broker) == 0


async def test_messages_arrive_in_submission_order(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    await broker.startup()
    for name in ("first", "second", "third"):
        await kick(broker, name)
    received = [(await next_message(broker)).data for _ in range(3)]
    assert received == [b"first", b"second", b"third"]


async def test_claimed_message_is_hidden_until_its_lease_runs_out(
    make_broker: BrokerFactory,
) -> None:
    dying, survivor = make_broker(lease_seconds=0.5), make_broker(lease_seconds=0.5)
    await dying.startup()
    await survivor.startup()
    await kick(dying, "orphan")
    await next_message(dying)
    dying._held.clear()  # the worker died: no heartbeat, no release
    claimed_at = time.monotonic()
    redelivered = await next_message(survivor, timeout=5)
    assert redelivered.data == b"orphan"
    assert time.monotonic() - claimed_at >= 0.3


async def test_heartbeat_keeps_a_long_job_from_being_redelivered(
    make_broker: BrokerFactory,
) -> None:
    # A lease long enough that a loaded machine's stalls cannot break it: only a missing
    # heartbeat can.
    holder, other = make_broker(lease_seconds=2.0), make_broker(lease_seconds=2.0)
    await holder.startup()
    await other.startup()
    await kick(holder, "long")
    message = await next_message(holder)
    assert await nothing_within(other, 5.0), "redelivered while its worker was alive"
    await message.ack()  # type: ignore[misc]
    assert queue_rows(holder) == 0


async def test_delay_label_holds_a_message_until_due(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    await broker.startup()
    await kick(broker, "later", delay="0.4")
    kicked = time.monotonic()
    message = await next_message(broker)
    assert message.data == b"later"
    assert time.monotonic() - kicked >= 0.35


async def test_another_connection_sees_new_work_without_a_wakeup(
    make_broker: BrokerFactory,
) -> None:
    producer, consumer = make_broker(), make_broker()
    await producer.startup()
    await consumer.startup()
    waiting = asyncio.create_task(next_message(consumer, timeout=3))
    await asyncio.sleep(0.05)
    await kick(producer, "cross")
    assert (await waiting).data == b"cross"


async def test_two_consumers_never_get_the_same_message(make_broker: BrokerFactory) -> None:
    first, second = make_broker(), make_broker()
    await first.startup()
    await second.startup()
    for n in range(200):
        await kick(first, f"m{n}")
    received: list[bytes] = []

    async def drain(broker: SqliteBroker) -> None:
        while True:
            try:
                message = await next_message(broker, timeout=0.3)
            except TimeoutError:
                return
            received.append(message.data)
            await message.ack()  # type: ignore[misc]
            await asyncio.sleep(0)

    await asyncio.gather(drain(first), drain(second))
    assert sorted(received) == sorted(f"m{n}".encode() for n in range(200))


async def test_shutdown_hands_unfinished_jobs_back_at_once(make_broker: BrokerFactory) -> None:
    leaving, staying = make_broker(), make_broker()
    await leaving.startup()
    await staying.startup()
    job_id = await store_job(leaving, JobStatus.QUEUED)
    await kick(leaving, job_id)
    await next_message(leaving)
    store = SqliteJobStore(staying.database)
    running = await store.get(job_id)
    assert running is not None and running.status is JobStatus.RUNNING and running.attempts == 1
    await leaving.shutdown()
    requeued = await store.get(job_id)
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    assert requeued.attempts == 0
    assert (await next_message(staying, timeout=2)).data == job_id.encode()


async def test_a_late_ack_does_not_remove_a_released_job(make_broker: BrokerFactory) -> None:
    """A job still running when shutdown released it may finish later; its ack must not
    delete the row that now belongs to the next worker."""
    broker = make_broker()
    await broker.startup()
    await kick(broker, "late")
    message = await next_message(broker)
    broker.release_held()
    await message.ack()  # type: ignore[misc]
    assert queue_rows(broker) == 1


async def test_a_finished_job_delivered_again_is_dropped(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    await broker.startup()
    job_id = await store_job(broker, JobStatus.SUCCEEDED)
    await kick(broker, job_id)
    assert await nothing_within(broker, 0.3)
    assert queue_rows(broker) == 0
    record = await SqliteJobStore(broker.database).get(job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED


async def test_a_job_that_lost_every_attempt_fails_as_worker_lost(
    make_broker: BrokerFactory,
) -> None:
    broker = make_broker()
    await broker.startup()
    job_id = await store_job(broker, JobStatus.RUNNING, attempts=2)
    await kick(broker, job_id)
    assert await nothing_within(broker, 0.3)
    record = await SqliteJobStore(broker.database).get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error.type == "worker_lost"
    assert record.error.retryable


async def test_messages_survive_a_restart(make_broker: BrokerFactory) -> None:
    before = make_broker()
    await before.startup()
    await kick(before, "durable")
    await before.shutdown()
    after = make_broker()
    await after.startup()
    assert (await next_message(after)).data == b"durable"


async def test_only_a_job_handed_out_to_run_is_running(make_broker: BrokerFactory) -> None:
    """A claim leases up to ``prefetch`` rows; those still waiting in the worker are not
    started, so a crash costs them no attempt and started_at is when the job started."""
    dying, survivor = make_broker(lease_seconds=0.5), make_broker(lease_seconds=30)
    await dying.startup()
    await survivor.startup()
    store = SqliteJobStore(dying.database)
    jobs = [await store_job(dying, JobStatus.QUEUED) for _ in range(4)]
    for job_id in jobs:
        await kick(dying, job_id)
    first = await next_message(dying)
    assert first.data == jobs[0].encode()
    statuses = [(await store.get(job_id)) for job_id in jobs]
    assert [record.status for record in statuses if record] == [
        JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.QUEUED
    ]  # fmt: skip
    assert queue_rows(dying) == 4
    await dying._heartbeat.stop()  # dies like kill -9: no release, no more renewals
    dying._held.clear()
    await asyncio.sleep(0.6)
    redelivered = [(await next_message(survivor)).data.decode() for _ in range(4)]
    assert sorted(redelivered) == sorted(jobs)
    attempts = {job_id: (await store.get(job_id)).attempts for job_id in jobs}  # type: ignore[union-attr]
    assert attempts == {jobs[0]: 2, jobs[1]: 1, jobs[2]: 1, jobs[3]: 1}


async def test_the_listener_survives_a_database_error(make_broker: BrokerFactory) -> None:
    broker = make_broker()
    await broker.startup()
    failures = iter([sqlite3.OperationalError("database or disk is full")])
    real_claim = broker._claim

    def claim_failing_once(limit: int) -> list[tuple[int, int, str, bytes]]:
        for failure in failures:
            raise failure
        return real_claim(limit)

    broker._claim = claim_failing_once  # type: ignore[method-assign]
    await kick(broker, "after the error")
    assert (await next_message(broker)).data == b"after the error"


async def test_rows_are_admitted_at_claim_only_for_free_receiver_slots(tmp_path: Path) -> None:
    """With the receiver's concurrency known, a claim admits (starts) as many rows as it has
    free slots, in the claim's own transaction; the rest wait only leased."""
    database = Database(tmp_path / "offload.db")
    broker = SqliteBroker(database, lease_seconds=30, gate=SqliteJobStore(database), concurrency=2)
    await broker.startup()
    try:
        store = SqliteJobStore(database)
        jobs = [await store_job(broker, JobStatus.QUEUED) for _ in range(4)]
        for job_id in jobs:
            await kick(broker, job_id)
        first = await next_message(broker)
        statuses = [(await store.get(job_id)).status for job_id in jobs]  # type: ignore[union-attr]
        assert statuses == [
            JobStatus.RUNNING, JobStatus.RUNNING, JobStatus.QUEUED, JobStatus.QUEUED
        ]  # fmt: skip
        await first.ack()  # type: ignore[misc]
        second = await next_message(broker)
        third = await next_message(broker)
        assert [second.data, third.data] == [jobs[1].encode(), jobs[2].encode()]
        assert (await store.get(jobs[2])).status is JobStatus.RUNNING  # type: ignore[union-attr]
        assert (await store.get(jobs[3])).status is JobStatus.QUEUED  # type: ignore[union-attr]
    finally:
        await broker.shutdown()
