"""The Redis change feed when its subscription goes silent without breaking (a cut cable):
it notices by a PING with no answer, subscribes anew and delivers what it missed."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import pytest

from brokers.factory import build_backend
from brokers.redis.events import RedisJobFeed
from schemas.jobs import JobStatus
from service.settings import Settings
from tests.support.jobs import store_job
from tests.support.redis_proxy import RedisProxy
from tests.support.redis_server import RedisServer


async def test_a_silent_subscription_is_replaced_and_the_missed_change_delivered(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = RedisProxy(redis_server.port)
    await proxy.start()
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    watching = build_backend(Settings(broker_url=proxy.url, redis_prefix=prefix, data_dir=tmp_path))
    writing = build_backend(
        Settings(broker_url=redis_server.url, redis_prefix=prefix, data_dir=tmp_path)
    )
    feed = watching.events
    assert isinstance(feed, RedisJobFeed)
    feed.quiet_seconds = 0.2
    caplog.set_level(logging.WARNING, logger="brokers.redis.events")
    try:
        record = await store_job(writing, status=JobStatus.QUEUED)
        async with feed.watch(record.id) as watch:
            watch.seen(record.version)
            for _ in range(500):
                if feed.subscriptions:
                    break
                await asyncio.sleep(0.01)
            proxy.freeze()
            await writing.store.cancel(record.id, time.time())  # its PUBLISH is lost
            for _ in range(1000):  # until the listener gave the silent connection up
                if any("subscription broke" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
            proxy.restore()
            change = await watch.next(10)
    finally:
        await watching.close()
        await writing.close()
        await proxy.close()
    assert change is not None and change.status is JobStatus.CANCELLED
    assert feed.subscriptions >= 2
