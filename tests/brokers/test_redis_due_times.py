"""Due times on Redis against a real redis-server: the delayed set, its promotion into the
lane streams, stale copies after a worker died, lost replies and a Redis restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from taskiq import BrokerMessage

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from brokers.redis import scripts
from brokers.redis.keys import Keys
from brokers.redis.store import RedisJobStore
from schemas.jobs import JobError, JobStatus
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.brokers.test_redis_broker import (
    ConsumerFactory,
    consumer,
    keys,
    redis,
    started,
    store,
)
from tests.brokers.test_redis_faults import proxy
from tests.conftest import redis_backend
from tests.service.test_automatic_retries import Ceiling
from tests.service.test_retry import api
from tests.support.flaky_tasks import flaky_in_seconds
from tests.support.jobs import wait_for_job
from tests.support.redis_proxy import RedisProxy, evalsha_of
from tests.system.test_redis_processes import DurableRedisServer

SHARED_FIXTURES = (consumer, keys, redis, store, proxy)
FLAKY = JobError(type="flaky", message="try again", retryable=True)


async def submitted(store: RedisJobStore, keys: Keys, due_in: float = 0.0) -> str:
    """A job stored with its message, as the API submits it; due ``due_in`` s from now."""
    now = time.time()
    job = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 60, max_attempts=3, due_at=now + due_in if due_in else None,
    )  # fmt: skip
    await store.submit(job, job.id.encode(), keys.stream)
    return job.id


async def test_a_job_due_later_waits_in_the_delayed_set_not_the_stream(
    store: RedisJobStore, redis: Redis, keys: Keys
) -> None:
    job_id = await submitted(store, keys, due_in=30)
    assert await redis.xlen(keys.stream) == 0
    assert await redis.zscore(keys.delayed, job_id) is not None
    assert (await store.sweep(time.time())).requeued == [], "a delayed job is not an orphan"
    assert await store.cancel(job_id, time.time()) is not None
    assert await redis.zscore(keys.delayed, job_id) is None, "cancel leaves it in the set"


async def test_a_stale_copy_reclaimed_from_a_dead_worker_is_dropped_and_the_retry_runs_once(
    consumer: ConsumerFactory, store: RedisJobStore, redis: Redis, keys: Keys
) -> None:
    """The worker recorded the retry, then died before its ack: its entry is reclaimed by
    another worker after the lease. It must not start the job early (or at all): the
    job's next message is the promoted one."""
    job_id = await submitted(store, keys)
    dying = await started(consumer, gated=True)
    await dying.next()
    fence = dying.broker.fence_of(job_id)
    assert fence is not None
    due = time.time() + 2.0
    assert await store.schedule_retry(job_id, fence, time.time(), FLAKY, due) is (
        JobStatus.RETRYING
    )
    await dying.kill()

    survivor = await started(consumer, gated=True)
    message = await survivor.next(timeout=10)
    assert time.time() >= due - 0.01, "the stale copy started the job before it was due"
    assert message.data == job_id.encode()
    record = await store.get(job_id)
    assert record is not None and (record.status, record.attempts) == (JobStatus.RUNNING, 2)
    assert await survivor.nothing_within(1.5)
    await message.ack()  # type: ignore[misc]
    assert await redis.xlen(keys.stream) == 0


async def proxied_store(proxy: RedisProxy, keys: Keys) -> tuple[Redis, RedisJobStore]:
    client = Redis.from_url(proxy.url, decode_responses=True, retry_on_error=[RedisConnectionError])
    return client, RedisJobStore(client, keys)


