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
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, BrokerMessage
from taskiq_redis import RedisStreamBroker

from brokers.contract import Admission, Admitted, WorkerRegistry
from brokers.heartbeat import Heartbeat, consumer_name
from brokers.redis import scripts
from brokers.redis.batch import RedisBatch, call_script
from brokers.redis.keys import Keys
from brokers.screening import MessageScreen, Verdict, log_refusal
from schemas.jobs import JobError

logger = logging.getLogger(__name__)

Gate = Callable[[str, float, str], Awaitable[Admitted]]
Refuse = Callable[[str, float, JobError], Awaitable[bool]]
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_MAX_RECLAIM_CALLS = 64
"""XAUTOCLAIM calls per reclaim round; each looks at 10 x prefetch pending entries."""


@dataclass
class _Held:
    task_id: str
    fence: int | None = None


class OffloadStreamBroker(RedisStreamBroker):
    def __init__(
        self,
        url: str,
        *,
        keys: Keys,
        lease_seconds: float,
        gate: Gate | None = None,
        refuse: Refuse | None = None,
        screen: MessageScreen | None = None,
        registry: WorkerRegistry | None = None,
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
        self.refuse = refuse
        self.screen = screen
        self.registry = registry
        self._held: dict[str, _Held] = {}
        """Entry id -> what this consumer holds: read, and maybe handed out to run."""
        self._running: dict[str, str] = {}
        """Task id -> entry id of each admitted job this consumer runs."""
        self._reclaim_cursor = "0-0"
        self._hand_outs = 0
        """Numbers each hand-out, so admission tells a resent request from a new delivery."""
        self._heartbeat = Heartbeat(self._beat, lease_seconds / 3)
        self._group_ready = False
        self._batch = RedisBatch(Redis(connection_pool=self.connection_pool))
        self._scripts = _StreamScripts(Redis(connection_pool=self.connection_pool))

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
            if self.registry is not None:
                await self.registry.leave(self.consumer_name)
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
                    logger.warning("Redis refused a read (%s); retrying in %.1f s", error, pause)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
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
                    reclaimed = await self._reclaim(redis)
                    # More of a dead worker's entries may wait: look again at once.
                    pause = 0 if reclaimed else self.lease_seconds / 3
                    next_reclaim = time.monotonic() + pause
                    entries.extend(reclaimed)
                fetched_at = time.monotonic()
                for entry_id, fields in entries:
                    if entry_id.decode() in self._held:
                        # Our own running entry, reclaimed by us after renewals failed for a
                        # lease: it runs here already; the reclaim renewed it.
                        continue
                    # A read entry waits here while every slot is busy, unleased, so an idle
                    # worker may take it over; one that waited long is checked first.
                    waited = time.monotonic() - fetched_at > self.lease_seconds / 3
                    if waited and entry_id.decode() in await self._lost([entry_id.decode()]):
                        continue
                    message = await self._hand_out_or_put_back(entry_id.decode(), fields)
                    if message is not None:
                        yield message

    async def _reclaim(self, redis: Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Take over entries whose consumer stopped renewing them.

        XAUTOCLAIM looks at no more than ten times COUNT pending entries a call, so the cursor
        is followed until the whole pending list is walked (or enough were claimed; the next
        round goes on from there): a dead worker's entries behind many live ones are found.
        """
        claimed: list[tuple[bytes, dict[bytes, bytes]]] = []
        for _ in range(_MAX_RECLAIM_CALLS):
            reply: Any = await redis.xautoclaim(
                self.queue_name,
                self.consumer_group_name,
                self.consumer_name,
                min_idle_time=self.idle_timeout,
                start_id=self._reclaim_cursor,
                count=self.count,
            )
            cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            claimed.extend(entry for entry in reply[1] if entry[1])
            self._reclaim_cursor = cursor
            if cursor == "0-0" or len(claimed) >= (self.count or 1):
                break
        if claimed:
            logger.warning("reclaimed %d jobs from a worker that stopped", len(claimed))
        return claimed

    async def _hand_out_or_put_back(
        self, entry_id: str, fields: dict[bytes, bytes]
    ) -> AckableMessage | None:
        try:
            return await self._hand_out(entry_id, fields)
        except BaseException:
            # Put it back for any worker now rather than after a lease.
            held = self._held.pop(entry_id, None) or _Held(fields.get(b"task_id", b"").decode())
            if self._running.get(held.task_id) == entry_id:
                del self._running[held.task_id]
            with contextlib.suppress(*UNAVAILABLE, ResponseError):
                await self._hand_back(entry_id, held)
            raise

    async def _hand_out(self, entry_id: str, fields: dict[bytes, bytes]) -> AckableMessage | None:
        task_id = fields.get(b"task_id", b"").decode()
        payload = fields.get(b"data", b"")
        now = time.time()
        if self.screen is not None:
            screened = await self.screen.screen(payload, now)
            if screened.verdict is Verdict.HAND_BACK:
                # Left pending and no longer renewed: reclaimed after a lease by any worker.
                self._held.pop(entry_id, None)
                return None
            if screened.verdict is Verdict.REFUSE:
                if task_id and self.refuse is not None and screened.error is not None:
                    await self.refuse(task_id, now, screened.error)
                await self._ack_entry(entry_id, task_id)
                log_refusal(task_id, screened)
                return None
        held = _Held(task_id)
        if self.gate is not None and task_id:
            self._hand_outs += 1
            holder = f"{self.consumer_name}/{entry_id}/{self._hand_outs}"
            admitted = await self.gate(task_id, now, holder)
            if admitted.admission is Admission.DROP:
                await self._ack_entry(entry_id, task_id)
                return None
            if admitted.admission is Admission.RUN:
                held.fence = admitted.fence
                self._running[task_id] = entry_id
        self._held[entry_id] = held
        return AckableMessage(data=payload, ack=lambda: self._ack(entry_id, held))

    async def _ack(self, entry_id: str, held: _Held) -> None:
        if self._held.get(entry_id) is not held:
            return  # released, abandoned or taken over: the entry is no longer ours
        del self._held[entry_id]
        if self._running.get(held.task_id) == entry_id:
            del self._running[held.task_id]
        await self._ack_entry(entry_id, held.task_id)

    async def _ack_entry(self, entry_id: str, task_id: str) -> None:
        ack = call_script(
            self._scripts.ack,
            [self.queue_name],
            [self.consumer_group_name, self.consumer_name, entry_id],
        )
        try:
            await self._batch.run(ack)
        except (*UNAVAILABLE, ResponseError) as error:
            logger.warning(
                "could not acknowledge %s (%s); it is delivered again after its lease and "
                "dropped there, as its job has finished",
                task_id or entry_id,
                error,
            )

    def fence_of(self, task_id: str) -> int | None:
        """The fencing token of a job this consumer runs (see brokers.contract.Admitted)."""
        entry_id = self._running.get(task_id)
        held = None if entry_id is None else self._held.get(entry_id)
        return None if held is None else held.fence

    async def hand_back(self, task_id: str) -> None:
        """Put one running job's entry back at once; its attempt counts (it did run)."""
        entry_id = self._running.pop(task_id, None)
        held = None if entry_id is None else self._held.pop(entry_id, None)
        if entry_id is not None and held is not None:
            await self._hand_back(entry_id, held, give_back_attempt=False)

    def abandon(self, task_id: str) -> None:
        """Stop renewing a job's entry: another worker reclaims it after the lease."""
        entry_id = self._running.pop(task_id, None)
        if entry_id is not None:
            self._held.pop(entry_id, None)

    async def _hand_back(self, entry_id: str, held: _Held, give_back_attempt: bool = True) -> None:
        fence = "" if held.fence is None or not give_back_attempt else str(held.fence)
        args = [held.task_id, fence, self.consumer_group_name, self.consumer_name, entry_id]
        await self._scripts.hand_back(keys=[self.keys.prefix, self.queue_name], args=args)

    async def _beat(self) -> None:
        """Announce this worker's tasks (first, so a new worker is known at once), then
        renew leases; either failing does not stop the other."""
        announced: Exception | None = None
        if self.registry is not None and self.screen is not None:
            try:
                await self.registry.announce(
                    self.consumer_name, self.screen.task_names(), time.time()
                )
            except Exception as error:
                announced = error
        await self.renew_leases()
        if announced is not None:
            raise announced

    async def renew_leases(self) -> list[str]:
        """Renew the jobs this consumer holds; forget any another consumer took over."""
        lost = await self._lost(list(self._held))
        for entry_id in lost:
            held = self._held.pop(entry_id, None)
            if held is not None and self._running.get(held.task_id) == entry_id:
                del self._running[held.task_id]
        if lost:
            logger.warning("%d jobs were taken over by another worker", len(lost))
        return lost

    async def _lost(self, entry_ids: list[str]) -> list[str]:
        """Reset the idle time of the entries this consumer still owns; return the others."""
        if not entry_ids:
            return []
        reply = await self._scripts.renew(
            keys=[self.queue_name],
            args=[self.consumer_group_name, self.consumer_name, *entry_ids],
        )
        return [entry.decode() if isinstance(entry, bytes) else str(entry) for entry in reply]

    async def release_held(self) -> None:
        """Hand unfinished jobs back at once: re-add each at the end of the stream.

        Each hand-back is one script that first checks this consumer still owns the entry,
        so a repeat (redis-py resends after a lost reply) adds no second copy.
        """
        if not self._held:
            return
        held, self._held = self._held, {}
        self._running.clear()
        for entry_id, entry in held.items():
            await self._hand_back(entry_id, entry)
        logger.warning("released %d unfinished jobs back to the queue", len(held))


class _StreamScripts:
    def __init__(self, redis: Redis) -> None:
        self.ack = redis.register_script(scripts.ACK)
        self.renew = redis.register_script(scripts.RENEW)
        self.hand_back = redis.register_script(scripts.HAND_BACK)
