"""TaskiQ's Redis stream broker, without the defects we measured (see shared NOTES).

- A dead worker's job is reclaimed (XAUTOCLAIM) on a timer, not only after new traffic.
- A running job's lease is renewed (idle time reset) every third of the lease, so a long
  job is never redelivered while its worker lives.
- The group reads the stream from its start (id ``0``), so nothing sent before it existed
  is skipped.
- Acked entries are deleted (XACK + XDEL), so the stream holds only unfinished work.
- Prefetch is small: a kill orphans at most ``prefetch`` messages, each reclaimed.
- Reads block for at most ``block_ms``, so SIGTERM on an idle worker is prompt.
- Connection errors pause and retry instead of killing the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, BrokerMessage
from taskiq_redis import RedisStreamBroker

from brokers.contract import Admission
from brokers.heartbeat import Heartbeat, consumer_name
from brokers.redis.batch import RedisBatch
from brokers.redis.keys import Keys

logger = logging.getLogger(__name__)

Gate = Callable[[str, float], Awaitable[Admission]]
Release = Callable[[str], Awaitable[bool]]
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# Renew only entries this consumer still owns: XCLAIM with min-idle 0 would steal.
_RENEW = """
local lost = {}
for i = 3, #ARGV do
    local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
    if entry[1] and entry[1][2] == ARGV[2] then
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
        table.insert(lost, ARGV[i])
    end
end
return lost
"""


class OffloadStreamBroker(RedisStreamBroker):
    def __init__(
        self,
        url: str,
        *,
        keys: Keys,
        lease_seconds: float,
        gate: Gate | None = None,
        release: Release | None = None,
        prefetch: int = 4,
        block_ms: int = 500,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(
            url,
            queue_name=keys.stream,
            consumer_group_name=keys.group,
            consumer_id="0",
            xread_block=block_ms,
            idle_timeout=int(lease_seconds * 1000),
            xread_count=prefetch,
            maxlen=None,
            **connection_kwargs,
        )
        self.keys = keys
        self.lease_seconds = lease_seconds
        self.gate = gate
        self.release = release
        self._held: dict[str, tuple[bytes, bytes]] = {}
        self._heartbeat = Heartbeat(self.renew_leases, lease_seconds / 3, UNAVAILABLE)
        self._group_ready = False
        self._batch = RedisBatch(Redis(connection_pool=self.connection_pool))

    async def startup(self) -> None:
        """Start even when Redis is down; the group is made on first contact instead."""
        await super(RedisStreamBroker, self).startup()
        self.consumer_name = consumer_name()  # worker processes are forked after __init__
        with contextlib.suppress(*UNAVAILABLE):
            await self._ensure_group()

    async def shutdown(self) -> None:
        await self._heartbeat.stop()
        with contextlib.suppress(*UNAVAILABLE):
            await self.release_held()
        await super().shutdown()

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        async with Redis(connection_pool=self.connection_pool) as redis:
            try:
                await redis.xgroup_create(
                    self.queue_name, self.consumer_group_name, id="0", mkstream=True
                )
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._group_ready = True

    async def kick(self, message: BrokerMessage) -> None:
        async with Redis(connection_pool=self.connection_pool) as redis:
            await redis.xadd(self.queue_name, self.entry(message))

    @staticmethod
    def entry(message: BrokerMessage) -> dict[Any, Any]:
        return {b"data": message.message, b"task_id": message.task_id}

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:  # type: ignore[override]
        self._heartbeat.ensure_running()
        pause = 0.1
        while True:
            try:
                await self._ensure_group()
                async for message in self._deliveries():
                    yield message
                    pause = 0.1
            except UNAVAILABLE as error:
                logger.warning("Redis unavailable (%s); retrying in %.1f s", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                logger.warning("the consumer group is gone (Redis lost its data); recreating it")
                self._group_ready = False

    async def _deliveries(self) -> AsyncGenerator[AckableMessage, None]:
        next_reclaim = 0.0
        async with Redis(connection_pool=self.connection_pool) as redis:
            while True:
                entries: list[tuple[bytes, dict[bytes, bytes]]] = []
                fetched: Any = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _stream, stream_entries in fetched or ():
                    entries.extend(stream_entries)
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self.lease_seconds / 3
                    reclaimed: Any = await redis.xautoclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        count=self.count,
                    )
                    claimed = reclaimed[1]
                    if claimed:
                        logger.warning("reclaimed %d jobs from a worker that stopped", len(claimed))
                    entries.extend(claimed)
                fetched_at = time.monotonic()
                for entry_id, fields in entries:
                    # A read entry waits here while every slot is busy, unleased, so an idle
                    # worker may take it over; one that waited long is checked first.
                    waited = time.monotonic() - fetched_at > self.lease_seconds / 3
                    if waited and entry_id.decode() in await self._lost([entry_id.decode()]):
                        continue
                    message = await self._admit(entry_id, fields)
                    if message is not None:
                        yield message

    async def _admit(self, entry_id: bytes, fields: dict[bytes, bytes]) -> AckableMessage | None:
        task_id = fields.get(b"task_id", b"").decode()
        gate = self.gate
        if gate is not None and task_id and await gate(task_id, time.time()) is Admission.DROP:
            await self._ack(entry_id)
            return None
        self._held[entry_id.decode()] = (fields.get(b"task_id", b""), fields[b"data"])
        return AckableMessage(data=fields[b"data"], ack=lambda: self._ack(entry_id))

    async def _ack(self, entry_id: bytes) -> None:
        self._held.pop(entry_id.decode(), None)
        await asyncio.gather(
            self._batch.run(
                lambda pipe: pipe.xack(self.queue_name, self.consumer_group_name, entry_id)
            ),
            self._batch.run(lambda pipe: pipe.xdel(self.queue_name, entry_id)),
        )

    async def renew_leases(self) -> list[str]:
        """Renew the jobs this consumer runs; forget any another consumer took over."""
        lost = await self._lost(list(self._held))
        for entry_id in lost:
            self._held.pop(entry_id, None)
        if lost:
            logger.warning("%d jobs were taken over by another worker", len(lost))
        return lost

    async def _lost(self, entry_ids: list[str]) -> list[str]:
        """Reset the idle time of the entries this consumer still owns; return the others."""
        if not entry_ids:
            return []
        async with Redis(connection_pool=self.connection_pool) as redis:
            reply = await redis.eval(
                _RENEW, 1, self.queue_name, self.consumer_group_name, self.consumer_name, *entry_ids
            )
        return [entry.decode() if isinstance(entry, bytes) else str(entry) for entry in reply]

    async def release_held(self) -> None:
        """Hand unfinished jobs back at once: re-add each at the end of the stream."""
        if not self._held:
            return
        held, self._held = self._held, {}
        async with (
            Redis(connection_pool=self.connection_pool) as redis,
            redis.pipeline(transaction=True) as pipe,
        ):
            for entry_id, (task_id, data) in held.items():
                pipe.xack(self.queue_name, self.consumer_group_name, entry_id)
                pipe.xdel(self.queue_name, entry_id)
                pipe.xadd(self.queue_name, {b"data": data, b"task_id": task_id})
            await pipe.execute()
        if self.release is not None:
            for task_id, _ in held.values():
                if task_id:
                    await self.release(task_id.decode())
        logger.warning("released %d unfinished jobs back to the queue", len(held))
