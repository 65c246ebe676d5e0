"""Closing a batch's CSV reader while a worker thread is still reading a chunk from it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from tasks.qr_batch import close_items


async def test_a_reader_busy_in_another_thread_is_closed_once_its_read_returns() -> None:
    reading, release = threading.Event(), threading.Event()
    closed: list[bool] = []

    def rows() -> Iterator[int]:
        try:
            reading.set()
            release.wait(5)
            yield 1
            yield 2
        finally:
            closed.append(True)

    reader = rows()
    busy = asyncio.ensure_future(asyncio.to_thread(next, reader))
    await asyncio.to_thread(reading.wait, 5)
    asyncio.get_running_loop().call_later(0.05, release.set)
    await close_items(reader)
    assert await busy == 1
    assert closed == [True]


async def test_items_without_close_need_nothing() -> None:
    await close_items([1, 2, 3])
