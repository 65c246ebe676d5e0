"""Schedules that fire once per tick, however many schedulers run.

TaskiQ's scheduler fires a due schedule in every scheduler process. :class:`OncePerTick`
wraps any schedule source and, just before a send, claims ``(schedule_id, tick)`` in a
shared :class:`TickLedger`; only the claimant sends. The ledger is durable, so a restarted
scheduler does not fire a tick that already fired.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from taskiq import ScheduledTask, ScheduleSource
from taskiq.exceptions import ScheduledTaskCancelledError


class TickLedger(Protocol):
    async def claim(self, schedule_id: str, tick: str, keep_seconds: float) -> bool:
        """Record the tick; True only for the first caller."""
        ...


def tick_of(task: ScheduledTask, now: datetime) -> str:
    """Name the tick a send belongs to: the cron minute, the interval slot or the time."""
    if task.cron is not None:
        return now.replace(second=0, microsecond=0).isoformat()
    if task.interval is not None:
        interval = task.interval
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        return f"every-{seconds:g}s-{int(now.timestamp() // max(seconds, 1))}"
    return task.time.isoformat() if task.time is not None else "once"


class OncePerTick(ScheduleSource):
    """A schedule source whose schedules fire once per tick across all schedulers."""

    def __init__(self, source: ScheduleSource, ledger: TickLedger, keep_seconds: float = 86400):
        self.source = source
        self.ledger = ledger
        self.keep_seconds = keep_seconds

    async def startup(self) -> None:
        await self.source.startup()

    async def shutdown(self) -> None:
        await self.source.shutdown()

    async def get_schedules(self) -> list[ScheduledTask]:
        return await self.source.get_schedules()

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        await self.source.add_schedule(schedule)

    async def delete_schedule(self, schedule_id: str) -> None:
        await self.source.delete_schedule(schedule_id)

    async def pre_send(self, task: ScheduledTask) -> None:
        tick = tick_of(task, datetime.fromtimestamp(time.time(), UTC))
        if not await self.ledger.claim(task.schedule_id, tick, self.keep_seconds):
            raise ScheduledTaskCancelledError
        result = self.source.pre_send(task)
        if result is not None:
            await result

    async def post_send(self, task: ScheduledTask) -> None:
        result = self.source.post_send(task)
        if result is not None:
            await result
