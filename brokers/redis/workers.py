"""Which task names live workers run, on Redis: one hash field per worker process."""

from __future__ import annotations

import json
from typing import cast

from redis.asyncio import Redis

from brokers.redis.keys import Keys

GONE_AFTER_SECONDS = 3600.0
"""A worker not seen for this long is forgotten."""


class RedisWorkerRegistry:
    """Implements :class:`brokers.contract.WorkerRegistry`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def announce(self, consumer: str, task_names: list[str], now: float) -> None:
        seen = await self._seen()
        gone = [name for name, (at, _) in seen.items() if at < now - GONE_AFTER_SECONDS]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.workers, consumer, json.dumps({"seen": now, "tasks": task_names}))
            if gone:
                pipe.hdel(self.keys.workers, *gone)
            await pipe.execute()

    async def leave(self, consumer: str) -> None:
        await self.redis.hdel(self.keys.workers, consumer)

    async def known_by_a_live_worker(self, task_name: str, now: float, within: float) -> bool:
        return any(
            at >= now - within and task_name in names for at, names in (await self._seen()).values()
        )

    async def _seen(self) -> dict[str, tuple[float, list[str]]]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.workers))
        seen = {}
        for consumer, value in raw.items():
            entry = json.loads(value)
            seen[consumer] = (float(entry["seen"]), list(entry["tasks"]))
        return seen
