"""Following a job as it changes: the server-sent event stream and the long-poll.

Both wait on the backend's change feed (brokers.events), never by reading the job again and
again: a client costs one watch, woken only when its job changed. Each opens its watch
before it reads the job, so a change between the read and the watch cannot be missed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from brokers.contract import JobRecord
from brokers.factory import Backend
from service.presenters import present_job

RETRY_MILLISECONDS = 1000
"""How long an EventSource waits before it reconnects after the stream ended early."""
KEEPALIVE = ": keep-alive\n\n"
ENDING = ": the server is shutting down; reconnect with Last-Event-ID\n\n"
UNAVAILABLE = ": the job backend is unavailable; reconnect with Last-Event-ID\n\n"


def event_kind(previous: JobRecord | None, record: JobRecord) -> str:
    """``progress`` when nothing but the progress changed since the last event; else
    ``status`` (also for a stream's first event: the client may know nothing yet)."""
    if previous is None:
        return "status"
    unchanged = dataclasses.replace(previous, progress=None, version=0)
    if dataclasses.replace(record, progress=None, version=0) == unchanged:
        return "progress"
    return "status"


def frame(kind: str, record: JobRecord) -> str:
    """One event: its id is the job's version, its data the job as GET /v1/jobs/{id} gives
    it (one line of JSON)."""
    return f"id: {record.version}\nevent: {kind}\ndata: {present_job(record).model_dump_json()}\n\n"


async def job_events(
    backend: Backend, job_id: str, last_seen: int, keepalive_seconds: float
) -> AsyncIterator[str]:
    """The job's events after version ``last_seen``, until it reaches a terminal state (or
    is deleted). A backend outage ends the stream with a comment saying so; the client then
    reconnects (after ``retry``) with Last-Event-ID and misses nothing."""
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    try:
        async with backend.events.watch(job_id) as watch:
            record = await backend.store.get(job_id)
            previous: JobRecord | None = None
            while record is not None and not watch.gone:
                if record.version > last_seen:
                    yield frame(event_kind(previous, record), record)
                    last_seen = record.version
                watch.seen(last_seen)
                previous = record
                if record.status.is_terminal:
                    return
                change = await watch.next(keepalive_seconds)
                while change is None and not (watch.gone or watch.ending):
                    yield KEEPALIVE
                    change = await watch.next(keepalive_seconds)
                if watch.ending:
                    yield ENDING
                    return
                record = change
    except backend.unavailable_errors:
        yield UNAVAILABLE


async def wait_for_change(
    backend: Backend, job_id: str, seen: int, seconds: float
) -> JobRecord | None:
    """The job once its version is past ``seen``, or as it is after ``seconds``; None if it
    was deleted meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with backend.events.watch(job_id) as watch:
        record = await backend.store.get(job_id)
        while record is not None and record.version <= seen:
            watch.seen(record.version)
            left = deadline - loop.time()
            if left <= 0:
                break
            change = await watch.next(left)
            if watch.gone:
                return None
            if watch.ending:  # the server shuts down: answer now rather than hold it up
                break
            if change is not None:
                record = change
        return record
