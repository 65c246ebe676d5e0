"""Submitting on Redis: the job's hash, its indexes and its stream entry in one MULTI."""

from __future__ import annotations

from redis.asyncio import Redis
from taskiq import BrokerMessage

from brokers.contract import JobRecord
from brokers.redis.broker import OffloadStreamBroker
from brokers.redis.store import RedisJobStore


class RedisJobSubmitter:
    def __init__(self, redis: Redis, store: RedisJobStore, broker: OffloadStreamBroker) -> None:
        self.redis = redis
        self.store = store
        self.broker = broker

    async def submit(self, job: JobRecord, message: BrokerMessage) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.store.queue_create(pipe, job)
            pipe.xadd(self.broker.queue_name, self.broker.entry(message))
            await pipe.execute()
