"""Schedules on Redis: TaskiQ's list source with JSON, and a tick ledger of SET NX keys."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from brokers.redis.keys import Keys


class RedisTickLedger:
    """Implements :class:`brokers.schedules.TickLedger`: the first SET NX of a tick wins."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def claim(self, schedule_id: str, tick: str, keep_seconds: float) -> bool:
        # A claim whose reply was lost is sent again by redis-py; it must then read as won,
        # or nobody fires the tick. SET NX GET answers the value it found: our own token
        # means the first send set it.
        token = uuid.uuid4().hex
        found = await self.redis.set(
            self.keys.tick(schedule_id, tick),
            token,
            nx=True,
            get=True,
            ex=max(1, int(keep_seconds)),
        )
        return found is None or found == token
