"""A background beat that renews the leases of the jobs a worker process holds."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from brokers.background import stop_task

logger = logging.getLogger(__name__)


def consumer_name() -> str:
    """Names this worker process in leases: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """Calls ``beat`` at once and then every ``interval`` seconds until stopped, whatever a
    beat raises.

    A beat that fails (a Redis that answers OOM or READONLY, a full disk) is logged and tried
    again next time: a heartbeat that died would let every long job run twice.
    """

    def __init__(self, beat: Callable[[], Awaitable[object]], interval: float) -> None:
        self.beat = beat
        self.interval = interval
        self.failures = 0
        """Beats that failed in a row."""
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="offload-heartbeat")

    async def stop(self) -> None:
        """Stop beating. A beat left over from another event loop (tests) is only cancelled."""
        task, self._task = self._task, None
        await stop_task(task)

    async def _run(self) -> None:
        while True:
            try:
                await self.beat()
            except Exception as error:
                self.failures += 1
                logger.warning("could not renew job leases (%r); will try again", error)
            else:
                self.failures = 0
            await asyncio.sleep(self.interval)
