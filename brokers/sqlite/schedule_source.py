"""Schedules and the tick ledger on the embedded database (JSON, never pickle)."""

from __future__ import annotations

import time

from taskiq import ScheduledTask, ScheduleSource

from brokers.sqlite.database import Database


class SqliteScheduleSource(ScheduleSource):
    """Schedules added at run time, kept in the ``schedules`` table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def get_schedules(self) -> list[ScheduledTask]:
        rows = self.database.connection.execute("SELECT schedule FROM schedules").fetchall()
        return [ScheduledTask.model_validate_json(row[0]) for row in rows]

    async def add_schedule(self, schedule: ScheduledTask) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT INTO schedules (schedule_id, schedule) VALUES (?, ?) "
                "ON CONFLICT (schedule_id) DO UPDATE SET schedule = excluded.schedule",
                (schedule.schedule_id, schedule.model_dump_json()),
            )

    async def delete_schedule(self, schedule_id: str) -> None:
        with self.database.transaction() as conn:
            conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))

    def post_send(self, task: ScheduledTask) -> None:
        if task.time is not None and task.cron is None and task.interval is None:
            with self.database.transaction() as conn:
                conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (task.schedule_id,))


class SqliteTickLedger:
    """Implements :class:`brokers.schedules.TickLedger` with an INSERT OR IGNORE."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def claim(self, schedule_id: str, tick: str, keep_seconds: float) -> bool:
        now = time.time()
        with self.database.transaction() as conn:
            conn.execute("DELETE FROM schedule_ticks WHERE fired_at < ?", (now - keep_seconds,))
            inserted = conn.execute(
                "INSERT OR IGNORE INTO schedule_ticks (schedule_id, tick, fired_at) "
                "VALUES (?, ?, ?)",
                (schedule_id, tick, now),
            ).rowcount
        return inserted == 1
