"""The job change feed on Redis: one pub/sub subscription per API process.

Every script that changes what a client can see bumps the job's ``version`` and publishes
``"<job id> <version>"`` on the prefix's channel (brokers/redis/scripts.py). This process
subscribes once, while anybody watches, and reads a job only when a watched one changed.
When the subscription breaks (Redis restarted), it subscribes again with a growing pause,
and once subscribed reads every watched job afresh, so watches get the state they missed.
The same read follows the first subscription, so a change between a client's own read and
the subscription is not missed either.

Every API process gets every announcement of its prefix (a few dozen bytes each), whether
it watches that job or not; channels per job would spare that at the price of a SUBSCRIBE
per watched job. One channel keeps the listener simple, and nothing is published to a
process with no watch open (it unsubscribes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import TimeoutError as RedisTimeoutError

from brokers.events import FanOut
from brokers.redis.keys import Keys
from brokers.redis.store import RedisJobStore

logger = logging.getLogger(__name__)

RECONNECT_PAUSE_SECONDS = (0.1, 2.0)
"""First and longest pause before subscribing again after the subscription broke."""
IDLE_CHECK_SECONDS = 1.0
"""How long one read of the subscription waits; then it checks that somebody still watches."""
QUIET_SECONDS = 10.0
"""After this long with nothing heard the listener PINGs; with no answer within as long
again the connection is taken for dead (a cut cable or a vanished host breaks nothing
visibly: the socket just stays silent) and it subscribes anew."""


class RedisJobFeed(FanOut):
    listener_name = "offload-redis-events"

    def __init__(self, redis: Redis, store: RedisJobStore, keys: Keys) -> None:
        super().__init__()
        self.redis = redis
        self.store = store
        self.keys = keys
        self.subscriptions = 0
        """How many times this process subscribed (tests: reconnects, one per many watches)."""
        self.quiet_seconds = QUIET_SECONDS
        self._known: dict[str, int] = {}

    async def _listen(self) -> None:
        first, longest = RECONNECT_PAUSE_SECONDS
        pause = first
        while self._watches:
            pubsub = self.redis.pubsub()
            subscribed_before = self.subscriptions
            try:
                await pubsub.subscribe(self.keys.events)
                await self._read_messages(pubsub)
                pause = first
            except Exception as error:
                # A broken connection mostly; anything else (a refused script, a record that
                # does not validate) must not end the one listener every open stream needs.
                if self.subscriptions > subscribed_before:  # it worked for a while
                    pause = first
                logger.warning(
                    "job events: the Redis subscription broke (%s); subscribing again in %.1f s",
                    error,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, longest)
            finally:
                await _close(pubsub)

    async def _read_messages(self, pubsub: PubSub) -> None:
        """Hand on what the subscription says while anybody watches; raise when it broke
        or stayed silent through a PING."""
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        while self._watches:
            wait = min(IDLE_CHECK_SECONDS, self.quiet_seconds)
            message = await pubsub.get_message(timeout=wait)
            if message is not None:
                heard, pinged = loop.time(), False
                await self._on_message(message)
                continue
            silent = loop.time() - heard
            if pinged and silent > 2 * self.quiet_seconds:
                raise RedisTimeoutError(f"no answer to a PING in {self.quiet_seconds:g} s")
            if not pinged and silent > self.quiet_seconds:
                await pubsub.ping()
                pinged = True

    async def _on_message(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            # Subscribed (for the first time, or again after redis-py reconnected by
            # itself): whatever changed before now was not announced to us.
            self.subscriptions += 1
            self._known.clear()
            await self._read(self.watched())
            return
        if message["type"] != "message":
            return
        job_id, _, version = str(message["data"]).partition(" ")
        if not self.is_watched(job_id):
            self._known.pop(job_id, None)
            return
        # 0 announces a deletion; otherwise skip what was read already (a burst of changes
        # is often read once, at its last version).
        if version.isdigit() and 0 < int(version) <= self._known.get(job_id, 0):
            return
        await self._read([job_id])

    async def _read(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        for job_id, record in (await self.store.get_many(job_ids)).items():
            if record is None:
                self._known.pop(job_id, None)
            else:
                self._known[job_id] = record.version
            self.deliver(job_id, record)


async def _close(pubsub: PubSub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
