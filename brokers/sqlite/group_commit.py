"""Group commit: writes issued in the same event-loop turn share one transaction.

A worker running several jobs at once finishes and acknowledges them in bursts; one commit
for the burst instead of one per write is most of what a no-op job costs on SQLite. Each
caller still awaits its own write, so nothing is reported done before it is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from sqlite3 import Connection
from typing import Any, TypeVar

from brokers.sqlite.database import Database

T = TypeVar("T")


class GroupCommit:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def write(self, statements: Callable[[Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((statements, future))
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self.flush)
        return future

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled_on = None
        if not pending:
            return
        outcomes: list[Any] = []
        try:
            with self.database.transaction() as conn:
                outcomes = [statements(conn) for statements, _ in pending]
        except Exception as error:
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), outcome in zip(pending, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
