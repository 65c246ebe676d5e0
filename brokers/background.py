"""Stopping the asyncio tasks a process runs in the background (listeners, heartbeats)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait until it has finished.

    On Python 3.11 a cancel can be swallowed: redis-py sends through asyncio.wait_for, which
    drops a cancel that lands as its inner future finishes (CPython gh-86296). So the cancel
    is asked again until the task has stopped. A task of another event loop (left over from
    an earlier test's loop) can only be cancelled, not awaited."""
    if task is None or task.done():
        return
    task.cancel()
    if task.get_loop() is not asyncio.get_running_loop():
        return
    while not task.done():
        await asyncio.wait({task}, timeout=0.1)
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
