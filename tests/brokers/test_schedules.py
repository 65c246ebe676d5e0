"""Schedules fire once per tick however many schedulers run, and after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from taskiq import ScheduledTask, ScheduleSource
from taskiq.exceptions import ScheduledTaskCancelledError

from brokers.schedules import OncePerTick, tick_of
from brokers.sqlite.database import Database
from brokers.sqlite.schedule_source import SqliteScheduleSource, SqliteTickLedger


class StaticSource(ScheduleSource):
    def __init__(self, *tasks: ScheduledTask) -> None:
        self.tasks = list(tasks)

    async def get_schedules(self) -> list[ScheduledTask]:
        return self.tasks


def cron_task() -> ScheduledTask:
    return ScheduledTask(
        task_name="t", labels={}, args=[], kwargs={}, cron="* * * * *", schedule_id="every-minute"
    )


async def fires(source: OncePerTick, task: ScheduledTask) -> bool:
    try:
        await source.pre_send(task)
    except ScheduledTaskCancelledError:
        return False
    return True


async def test_two_schedulers_fire_a_tick_once(tmp_path: Path) -> None:
    task = cron_task()
    first = OncePerTick(StaticSource(task), SqliteTickLedger(Database(tmp_path / "db")))
    second = OncePerTick(StaticSource(task), SqliteTickLedger(Database(tmp_path / "db")))
    assert [await fires(first, task), await fires(second, task)] == [True, False]


async def test_a_restarted_scheduler_does_not_fire_the_same_tick(tmp_path: Path) -> None:
    task = cron_task()
    before = OncePerTick(StaticSource(task), SqliteTickLedger(Database(tmp_path / "db")))
    assert await fires(before, task)
    after = OncePerTick(StaticSource(task), SqliteTickLedger(Database(tmp_path / "db")))
    assert not await fires(after, task)


def test_ticks_are_the_cron_minute_or_the_interval_slot() -> None:
    at = datetime(2026, 1, 1, 12, 30, 45, tzinfo=UTC)
    assert tick_of(cron_task(), at) == tick_of(cron_task(), at.replace(second=5))
    assert tick_of(cron_task(), at) != tick_of(cron_task(), at + timedelta(minutes=1))
    every_10 = ScheduledTask(task_name="t", labels={}, args=[], kwargs={}, interval=10)
    assert tick_of(every_10, at) == tick_of(every_10, at + timedelta(seconds=4))
    assert tick_of(every_10, at) != tick_of(every_10, at + timedelta(seconds=15))


async def test_schedules_added_at_run_time_are_kept_as_json(tmp_path: Path) -> None:
    database = Database(tmp_path / "db")
    source = SqliteScheduleSource(database)
    task = cron_task()
    await source.add_schedule(task)
    assert await SqliteScheduleSource(Database(tmp_path / "db")).get_schedules() == [task]
    raw = database.connection.execute("SELECT schedule FROM schedules").fetchone()[0]
    assert raw.startswith("{")
    await source.delete_schedule(task.schedule_id)
    assert await source.get_schedules() == []
