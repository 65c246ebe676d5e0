"""Job change feeds: one listener per process tells every waiting client that its job changed.

A client (an SSE stream, a long-poll) opens a :class:`JobWatch` on one job and waits on it.
The feed (one per backend and process, built by brokers.factory) has one way of learning
that jobs changed, whichever process changed them: a pub/sub subscription on Redis
(brokers.redis.events), the database's data version on SQLite (brokers.sqlite.events). It
reads a changed job once and hands the record to every watch of that job, so 200 clients
on one job cost one subscription and one read per change.

A watch keeps only the newest record it was given (each carries the whole job), so a client
that stops reading costs one record, never a queue that grows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from brokers.background import stop_task
from brokers.contract import JobRecord


class JobWatch:
    """One client's view of one job: the newest state it has not taken yet."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.gone = False
        """The job was deleted (or purged) while watched."""
        self.ending = False
        """The server is shutting down: the client should come back (to another)."""
        self._latest: JobRecord | None = None
        self._taken = 0
        """Version of the last record :meth:`next` returned: older ones are not news."""
        self._news = asyncio.Event()

    def offer(self, record: JobRecord | None) -> None:
        """A newer state of the job, or None when the job no longer exists."""
        if record is None:
            self.gone = True
        elif record.version <= max(self._taken, self._latest.version if self._latest else 0):
            return
        else:
            self._latest = record
        self._news.set()

    def end(self) -> None:
        self.ending = True
        self._news.set()

    def seen(self, version: int) -> None:
        """The client knows this version already (its own read, or Last-Event-ID)."""
        self._taken = max(self._taken, version)
        if self._latest is not None and self._latest.version <= self._taken:
            self._latest = None
            if not (self.gone or self.ending):
                self._news.clear()

    async def next(self, seconds: float) -> JobRecord | None:
        """The newest state since the last call, once there is one; None after ``seconds``
        with no news, or when the job is gone or the server ends (:attr:`gone`,
        :attr:`ending`)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), seconds)
        latest, self._latest = self._latest, None
        if not (self.gone or self.ending):
            self._news.clear()
        if latest is not None:
            self._taken = latest.version
        return latest


class JobFeed(Protocol):
    def watch(self, job_id: str) -> AbstractAsyncContextManager[JobWatch]:
        """Watch one job until the context ends. Open it before reading the job: a change
        after the read is then never missed."""
        ...

    def watch_count(self) -> int:
        """How many watches are open in this process (tests, /readyz)."""
        ...

    def end_all(self) -> None:
        """End every watch, and every one opened from now on: the server shuts down, and
        a stream kept open would hold its shutdown up until the job finishes."""
        ...

    async def close(self) -> None:
        """Stop listening; open watches see no more changes."""
        ...


class FanOut:
    """The part every feed shares: which clients watch which job, and handing records out.

    Subclasses learn of changes in :meth:`_listen` and call :meth:`deliver`; that one
    listener starts when the first watch opens and ends when the last one closes.
    """

    listener_name = "offload-events"

    def __init__(self) -> None:
        self._watches: dict[str, set[JobWatch]] = {}
        self._ending = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def watch(self, job_id: str) -> AsyncIterator[JobWatch]:
        watch = JobWatch(job_id)
        if self._ending:
            watch.end()
        self._watches.setdefault(job_id, set()).add(watch)
        try:
            self._ensure_listening()
            yield watch
        finally:
            watchers = self._watches.get(job_id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[job_id]

    def watch_count(self) -> int:
        return sum(len(watchers) for watchers in self._watches.values())

    def end_all(self) -> None:
        self._ending = True
        for watchers in list(self._watches.values()):
            for watch in list(watchers):
                watch.end()

    def watched(self) -> list[str]:
        return list(self._watches)

    def is_watched(self, job_id: str) -> bool:
        return job_id in self._watches

    def deliver(self, job_id: str, record: JobRecord | None) -> None:
        for watch in list(self._watches.get(job_id, ())):
            watch.offer(record)

    def _ensure_listening(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            # A task of another loop (an earlier test's) can never run again: start anew.
            self._loop = loop
            self._task = loop.create_task(self._listen(), name=self.listener_name)

    async def close(self) -> None:
        if self._loop is asyncio.get_running_loop():
            await stop_task(self._task)
        self._task = None

    async def _listen(self) -> None:
        raise NotImplementedError
