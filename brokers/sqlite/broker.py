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
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from taskiq import AckableMessage, AsyncBroker, BrokerMessage

from brokers.contract import Admission, Admitted, WorkerRegistry
from brokers.heartbeat import Heartbeat, consumer_name
from brokers.screening import MessageScreen, Screened, Verdict, log_refusal
from brokers.sqlite.database import DEFAULT_LANE, LANES, Database
from brokers.sqlite.group_commit import GroupCommit
from schemas.jobs import JobError

logger = logging.getLogger(__name__)

HAND_BACK_SECONDS = 1.0
"""A message for a task this worker does not know waits this long before any worker sees it
again (another live worker knows the task: a rolling deploy)."""


class DeliveryGate(Protocol):
    """Decides, inside the hand-out's transaction, whether a delivered job should run."""

    def admit_in(
        self, conn: sqlite3.Connection, job_id: str, now: float, token: int = 0
    ) -> Admitted: ...

    def release_in(self, conn: sqlite3.Connection, job_id: str, fence: int) -> bool: ...

    def fail_undeliverable_in(
        self, conn: sqlite3.Connection, job_id: str, now: float, error: JobError
    ) -> bool: ...


@dataclass
class _Held:
    """A queue row this process leased: claimed, then handed out to the receiver."""

    deliveries: int
    task_id: str
    token: int = 0
    """The row's message token (see SqliteJobStore.admit_in)."""
    fence: int | None = None
    """The job's fencing token once admitted; None for plain TaskiQ messages."""
    handed_out: bool = False
    admitted: bool = False
    """Admitted in the claim's transaction (a receiver slot was free for it)."""

    @property
    def started(self) -> bool:
        """Only started rows are renewed: one still waiting here for a free slot lapses
        after its lease, so an idle worker may take it."""
        return self.handed_out or self.admitted


