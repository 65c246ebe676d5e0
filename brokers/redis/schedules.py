"""Schedules on Redis: TaskiQ's list source with JSON, and a tick ledger of SET NX keys."""

from __future__ import annotations

from redis.asyncio import Redis

from brokers.redis.keys import Keys


class RedisTickLedger:
    """Implements :class:`brokers.schedules.TickLedger`: the first SET NX of a tick wins."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def claim(self, schedule_id: str, tick: str, keep_seconds: float) -> bool:
        won = await self.redis.set(
            self.keys.tick(schedule_id, tick), "1", nx=True, ex=max(1, int(keep_seconds))
        )
        return bool(won)
