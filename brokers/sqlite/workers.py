"""Which task names live workers run, on the embedded database."""

from __future__ import annotations

import json

from brokers.sqlite.database import Database


class SqliteWorkerRegistry:
    """Implements :class:`brokers.contract.WorkerRegistry`: a row per worker process."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def announce(self, consumer: str, task_names: list[str], now: float) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT INTO workers (consumer, task_names, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (consumer) DO UPDATE SET task_names = excluded.task_names, "
                "seen_at = excluded.seen_at",
                (consumer, json.dumps(task_names), now),
            )
            # Rows of workers gone for an hour tell nobody anything.
            conn.execute("DELETE FROM workers WHERE seen_at < ?", (now - 3600,))

    async def leave(self, consumer: str) -> None:
        with self.database.transaction() as conn:
            conn.execute("DELETE FROM workers WHERE consumer = ?", (consumer,))

    async def known_by_a_live_worker(self, task_name: str, now: float, within: float) -> bool:
        rows = self.database.connection.execute(
            "SELECT task_names FROM workers WHERE seen_at >= ?", (now - within,)
        ).fetchall()
        return any(task_name in json.loads(row[0]) for row in rows)
