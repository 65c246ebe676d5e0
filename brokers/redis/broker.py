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
- One stream per lane, read interactive first, so interactive work never queues behind
  bulk work; reclaim, renewal, ack and hand-back work per stream.
- Due times (the ``delay`` label, ``run_at``, retries): a job due later waits in a sorted
  set; the read loop moves due ones into their stream (scripts.PROMOTE) on a timer, in the
  same round trip as its read, and blocks no longer than until the next known due time.
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
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, BrokerMessage
from taskiq_redis import RedisStreamBroker

from brokers.contract import Admission, Admitted, WorkerRegistry
from brokers.heartbeat import Heartbeat, consumer_name
from brokers.redis import scripts
from brokers.redis.batch import RedisBatch, call_script
from brokers.redis.keys import DEFAULT_LANE, LANES, Keys
from brokers.screening import MessageScreen, Verdict, log_refusal
from schemas.jobs import JobError

logger = logging.getLogger(__name__)

Gate = Callable[[str, float, str, str], Awaitable[Admitted]]
"""(job id, now, holder naming the hand-out, the message's token) -> the admission."""
Refuse = Callable[[str, float, JobError], Awaitable[bool]]
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

_MAX_RECLAIM_CALLS = 64
"""XAUTOCLAIM calls per reclaim round; each looks at 10 x prefetch pending entries."""
PROMOTE_BATCH = 100
"""Most due messages one PROMOTE moves; a full batch makes the next read promote again."""

EntryKey = tuple[str, str]
"""(stream, entry id): entry ids are unique only within one stream."""
Entry = tuple[str, bytes, dict[bytes, bytes]]