class SqliteBroker(AsyncBroker):
    def __init__(
        self,
        database: Database,
        *,
        lease_seconds: float,
        lanes: tuple[str, ...] = LANES,
        gate: DeliveryGate | None = None,
        screen: MessageScreen | None = None,
        registry: WorkerRegistry | None = None,
        group: GroupCommit | None = None,
        prefetch: int = 4,
        concurrency: int | None = None,
        poll_seconds: float = 0.002,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.database = database
        self.lease_seconds = lease_seconds
        self.lanes = lanes
        self.gate = gate
        self.screen = screen
        self.registry = registry
        self.group = group or GroupCommit(database)
        self.prefetch = prefetch
        self.concurrency = concurrency
        """Jobs the receiver runs at once; rows for its free slots are admitted at claim."""
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.consumer_id = consumer_name()
        self._held: dict[int, _Held] = {}
        self._running: dict[str, int] = {}
        """Task id -> queue seq of each admitted job this process runs."""
        self._claimed: deque[tuple[int, int, str, bytes]] = deque()
        self._new_work = asyncio.Event()
        self._heartbeat = Heartbeat(self._beat, lease_seconds / 3)

    async def startup(self) -> None:
        self.database.connection  # noqa: B018 - opens the file and creates the schema
        self.consumer_id = consumer_name()  # worker processes are forked after __init__
        self._new_work = asyncio.Event()
        await super().startup()

    async def shutdown(self) -> None:
        """Stop the heartbeat (it outlives ``listen`` while jobs finish) and release the rest."""
        await self._heartbeat.stop()
        with contextlib.suppress(sqlite3.Error):
            self.group.flush()
            self.release_held()
            if self.registry is not None:
                await self.registry.leave(self.consumer_id)
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
        pause = 0.1
        while True:
            try:
                if not self._claimed:
                    self._claimed.extend(self._claim(self.prefetch))
                if not self._claimed:
                    await self._wait_for_work()
                    continue
                message = await self._hand_out_or_put_back(*self._claimed.popleft())
            except sqlite3.Error as error:
                # Locked past the busy timeout, disk full, I/O error: wait and go on. What
                # this process leased and could not hand out comes back after its lease.
                logger.warning("the queue cannot be read (%s); retrying in %.1f s", error, pause)
                self._abandon_unhanded()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.1
            if message is not None:
                yield message

    def _claim(self, limit: int) -> list[tuple[int, int, str, bytes]]:
        """Lease up to ``limit`` ready rows, earliest lane first, in one transaction.

        A job becomes ``running`` only when it starts: rows for which the receiver has a free
        slot (``concurrency`` less the jobs this process runs) are admitted in this same
        transaction, as they are handed out at once; the others wait here only leased, and
        are admitted when handed out (``_hand_out``), so they cost no attempt if this
        process dies.
        """
        budget = self._free_slots()
        now = self.clock()
        fresh: list[tuple[int, int, str, bytes]] = []
        new: dict[int, _Held] = {}
        with self.database.transaction() as conn:
            for lane in self.lanes:
                while len(fresh) < limit:
                    row = conn.execute(
                        "UPDATE queue SET visible_at = ?, lease_owner = ?, "
                        "deliveries = deliveries + 1 "
                        "WHERE seq = (SELECT seq FROM queue WHERE lane = ? AND visible_at <= ? "
                        "ORDER BY visible_at, seq LIMIT 1) "
                        "RETURNING seq, deliveries, task_id, payload, token",
                        (now + self.lease_seconds, self.consumer_id, lane, now),
                    ).fetchone()
                    if row is None:
                        break
                    seq, deliveries, task_id, raw, token = row
                    payload = bytes(raw)
                    mine = self._held.get(seq)
                    if mine is not None:
                        # Our own row, whose lease lapsed while renewals failed: it runs here
                        # already, so keep it (under its new delivery) and do not run it twice.
                        mine.deliveries = deliveries
                        continue
                    held = _Held(deliveries, task_id, token)
                    if budget > 0 and self._starts_here(payload):
                        assert self.gate is not None
                        admitted = self.gate.admit_in(conn, task_id, now, token)
                        if admitted.admission is Admission.DROP:
                            conn.execute("DELETE FROM queue WHERE seq = ?", (seq,))
                            continue
                        held.admitted = True
                        if admitted.admission is Admission.RUN:
                            held.fence = admitted.fence
                        budget -= 1
                    new[seq] = held
                    fresh.append((seq, deliveries, task_id, payload))
        self._held.update(new)
        for seq, held in new.items():
            if held.fence is not None:
                self._running[held.task_id] = seq
        return fresh

    def _free_slots(self) -> int:
        if self.concurrency is None or self.gate is None:
            return 0
        busy = sum(1 for held in self._held.values() if held.started)
        return self.concurrency - busy

    def _starts_here(self, payload: bytes) -> bool:
        return self.screen is None or self.screen.runs_here(payload)

    async def _hand_out_or_put_back(
        self, seq: int, deliveries: int, task_id: str, payload: bytes
    ) -> AckableMessage | None:
        try:
            return await self._hand_out(seq, deliveries, task_id, payload)
        except BaseException:
            # Whatever failed, the row must not stay leased and renewed by nobody's job.
            self._held.pop(seq, None)
            with contextlib.suppress(sqlite3.Error):
                self._put_back(seq, deliveries, after=0)
            raise

    async def _hand_out(
        self, seq: int, deliveries: int, task_id: str, payload: bytes
    ) -> AckableMessage | None:
        held = self._held[seq]
        if held.admitted:
            held.handed_out = True
            return AckableMessage(data=payload, ack=partial(self._ack, seq, held))
        now = self.clock()
        if self.screen is not None:
            screened = await self.screen.screen(payload, now)
            if screened.verdict is Verdict.HAND_BACK:
                self._put_back(seq, deliveries, after=HAND_BACK_SECONDS)
                return None
            if screened.verdict is Verdict.REFUSE:
                self._refuse(seq, deliveries, task_id, screened, now)
                return None
        if self.gate is not None:
            admitted = await self.group.write(partial(self._admit_in, seq, held, now))
            if admitted is None or admitted.admission is Admission.DROP:
                self._held.pop(seq, None)
                return None
            if admitted.admission is Admission.RUN:
                held.fence = admitted.fence
                self._running[task_id] = seq
        held.handed_out = True
        return AckableMessage(data=payload, ack=partial(self._ack, seq, held))

    def _admit_in(
        self, seq: int, held: _Held, now: float, conn: sqlite3.Connection
    ) -> Admitted | None:
        """Start the job if this process still holds its row; None if it does not."""
        assert self.gate is not None
        still_ours = conn.execute(
            "UPDATE queue SET visible_at = ? WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
            (now + self.lease_seconds, seq, held.deliveries, self.consumer_id),
        ).rowcount
        if not still_ours:
            return None
        admitted = self.gate.admit_in(conn, held.task_id, now, held.token)
        if admitted.admission is Admission.DROP:
            conn.execute("DELETE FROM queue WHERE seq = ?", (seq,))
        return admitted

    def _put_back(self, seq: int, deliveries: int, after: float) -> None:
        """Give a leased row back for any worker, ``after`` seconds from now."""
        self._held.pop(seq, None)
        with self.database.transaction() as conn:
            conn.execute(
                "UPDATE queue SET visible_at = ?, lease_owner = NULL "
                "WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
                (self.clock() + after, seq, deliveries, self.consumer_id),
            )

    def _refuse(
        self, seq: int, deliveries: int, task_id: str, screened: Screened, now: float
    ) -> None:
        self._held.pop(seq, None)
        with self.database.transaction() as conn:
            if self.gate is not None and screened.error is not None:
                self.gate.fail_undeliverable_in(conn, task_id, now, screened.error)
            conn.execute(
                "DELETE FROM queue WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
                (seq, deliveries, self.consumer_id),
            )
        log_refusal(task_id, screened)

    def _abandon_unhanded(self) -> None:
        """Forget leased rows not yet handed out: their leases run out and they come back."""
        while self._claimed:
            self._held.pop(self._claimed.popleft()[0], None)

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

    async def _ack(self, seq: int, held: _Held) -> None:
        if self._held.get(seq) is not held:
            return  # released, abandoned or taken over: the row is no longer ours
        del self._held[seq]
        if self._running.get(held.task_id) == seq:
            del self._running[held.task_id]
        owner = self.consumer_id

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM queue WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
                (seq, held.deliveries, owner),
            )

        try:
            await self.group.write(delete)
        except sqlite3.Error as error:
            logger.warning(
                "could not acknowledge %s (%s); it is delivered again after its lease and "
                "dropped there, as its job has finished",
                held.task_id,
                error,
            )

    def fence_of(self, task_id: str) -> int | None:
        """The fencing token of a job this process runs (see brokers.contract.Admitted)."""
        seq = self._running.get(task_id)
        held = None if seq is None else self._held.get(seq)
        return None if held is None else held.fence

    async def hand_back(self, task_id: str) -> None:
        """Put one running job's row back at once; its attempt counts (it did run)."""
        seq = self._running.pop(task_id, None)
        held = None if seq is None else self._held.pop(seq, None)
        if seq is None or held is None:
            return
        with self.database.transaction() as conn:
            self._release_in(conn, seq, held, give_back_attempt=False)

    def abandon(self, task_id: str) -> None:
        """Stop renewing a job's lease: it is delivered again once the lease runs out."""
        seq = self._running.pop(task_id, None)
        if seq is not None:
            self._held.pop(seq, None)

    async def _beat(self) -> None:
        """Announce this worker's tasks (first, so a new worker is known at once), then
        renew leases; either failing does not stop the other."""
        announced: Exception | None = None
        if self.registry is not None and self.screen is not None:
            try:
                await self.registry.announce(
                    self.consumer_id, self.screen.task_names(), self.clock()
                )
            except Exception as error:
                announced = error
        self.renew_leases()
        if announced is not None:
            raise announced

    def renew_leases(self) -> None:
        running = [(seq, held) for seq, held in list(self._held.items()) if held.started]
        if not running:
            return
        until = self.clock() + self.lease_seconds
        with self.database.transaction() as conn:
            conn.executemany(
                "UPDATE queue SET visible_at = ? "
                "WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
                [(until, seq, held.deliveries, self.consumer_id) for seq, held in running],
            )

    def release_held(self) -> None:
        """Hand every job this process still holds back to the queue at once."""
        self._claimed.clear()
        if not self._held:
            return
        with self.database.transaction() as conn:
            for seq, held in self._held.items():
                self._release_in(conn, seq, held)
        logger.warning("released %d unfinished jobs back to the queue", len(self._held))
        self._held.clear()
        self._running.clear()

    def _release_in(
        self, conn: sqlite3.Connection, seq: int, held: _Held, give_back_attempt: bool = True
    ) -> None:
        released = conn.execute(
            "UPDATE queue SET visible_at = ?, lease_owner = NULL "
            "WHERE seq = ? AND deliveries = ? AND lease_owner = ?",
            (self.clock(), seq, held.deliveries, self.consumer_id),
        ).rowcount
        if released and give_back_attempt and self.gate and held.fence is not None:
            self.gate.release_in(conn, held.task_id, held.fence)
