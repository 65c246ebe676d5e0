"""A durable TaskiQ broker on the embedded SQLite database.

A message is a row in ``queue``. Claiming a row hides it for one lease
(``visible_at = now + lease``); a heartbeat extends the leases this process holds; an ack
deletes the row. A row whose worker died becomes visible again when its lease runs out, so
another worker takes it with no further traffic. ``visible_at`` also carries due times
(the ``delay`` label), and ``lane`` keeps interactive and bulk work apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Protocol

from taskiq import AckableMessage, AsyncBroker, BrokerMessage

from brokers.contract import Admission
from brokers.heartbeat import Heartbeat, consumer_name
from brokers.sqlite.database import Database
from brokers.sqlite.group_commit import GroupCommit

logger = logging.getLogger(__name__)

DEFAULT_LANE = "default"


class DeliveryGate(Protocol):
    """Decides, inside the claim's transaction, whether a delivered job should run."""

    def admit_in(self, conn: sqlite3.Connection, job_id: str, now: float) -> Admission: ...

    def release_in(self, conn: sqlite3.Connection, job_id: str) -> bool: ...


class SqliteBroker(AsyncBroker):
    def __init__(
        self,
        database: Database,
        *,
        lease_seconds: float,
        lanes: tuple[str, ...] = (DEFAULT_LANE,),
        gate: DeliveryGate | None = None,
        group: GroupCommit | None = None,
        prefetch: int = 4,
        poll_seconds: float = 0.002,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.database = database
        self.lease_seconds = lease_seconds
        self.lanes = lanes
        self.gate = gate
        self.group = group or GroupCommit(database)
        self.prefetch = prefetch
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.consumer_id = consumer_name()
        self._held: dict[int, tuple[int, str]] = {}
        self._claimed: deque[tuple[int, int, bytes]] = deque()
        self._new_work = asyncio.Event()
        self._heartbeat = Heartbeat(self._renew, lease_seconds / 3, (sqlite3.Error,))

    async def startup(self) -> None:
        self.database.connection  # noqa: B018 - opens the file and creates the schema
        self.consumer_id = consumer_name()  # worker processes are forked after __init__
        self._new_work = asyncio.Event()
        await super().startup()

    async def shutdown(self) -> None:
        """Stop the heartbeat (it outlives ``listen`` while jobs finish) and release the rest."""
        await self._heartbeat.stop()
        self.group.flush()
        self.release_held()
        await super().shutdown()
        self.database.close()

    async def kick(self, message: BrokerMessage) -> None:
        with self.database.transaction() as conn:
            self.enqueue_in(conn, message)
        self.wake()

    def enqueue_in(self, conn: sqlite3.Connection, message: BrokerMessage) -> None:
        lane = str(message.labels.get("lane", DEFAULT_LANE))
        delay = float(message.labels.get("delay", 0) or 0)
        conn.execute(
            "INSERT INTO queue (task_id, lane, payload, visible_at) VALUES (?, ?, ?, ?)",
            (message.task_id, lane, message.message, self.clock() + delay),
        )

    def wake(self) -> None:
        """Tell this process's listener that there is new work."""
        self._new_work.set()

    async def listen(self) -> AsyncGenerator[bytes | AckableMessage, None]:
        self._heartbeat.ensure_running()
        while True:
            if not self._claimed:
                self._claimed.extend(self._claim(self.prefetch))
            if not self._claimed:
                await self._wait_for_work()
                continue
            seq, deliveries, payload = self._claimed.popleft()
            yield AckableMessage(data=payload, ack=partial(self._ack, seq, deliveries))

    def _claim(self, limit: int) -> list[tuple[int, int, bytes]]:
        """Lease up to ``limit`` ready rows, earliest lane first, in one transaction."""
        claimed: list[tuple[int, int, bytes]] = []
        with self.database.transaction() as conn:
            for lane in self.lanes:
                while len(claimed) < limit:
                    now = self.clock()
                    row = conn.execute(
                        "UPDATE queue SET visible_at = ?, lease_owner = ?, "
                        "deliveries = deliveries + 1 "
                        "WHERE seq = (SELECT seq FROM queue WHERE lane = ? AND visible_at <= ? "
                        "ORDER BY visible_at, seq LIMIT 1) "
                        "RETURNING seq, deliveries, task_id, payload",
                        (now + self.lease_seconds, self.consumer_id, lane, now),
                    ).fetchone()
                    if row is None:
                        break
                    seq, deliveries, task_id, payload = row
                    if self.gate and self.gate.admit_in(conn, task_id, now) is Admission.DROP:
                        conn.execute("DELETE FROM queue WHERE seq = ?", (seq,))
                        continue
                    self._held[seq] = (deliveries, task_id)
                    claimed.append((seq, deliveries, bytes(payload)))
        return claimed

    async def _wait_for_work(self) -> None:
        """Sleep until new work can exist: an in-process kick, another process's commit,
        a delayed row coming due or a lease running out."""
        self._new_work.clear()
        next_due = self._next_due()
        deadline = self.clock() + 1.0 if next_due is None else min(next_due, self.clock() + 1.0)
        version = self.database.data_version()
        while self.clock() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_work.wait(), self.poll_seconds)
                return
            if self.database.data_version() != version:
                return

    def _next_due(self) -> float | None:
        placeholders = ",".join("?" * len(self.lanes))
        row = self.database.connection.execute(
            f"SELECT MIN(visible_at) FROM queue WHERE lane IN ({placeholders})", self.lanes
        ).fetchone()
        return None if row[0] is None else float(row[0])

    async def _ack(self, seq: int, deliveries: int) -> None:
        self._held.pop(seq, None)
        owner = self.consumer_id

        def delete(conn: sqlite3.Connection) -> None:
            # A row released at shutdown is no longer ours, even if its job finishes late.
            conn.execute(
                "DELETE FROM queue WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
                (seq, deliveries, owner),
            )

        await self.group.write(delete)

    async def _renew(self) -> None:
        self.renew_leases()

    def renew_leases(self) -> None:
        if not self._held:
            return
        until = self.clock() + self.lease_seconds
        with self.database.transaction() as conn:
            conn.executemany(
                "UPDATE queue SET visible_at = ? WHERE seq = ? AND deliveries = ?",
                [(until, seq, deliveries) for seq, (deliveries, _) in self._held.items()],
            )

    def release_held(self) -> None:
        """Hand every job this process still holds back to the queue at once."""
        self._claimed.clear()
        if not self._held:
            return
        now = self.clock()
        with self.database.transaction() as conn:
            for seq, (deliveries, task_id) in self._held.items():
                released = conn.execute(
                    "UPDATE queue SET visible_at = ?, lease_owner = NULL "
                    "WHERE seq = ? AND deliveries = ?",
                    (now, seq, deliveries),
                ).rowcount
                if released and self.gate is not None:
                    self.gate.release_in(conn, task_id)
        logger.warning("released %d unfinished jobs back to the queue", len(self._held))
        self._held.clear()
