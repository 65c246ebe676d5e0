"""TaskiQ's result backend on the embedded database: JSON only, every row expires."""

from __future__ import annotations

import time
from typing import Any, TypeVar

from taskiq import AsyncResultBackend, TaskiqResult
from taskiq.abc.serializer import TaskiqSerializer
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.exceptions import ResultGetError
from taskiq.serializers import JSONSerializer

from brokers.sqlite.database import Database

_ReturnType = TypeVar("_ReturnType")


class ResultMissingError(ResultGetError):
    """No result (or it expired) for this task id."""


class SqliteResultBackend(AsyncResultBackend[_ReturnType]):
    def __init__(
        self,
        database: Database,
        *,
        ttl_seconds: float,
        serializer: TaskiqSerializer | None = None,
    ) -> None:
        self.database = database
        self.ttl_seconds = ttl_seconds
        self.serializer = serializer or JSONSerializer()

    async def set_result(self, task_id: str, result: TaskiqResult[_ReturnType]) -> None:
        self._upsert(task_id, "result", self.serializer.dumpb(result.model_dump(mode="json")))

    async def is_result_ready(self, task_id: str) -> bool:
        return self._read(task_id, "result") is not None

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_ReturnType]:
        raw = self._read(task_id, "result")
        if raw is None:
            raise ResultMissingError
        result = TaskiqResult[_ReturnType].model_validate(self.serializer.loadb(raw))
        if not with_logs:
            result.log = None
        return result

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        self._upsert(task_id, "progress", self.serializer.dumpb(progress.model_dump(mode="json")))

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        raw = self._read(task_id, "progress")
        if raw is None:
            return None
        return TaskProgress[Any].model_validate(self.serializer.loadb(raw))

    def _upsert(self, task_id: str, column: str, value: bytes) -> None:
        with self.database.transaction() as conn:
            conn.execute(
                f"INSERT INTO results (task_id, {column}, expires_at) VALUES (?, ?, ?) "
                f"ON CONFLICT (task_id) DO UPDATE SET {column} = excluded.{column}",
                (task_id, value, time.time() + self.ttl_seconds),
            )

    def _read(self, task_id: str, column: str) -> bytes | None:
        row = self.database.connection.execute(
            f"SELECT {column} FROM results WHERE task_id = ? AND expires_at > ?",
            (task_id, time.time()),
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])