async def test_a_retry_resent_after_its_reply_was_lost_queues_one_message(
    proxy: RedisProxy, redis: Redis, store: RedisJobStore, keys: Keys
) -> None:
    await redis.script_load(scripts.SCHEDULE_RETRY)
    job_id = await submitted(store, keys)
    fence = (await store.begin_attempt(job_id, time.time())).fence
    client, through = await proxied_store(proxy, keys)
    try:
        lost = proxy.lose_reply(evalsha_of(scripts.SCHEDULE_RETRY))
        status = await through.schedule_retry(job_id, fence, time.time(), FLAKY, time.time() + 30)
        assert lost.done.is_set() and b"retrying" in lost.reply, lost.reply
    finally:
        await client.aclose()
    assert status is JobStatus.RETRYING
    assert await redis.zcard(keys.delayed) == 1
    assert await redis.hget(keys.job(job_id), "token") == b"1", "a second token was drawn"
    record = await store.get(job_id)
    assert record is not None and [e.attempt for e in record.attempt_errors] == [1]


async def test_a_promotion_resent_after_its_reply_was_lost_adds_one_entry(
    proxy: RedisProxy, redis: Redis, store: RedisJobStore, keys: Keys
) -> None:
    await redis.script_load(scripts.PROMOTE)
    job_id = await submitted(store, keys, due_in=0.05)
    await asyncio.sleep(0.1)
    client = Redis.from_url(proxy.url, retry_on_error=[RedisConnectionError])
    try:
        promote = client.register_script(scripts.PROMOTE)
        lost = proxy.lose_reply(evalsha_of(scripts.PROMOTE))
        await promote(keys=[keys.prefix], args=["", repr(time.time()), 100])
        assert lost.done.is_set() and lost.reply.startswith(b"*2\r\n:1"), lost.reply
    finally:
        await client.aclose()
    entries: Any = await redis.xrange(keys.stream)
    assert [fields[b"task_id"] for _, fields in entries] == [job_id.encode()]
    assert await redis.zcard(keys.delayed) == 0


async def test_a_bulk_job_is_queued_in_the_bulk_stream(
    store: RedisJobStore, redis: Redis, keys: Keys
) -> None:
    now = time.time()
    job = JobRecord(
        id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
        expires_at=now + 60, max_attempts=3, lane="bulk",
    )  # fmt: skip
    await store.submit(job, b"{}", keys.lane_stream("bulk"))
    assert await redis.xlen(keys.lane_stream("bulk")) == 1
    assert await redis.xlen(keys.stream) == 0
    assert (await store.sweep(time.time())).requeued == []


@pytest.fixture
async def durable(tmp_path: Path) -> AsyncIterator[DurableRedisServer]:
    server = DurableRedisServer(tmp_path / "durable-redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
async def test_a_job_in_backoff_survives_a_redis_restart(
    durable: DurableRedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With persistence on, the delayed set and the job's message come back with Redis, and
    the worker, reconnecting, runs the next attempt when it is due."""
    backend: Backend = redis_backend(durable, tmp_path)
    for middleware in backend.broker.middlewares:
        monkeypatch.setattr(middleware, "rng", Ceiling(), raising=False)
    try:
        async with api(backend, worker=True) as client:
            request = {"marker": str(tmp_path / "failed-once")}
            accepted = await submit(
                backend, QR_KIND, tenant="local", task=flaky_in_seconds, request=request
            )
            job_id = accepted.job.id
            await wait_for_job(client, job_id, {"retrying"})
            durable.stop()
            durable.start()
            job = await wait_for_job(client, job_id, timeout=30)
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert [e["attempt"] for e in job["attempt_errors"]] == [1]
    finally:
        await backend.close()


async def test_a_plain_message_kicked_with_a_delay_arrives_when_it_is_due(
    consumer: ConsumerFactory, redis: Redis, keys: Keys
) -> None:
    listener = await started(consumer)
    listener.listen()
    kicked = time.time()
    await listener.broker.kick(
        BrokerMessage(task_id="later", task_name="t", message=b"later", labels={"delay": 0.5})
    )
    assert await redis.xlen(keys.stream) == 0
    message = await listener.next(timeout=5)
    assert message.data == b"later" and time.time() >= kicked + 0.5 - 0.01
    assert await redis.exists(f"{keys.prefix}:delayed:later") == 0
