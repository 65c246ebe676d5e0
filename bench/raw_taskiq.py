"""Raw TaskiQ on Redis, the reference for Offload's Redis backend.

A plain ``RedisStreamBroker`` with ``RedisAsyncResultBackend`` (JSON, results kept an
hour) and one no-op task that returns ``time.time()`` taken when it runs. Nothing of
Offload's is imported. The benchmark sets ``BENCH_REDIS_URL`` (its private redis-server)
and ``BENCH_RAW_PREFIX`` (a fresh name per part) and runs::

    python -m taskiq worker bench.raw_taskiq:broker --workers 1
"""

from __future__ import annotations

import os
import time

from taskiq import AsyncBroker
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ.get("BENCH_REDIS_URL", "")
if not URL:
    raise RuntimeError("set BENCH_REDIS_URL to the benchmark's own redis-server")
PREFIX = os.environ.get("BENCH_RAW_PREFIX", "rawtaskiq")
TASK_NAME = "bench.raw.noop"


def make_broker(url: str, prefix: str) -> AsyncBroker:
    """The worker's broker below; the benchmark makes one per part with a fresh prefix."""
    return RedisStreamBroker(
        url, queue_name=f"{prefix}:queue", consumer_group_name=f"{prefix}:group"
    ).with_result_backend(
        RedisAsyncResultBackend(url, serializer=JSONSerializer(), result_ex_time=3600)
    )


broker = make_broker(URL, PREFIX)


@broker.task(task_name=TASK_NAME)
async def noop() -> float:
    """Does nothing; returns when it ran, which the benchmark reads from the result."""
    return time.time()
