"""The Redis backend under faults a real deployment meets, against a real redis-server.

redis-py (with ``retry_on_error``, as the factory builds it) sends a command again when the
connection breaks before its reply arrives, though Redis may have run it already; a
:class:`RedisProxy` between client and server makes that happen on cue. Each test's
docstring says how the code before the fix failed it (checked by reverting the fix).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from brokers import broker as app_broker
from brokers.contract import (
    Admission,
    Admitted,
    JobRecord,
    SubmitOutcomeUnknown,
    Submitted,
    new_job_id,
)
from brokers.factory import SUBMIT_SETTLE_SECONDS, Backend, build_backend
from brokers.redis import scripts
from brokers.redis.broker import OffloadStreamBroker
from brokers.redis.keys import Keys
from brokers.redis.store import RedisJobStore
from schemas.jobs import JobError, JobStatus
from service.app import create_app
from service.settings import Settings
from tests.brokers.test_redis_broker import (
    LEASE,
    Consumer,
    ConsumerFactory,
    consumer,
    keys,
    kick,
    pending_of,
    redis,
    started,
    stop_heartbeat,
    store,
    store_job,
    xlen,
)
from tests.support.redis_proxy import RedisProxy, evalsha_of
from tests.support.redis_server import RedisServer, free_port

SHARED_FIXTURES = (consumer, keys, redis, store)
"""test_redis_broker's fixtures, which pytest finds here because they are imported."""
PROBLEM = "application/problem+json"


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[RedisProxy]:
    proxy = RedisProxy(redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


def backend_through(proxy: RedisProxy, data_dir: Path, keys: Keys) -> Backend:
    """The app's Redis backend (as the factory builds it), reaching Redis through ``proxy``."""
    backend = build_backend(
        Settings(broker_url=proxy.url, redis_prefix=keys.prefix, data_dir=data_dir)
    )
    backend.adopt_tasks(app_broker)
    return backend


@contextlib.asynccontextmanager
async def api(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no worker: nothing takes the submitted job off the stream."""
    app = create_app(backend, embedded_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http


async def task_ids(redis: Redis, keys: Keys) -> list[bytes]:
    """The task id of each entry in the stream, oldest first."""
    entries: Any = await redis.xrange(keys.stream)
    return [fields[b"task_id"] for _, fields in entries]


async def job_when(
    store: RedisJobStore, job_id: str, status: JobStatus, timeout: float
) -> JobRecord:
    deadline = time.monotonic() + timeout
    while (record := await store.get(job_id)) is None or record.status is not status:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is not {status.value} after {timeout} s: {record}")
        await asyncio.sleep(0.05)
    return record


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": "lost-reply"}])
async def test_a_submit_whose_reply_was_lost_is_queued_once(
    proxy: RedisProxy,
    redis: Redis,
    store: RedisJobStore,
    keys: Keys,
    tmp_path: Path,
    headers: dict[str, str],
) -> None:
    """Before: submit was one MULTI pipeline. redis-py sent it again after the lost reply,
    and Redis, which had run it, ran it again: two stream entries (XLEN 2) for one job, so
    it would run twice, and the job hash written over."""
    await redis.script_load(scripts.SUBMIT)  # so the EVALSHA that is cut is the one that runs
    backend = backend_through(proxy, tmp_path, keys)
    try:
        async with api(backend) as http:
            lost = proxy.lose_reply(evalsha_of(scripts.SUBMIT))
            response = await http.post("/v1/jobs/qr", json={"data": "hello"}, headers=headers)
            assert lost.done.is_set(), "no submit went through the proxy"
            assert lost.reply == b"*1\r\n:1\r\n", "the lost reply should say the job was stored"

            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            assert await task_ids(redis, keys) == [job_id.encode()]
            listed = (await http.get("/v1/jobs")).json()["items"]
            assert [job["id"] for job in listed] == [job_id]
        record = await store.get(job_id)
        assert record is not None
        assert (record.status, record.attempts) == (JobStatus.QUEUED, 0)
    finally:
        await backend.close()


async def test_a_submit_redis_never_confirms_is_answered_503_and_withdrawn(
    proxy: RedisProxy,
    redis: Redis,
    store: RedisJobStore,
    keys: Keys,
    consumer: ConsumerFactory,
    tmp_path: Path,
) -> None:
    """The submit's reply is lost and Redis then stays out of reach for longer than the
    settle time. Before: the API answered 503 without the job's id, and the job, which Redis
    had stored, stayed queued and ran once Redis was back, though the client had been told
    it was not queued and would submit it again."""
    await redis.script_load(scripts.SUBMIT)
    backend = backend_through(proxy, tmp_path, keys)
    try:
        async with api(backend) as http:
            lost = proxy.lose_reply(evalsha_of(scripts.SUBMIT), then_go_dark=True)
            response = await http.post("/v1/jobs/qr", json={"data": "hello"})
            assert lost.reply == b"*1\r\n:1\r\n", "Redis should have stored the job"
            assert proxy.refused > 0, "the resend and the read-back should have been refused"

            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == PROBLEM
            job_id = response.json()["job_id"]
            stored = await store.get(job_id)
            assert stored is not None and stored.status is JobStatus.QUEUED

            await asyncio.sleep(SUBMIT_SETTLE_SECONDS)  # the withdrawal is refused a while too
            proxy.restore()
            withdrawn = await job_when(store, job_id, JobStatus.FAILED, timeout=10)
    finally:
        await backend.close()
    assert withdrawn.error is not None and withdrawn.error.type == "submit_unconfirmed"
    assert (withdrawn.attempts, withdrawn.started_at) == (0, None)

    worker = await started(consumer, gated=True)
    assert await worker.nothing_within(1.0)
    assert await xlen(redis, keys) == 0, "the worker should have read the message and dropped it"
    never_ran = await store.get(job_id)
    assert never_ran is not None
    assert (never_ran.status, never_ran.attempts) == (JobStatus.FAILED, 0)


async def owners(redis: Redis, keys: Keys) -> list[tuple[bytes, str]]:
    """Each pending entry and the consumer that holds it."""
    pending: Any = await redis.xpending_range(keys.stream, keys.group, "-", "+", 100)
    return [(entry["message_id"], entry["consumer"].decode()) for entry in pending]


async def test_a_late_ack_leaves_the_entry_to_the_consumer_that_took_it_over(
    consumer: ConsumerFactory, redis: Redis, keys: Keys
) -> None:
    """Before: an ack was a plain XACK + XDEL, so the stalled consumer's late ack removed the
    entry its successor held: had the successor died, the job was lost."""
    stalled, successor = await started(consumer), await started(consumer)
    await kick(stalled.broker, "job")
    late = await stalled.next()
    await stop_heartbeat(stalled.broker)  # it stalls: its lease runs out, it still holds it
    taken = await successor.next(timeout=3 * LEASE)
    assert taken.data == b"job"
    [(entry_id, _)] = await owners(redis, keys)

    await late.ack()  # type: ignore[misc]
    assert await owners(redis, keys) == [(entry_id, successor.broker.consumer_name)]
    assert await xlen(redis, keys) == 1

    await taken.ack()  # type: ignore[misc]
    assert await owners(redis, keys) == []
    assert await xlen(redis, keys) == 0


@contextlib.asynccontextmanager
async def proxied_consumer(
    proxy: RedisProxy, keys: Keys, store: RedisJobStore
) -> AsyncIterator[Consumer]:
    """A gated consumer that reaches Redis through ``proxy`` and resends like the factory's."""
    broker = OffloadStreamBroker(
        proxy.url,
        keys=keys,
        lease_seconds=30,
        gate=store.begin_attempt,
        retry_on_error=[RedisConnectionError],
    )
    each = Consumer(broker)
    await broker.startup()
    try:
        yield each
    finally:
        await each.close()
        await stop_heartbeat(broker)
        await broker.shutdown()


async def test_a_hand_back_resent_after_its_reply_was_lost_leaves_one_copy(
    proxy: RedisProxy, redis: Redis, store: RedisJobStore, keys: Keys
) -> None:
    """Before: a hand-back was one MULTI (XACK, XDEL, XADD) and a separate requeue; resent
    after its reply was lost, the MULTI added the message a second time (XLEN 2)."""
    await redis.script_load(scripts.HAND_BACK)
    job_id = await store_job(store, JobStatus.QUEUED, attempts=1)
    async with proxied_consumer(proxy, keys, store) as holder:
        await kick(holder.broker, job_id)
        await holder.next()
        running = await store.get(job_id)
        assert running is not None and (running.status, running.attempts) == (JobStatus.RUNNING, 2)

        lost = proxy.lose_reply(evalsha_of(scripts.HAND_BACK))
        await holder.broker.release_held()
        assert lost.reply.startswith(b"$"), f"the hand-back should have run: {lost.reply!r}"

        assert await task_ids(redis, keys) == [job_id.encode()]
        assert await owners(redis, keys) == []
        queued = await store.get(job_id)
        assert queued is not None and (queued.status, queued.attempts) == (JobStatus.QUEUED, 1)


HEARTBEAT_LEASE = 2.0


@contextlib.asynccontextmanager
async def read_only(redis: Redis) -> AsyncIterator[None]:
    """Redis refuses every write (READONLY), as a primary demoted to a replica does; the
    primary it follows does not exist, so it keeps its data."""
    await redis.replicaof("127.0.0.1", free_port())
    try:
        yield
    finally:
        await redis.replicaof("NO", "ONE")


async def idle_ms(redis: Redis, keys: Keys, entry_id: bytes) -> int:
    pending: Any = await redis.xpending_range(keys.stream, keys.group, entry_id, entry_id, 1)
    return int(pending[0]["time_since_delivered"])


async def test_the_heartbeat_outlives_a_redis_that_refuses_writes(
    consumer: ConsumerFactory, redis: Redis, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the heartbeat caught only connection errors and timeouts. The first READONLY
    (a ResponseError) ended its task for good: the lease was never renewed again, and the
    long job went to a second consumer while its worker still ran it."""
    caplog.set_level(logging.WARNING, logger="brokers.heartbeat")
    holder = await started(consumer, HEARTBEAT_LEASE)
    await kick(holder.broker, "long")
    long = await holder.next()
    [(entry_id, _)] = await owners(redis, keys)
    interval = holder.broker._heartbeat.interval

    async with read_only(redis):
        await asyncio.sleep(2.5 * interval)
    idle_at_restore = await idle_ms(redis, keys, entry_id)
    deadline = time.monotonic() + 3 * interval
    while await idle_ms(redis, keys, entry_id) >= idle_at_restore:
        assert time.monotonic() < deadline, "the lease was not renewed once Redis took writes"
        await asyncio.sleep(0.05)

    other = await started(consumer, HEARTBEAT_LEASE)
    assert await other.nothing_within(2 * HEARTBEAT_LEASE)
    assert await owners(redis, keys) == [(entry_id, holder.broker.consumer_name)]
    await long.ack()  # type: ignore[misc]
    assert await xlen(redis, keys) == 0
    refused = [r for r in caplog.records if "ReadOnlyError" in r.getMessage()]
    assert len(refused) >= 2, "the heartbeat should have tried, and failed, while read-only"


RECLAIM_LEASE = 3.0
"""Seconds: long enough that the live consumer's renewals hold on a loaded machine."""


async def test_every_entry_of_a_dead_consumer_is_reclaimed_behind_many_live_ones(
    consumer: ConsumerFactory, redis: Redis, keys: Keys
) -> None:
    """Before: each reclaim round was one XAUTOCLAIM from ``0-0``, which looks at no more
    than 10 x COUNT (40) pending entries: the first 40 live ones, every round, so the dead
    consumer's 10 entries behind 200 live ones were never reclaimed."""
    live = await started(consumer, RECLAIM_LEASE)
    await kick(live.broker, *(f"live-{n}" for n in range(200)), *(f"dead-{n}" for n in range(10)))
    held = [await live.next() for _ in range(200)]
    assert {m.data for m in held} == {f"live-{n}".encode() for n in range(200)}
    dying = await started(consumer, RECLAIM_LEASE)
    orphans = [await dying.next() for _ in range(10)]
    idle = await started(consumer, RECLAIM_LEASE)
    idle.listen()
    await dying.kill()

    # Their lease runs out within one lease; the next reclaim round (every third of a lease)
    # takes COUNT (4) of them and, having found some, looks again at once until none is left.
    deadline = time.monotonic() + 2 * RECLAIM_LEASE
    reclaimed: list[bytes] = []
    with contextlib.suppress(TimeoutError):
        while len(reclaimed) < len(orphans):
            message = await idle.next(timeout=max(deadline - time.monotonic(), 0.01))
            reclaimed.append(message.data)
    assert sorted(reclaimed) == sorted(m.data for m in orphans)
    assert await pending_of(redis, keys, live) == 200, "a live consumer's entry was taken"


async def test_admission_asked_again_by_the_same_delivery_answers_the_same_attempt(
    proxy: RedisProxy, redis: Redis, store: RedisJobStore, keys: Keys
) -> None:
    """Before: admission had no notion of who asked. Resent after its reply was lost, it
    counted a second attempt for the one delivery (attempt 2; with max_attempts 2 the job
    would then fail as worker_lost at its first real retry)."""
    await redis.script_load(scripts.ADMIT)
    job_id = await store_job(store, JobStatus.QUEUED)
    client = Redis.from_url(proxy.url, decode_responses=True, retry_on_error=[RedisConnectionError])
    try:
        lost = proxy.lose_reply(evalsha_of(scripts.ADMIT))
        first = await RedisJobStore(client, keys).begin_attempt(job_id, time.time(), "a/1-0")
        assert lost.reply.startswith(b"*2"), f"admission should have run: {lost.reply!r}"
    finally:
        await client.aclose()
    assert first == Admitted(Admission.RUN, 1)
    assert await store.begin_attempt(job_id, time.time(), "a/1-0") == Admitted(Admission.RUN, 1)
    record = await store.get(job_id)
    assert record is not None and record.attempts == 1

    assert await store.begin_attempt(job_id, time.time(), "b/2-0") == Admitted(Admission.RUN, 2)
    record = await store.get(job_id)
    assert record is not None and (record.status, record.attempts) == (JobStatus.RUNNING, 2)


async def test_a_submit_still_in_flight_after_it_was_found_absent_stores_nothing(
    store: RedisJobStore, redis: Redis, keys: Keys
) -> None:
    """The API read the job back, found nothing and answered 503; a copy of the SUBMIT that
    was still on its way (TCP resends) must not create the job after that answer."""
    now = time.time()
    job = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 60, max_attempts=3, message=b"late",
    )  # fmt: skip
    assert not await store.stored(job.id)
    with pytest.raises(SubmitOutcomeUnknown):
        await store.submit(job, b"late", keys.stream)
    assert await store.get(job.id) is None
    assert await redis.xlen(keys.stream) == 0
    assert await store.stored(job.id) is False


async def test_forgetting_an_old_job_keeps_a_newer_jobs_idempotency_key(
    store: RedisJobStore, keys: Keys
) -> None:
    """The key expired with the old job and was taken by a new one: purging the old job's
    tombstone must not delete the new job's key."""
    from brokers.contract import IdempotencyKey

    now = time.time()
    old = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 60, max_attempts=3,
    )  # fmt: skip
    key = IdempotencyKey("k", "same")
    assert (await store.submit(old, b"old", keys.stream, key)).created
    await store.redis.delete(*[k async for k in store.redis.scan_iter(f"{keys.prefix}:idem:*")])
    new = JobRecord(
        id=new_job_id(now + 1), tenant="local", kind="qr", request={}, created_at=now + 1,
        expires_at=now + 61, max_attempts=3,
    )  # fmt: skip
    assert (await store.submit(new, b"new", keys.stream, key)).created
    await store.fail_undeliverable(old.id, now, JobError(type="x", message="x", retryable=False))
    await store.purge_expired(now + 10**6, 0)
    again = JobRecord(
        id=new_job_id(now + 2), tenant="local", kind="qr", request={}, created_at=now + 2,
        expires_at=now + 62, max_attempts=3,
    )  # fmt: skip
    answer = await store.submit(again, b"again", keys.stream, key)
    assert answer == Submitted(new.id, created=False, fingerprint="same")