@dataclass
class _Held:
    task_id: str
    stream: str
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
        self.streams = keys.streams
        """Read in this order (interactive first)."""
        self.promote_seconds = block_ms / 1000
        """Longest a due message waits for some worker's read loop to move it."""
        self._next_promote = 0.0
        self._held: dict[EntryKey, _Held] = {}
        """What this consumer holds: read, and maybe handed out to run."""
        self._running: dict[str, EntryKey] = {}
        """Task id -> entry of each admitted job this consumer runs."""
        self._reclaim_cursors = dict.fromkeys(self.streams, "0-0")
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
            for stream in self.streams:
                try:
                    await redis.xgroup_create(
                        stream, self.consumer_group_name, id="0", mkstream=True
                    )
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
        self._group_ready = True

    async def kick(self, message: BrokerMessage) -> None:
        """A plain TaskiQ send (jobs are submitted by RedisJobSubmitter): its lane's stream,
        or the delayed set with a ``delay`` label."""
        lane = str(message.labels.get("lane") or DEFAULT_LANE)
        lane = lane if lane in LANES else DEFAULT_LANE
        delay = _seconds(message.labels.get("delay"))
        if delay > 0:
            args: list[str | bytes] = [
                "", message.task_id, repr(time.time() + delay), message.message, lane
            ]  # fmt: skip
            await self._scripts.delay_message(keys=[self.keys.prefix], args=args)
            return
        async with Redis(connection_pool=self.connection_pool) as redis:
            await redis.xadd(self.keys.lane_stream(lane), self.entry(message))

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
                # The task pulling from this generator may change with each pull.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A cancel (the receiver stopping) that redis-py's wait_for swallowed
                    # as its read completed (CPython gh-86296, Python 3.11): honour it, or
                    # this loop reads on and the shutdown waits for it for good.
                    raise asyncio.CancelledError
                entries = await self._read(redis)
                if time.monotonic() >= next_reclaim:
                    reclaimed = await self._reclaim(redis)
                    # More of a dead worker's entries may wait: look again at once.
                    pause = 0 if reclaimed else self.lease_seconds / 3
                    next_reclaim = time.monotonic() + pause
                    entries.extend(reclaimed)
                fetched_at = time.monotonic()
                for stream, raw_id, fields in entries:
                    key = (stream, raw_id.decode())
                    if key in self._held:
                        # Our own running entry, reclaimed by us after renewals failed for a
                        # lease: it runs here already; the reclaim renewed it.
                        continue
                    # A read entry waits here while every slot is busy, unleased, so an idle
                    # worker may take it over; one that waited long is checked first.
                    waited = time.monotonic() - fetched_at > self.lease_seconds / 3
                    if waited and key in await self._lost([key]):
                        continue
                    message = await self._hand_out_or_put_back(key, fields)
                    if message is not None:
                        yield message

    async def _read(self, redis: Redis) -> list[Entry]:
        """New entries of every lane, interactive first; when the promotion timer is up,
        due messages are moved into their streams first, in the same round trip."""
        now = time.time()
        promote = now >= self._next_promote
        block = self.block or 0
        if not promote:
            # Wake up for the next promotion (a known due time, or the timer).
            block = max(1, min(block, int((self._next_promote - now) * 1000) + 1))
        async with redis.pipeline(transaction=False) as pipe:
            if promote:
                pipe.evalsha(
                    self._scripts.promote.sha, 1, self.keys.prefix, "", repr(now), PROMOTE_BATCH
                )
            pipe.xreadgroup(
                self.consumer_group_name,
                self.consumer_name,
                dict.fromkeys(self.streams, ">"),
                block=block,
                count=self.count,
            )
            replies = await pipe.execute(raise_on_error=False)
        if promote:
            await self._promoted(redis, replies[0], now)
        fetched: Any = replies[-1]
        if isinstance(fetched, Exception):
            raise fetched
        entries: list[Entry] = []
        for stream, stream_entries in fetched or ():
            name = stream.decode() if isinstance(stream, bytes) else str(stream)
            entries.extend((name, entry_id, fields) for entry_id, fields in stream_entries)
        return entries

    async def _promoted(self, redis: Redis, reply: Any, now: float) -> None:
        """Set the next promotion from PROMOTE's reply: at once after a full batch, else at
        the earliest due time left or after ``promote_seconds``, whichever is first."""
        self._next_promote = now + self.promote_seconds
        if isinstance(reply, NoScriptError):
            # Redis restarted (or flushed its scripts): load it; the next read promotes.
            await redis.script_load(scripts.PROMOTE)
            self._next_promote = 0.0
            return
        if isinstance(reply, Exception):
            if isinstance(reply, UNAVAILABLE):
                raise reply
            logger.warning("could not move due jobs into the queue (%s)", reply)
            return
        moved, first = reply
        if int(moved) >= PROMOTE_BATCH:
            self._next_promote = 0.0
        elif first:
            self._next_promote = min(self._next_promote, float(first))

    async def _reclaim(self, redis: Redis) -> list[Entry]:
        """Take over entries whose consumer stopped renewing them, in every lane's stream.

        XAUTOCLAIM looks at no more than ten times COUNT pending entries a call, so the cursor
        is followed until the whole pending list is walked (or enough were claimed; the next
        round goes on from there): a dead worker's entries behind many live ones are found.
        """
        claimed: list[Entry] = []
        for stream in self.streams:
            found = 0
            for _ in range(_MAX_RECLAIM_CALLS):
                reply: Any = await redis.xautoclaim(
                    stream,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=self.idle_timeout,
                    start_id=self._reclaim_cursors[stream],
                    count=self.count,
                )
                cursor = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
                taken = [(stream, entry[0], entry[1]) for entry in reply[1] if entry[1]]
                claimed.extend(taken)
                found += len(taken)
                self._reclaim_cursors[stream] = cursor
                if cursor == "0-0" or found >= (self.count or 1):
                    break
        if claimed:
            logger.warning("reclaimed %d jobs from a worker that stopped", len(claimed))
        return claimed

    async def _hand_out_or_put_back(
        self, key: EntryKey, fields: dict[bytes, bytes]
    ) -> AckableMessage | None:
        try:
            return await self._hand_out(key, fields)
        except BaseException:
            # Put it back for any worker now rather than after a lease.
            task_id = fields.get(b"task_id", b"").decode()
            held = self._held.pop(key, None) or _Held(task_id, key[0])
            if self._running.get(held.task_id) == key:
                del self._running[held.task_id]
            with contextlib.suppress(*UNAVAILABLE, ResponseError):
                await self._hand_back(key, held)
            raise

    async def _hand_out(self, key: EntryKey, fields: dict[bytes, bytes]) -> AckableMessage | None:
        stream, entry_id = key
        task_id = fields.get(b"task_id", b"").decode()
        payload = fields.get(b"data", b"")
        now = time.time()
        if self.screen is not None:
            screened = await self.screen.screen(payload, now)
            if screened.verdict is Verdict.HAND_BACK:
                # Left pending and no longer renewed: reclaimed after a lease by any worker.
                self._held.pop(key, None)
                return None
            if screened.verdict is Verdict.REFUSE:
                if task_id and self.refuse is not None and screened.error is not None:
                    await self.refuse(task_id, now, screened.error)
                await self._ack_entry(key, task_id)
                log_refusal(task_id, screened)
                return None
        held = _Held(task_id, stream)
        if self.gate is not None and task_id:
            self._hand_outs += 1
            holder = f"{self.consumer_name}/{entry_id}/{self._hand_outs}"
            token = fields.get(b"token", b"").decode()
            admitted = await self.gate(task_id, now, holder, token)
            if admitted.admission is Admission.DROP:
                await self._ack_entry(key, task_id)
                return None
            if admitted.admission is Admission.RUN:
                held.fence = admitted.fence
                self._running[task_id] = key
        self._held[key] = held
        return AckableMessage(data=payload, ack=lambda: self._ack(key, held))

    async def _ack(self, key: EntryKey, held: _Held) -> None:
        if self._held.get(key) is not held:
            return  # released, abandoned or taken over: the entry is no longer ours
        del self._held[key]
        if self._running.get(held.task_id) == key:
            del self._running[held.task_id]
        await self._ack_entry(key, held.task_id)

    async def _ack_entry(self, key: EntryKey, task_id: str) -> None:
        stream, entry_id = key
        ack = call_script(
            self._scripts.ack, [stream], [self.consumer_group_name, self.consumer_name, entry_id]
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
        key = self._running.get(task_id)
        held = None if key is None else self._held.get(key)
        return None if held is None else held.fence

    async def hand_back(self, task_id: str) -> None:
        """Put one running job's entry back at once; its attempt counts (it did run)."""
        key = self._running.pop(task_id, None)
        held = None if key is None else self._held.pop(key, None)
        if key is not None and held is not None:
            await self._hand_back(key, held, give_back_attempt=False)

    def abandon(self, task_id: str) -> None:
        """Stop renewing a job's entry: another worker reclaims it after the lease."""
        key = self._running.pop(task_id, None)
        if key is not None:
            self._held.pop(key, None)

    async def _hand_back(self, key: EntryKey, held: _Held, give_back_attempt: bool = True) -> None:
        stream, entry_id = key
        fence = "" if held.fence is None or not give_back_attempt else str(held.fence)
        args = [held.task_id, fence, self.consumer_group_name, self.consumer_name, entry_id]
        await self._scripts.hand_back(keys=[self.keys.prefix, stream], args=args)

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
        """Renew the jobs this consumer holds; forget (and return the entry ids of) any that
        another consumer took over."""
        lost = await self._lost(list(self._held))
        for key in lost:
            held = self._held.pop(key, None)
            if held is not None and self._running.get(held.task_id) == key:
                del self._running[held.task_id]
        if lost:
            logger.warning("%d jobs were taken over by another worker", len(lost))
        return [entry_id for _, entry_id in lost]

    async def _lost(self, keys: list[EntryKey]) -> list[EntryKey]:
        """Reset the idle time of the entries this consumer still owns; return the others.
        One script per stream that holds any."""
        lost: list[EntryKey] = []
        for stream in self.streams:
            entry_ids = [entry_id for in_stream, entry_id in keys if in_stream == stream]
            if not entry_ids:
                continue
            reply = await self._scripts.renew(
                keys=[stream], args=[self.consumer_group_name, self.consumer_name, *entry_ids]
            )
            lost.extend(
                (stream, entry.decode() if isinstance(entry, bytes) else str(entry))
                for entry in reply
            )
        return lost

    async def release_held(self) -> None:
        """Hand unfinished jobs back at once: re-add each at the end of its stream.

        Each hand-back is one script that first checks this consumer still owns the entry,
        so a repeat (redis-py resends after a lost reply) adds no second copy.
        """
        if not self._held:
            return
        held, self._held = self._held, {}
        self._running.clear()
        for key, entry in held.items():
            await self._hand_back(key, entry)
        logger.warning("released %d unfinished jobs back to the queue", len(held))


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value or 0))
    except (TypeError, ValueError):
        return 0.0


class _StreamScripts:
    def __init__(self, redis: Redis) -> None:
        self.ack = redis.register_script(scripts.ACK)
        self.renew = redis.register_script(scripts.RENEW)
        self.hand_back = redis.register_script(scripts.HAND_BACK)
        self.promote = redis.register_script(scripts.PROMOTE)
        self.delay_message = redis.register_script(scripts.DELAY_MESSAGE)
