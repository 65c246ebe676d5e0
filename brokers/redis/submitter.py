"""Submitting on Redis: the job's hash, its indexes and its stream entry in one script."""

from __future__ import annotations

import asyncio
import time

from taskiq import BrokerMessage

from brokers.contract import IdempotencyKey, JobRecord, SubmitOutcomeUnknown, Submitted
from brokers.redis.broker import UNAVAILABLE, OffloadStreamBroker
from brokers.redis.store import RedisJobStore


class RedisJobSubmitter:
    def __init__(
        self, store: RedisJobStore, broker: OffloadStreamBroker, settle_seconds: float
    ) -> None:
        self.store = store
        self.broker = broker
        self.settle_seconds = settle_seconds

    async def submit(
        self, job: JobRecord, message: BrokerMessage, key: IdempotencyKey | None = None
    ) -> Submitted:
        """The script refuses to create a job twice, so redis-py may safely resend it; when
        no reply comes at all, whether the job was stored is found out before answering."""
        try:
            stream = self.broker.keys.lane_stream(job.lane)
            return await self.store.submit(job, message.message, stream, key)
        except UNAVAILABLE:
            if not await self._stored(job.id):
                raise
            return Submitted(job.id, created=True)

    async def _stored(self, job_id: str) -> bool:
        """Whether the job exists; raises SubmitOutcomeUnknown if Redis stays silent."""
        deadline = time.monotonic() + self.settle_seconds
        pause = 0.05
        while True:
            try:
                return await self.store.stored(job_id)
            except UNAVAILABLE as error:
                if time.monotonic() + pause > deadline:
                    raise SubmitOutcomeUnknown(job_id, str(error)) from error
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
