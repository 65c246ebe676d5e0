"""A background beat that renews the leases of the jobs a worker process holds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

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
        if task is None:
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            # On Python 3.11 a cancel can be swallowed: redis-py sends through
            # asyncio.wait_for, which drops a cancel that lands as its inner future
            # finishes (CPython gh-86296). Ask again until the task has stopped.
            while not task.done():
                await asyncio.wait({task}, timeout=0.1)
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
