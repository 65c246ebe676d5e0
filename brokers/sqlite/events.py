"""The job change feed on the embedded database: one watcher per process on the data version.

``PRAGMA data_version`` changes whenever another connection commits to the file, from this
process or any other (a worker started with ``offload worker``). The watcher has a
connection of its own, so the commits of this process's own connection count too. While
somebody watches a job it looks at that number every 5 to 50 ms (a read of shared memory,
no disk); when it moved, it reads the versions of the watched jobs only, and the
whole row of those that changed. With nobody watching, it does not run.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from brokers.events import FanOut
from brokers.sqlite.database import Database
from brokers.sqlite.store import read_job, versions_of

logger = logging.getLogger(__name__)

POLL_SECONDS = (0.005, 0.05)
"""How often the watcher compares the data version: every 5 ms after a change, slowing to
every 50 ms while the file stays quiet (measured: one open stream cost 4% of a core at a
steady 5 ms, for nobody's benefit). About the latency of an event."""


class SqliteJobFeed(FanOut):
    listener_name = "offload-sqlite-events"

    def __init__(
        self, database: Database, poll_seconds: tuple[float, float] = POLL_SECONDS
    ) -> None:
        super().__init__()
        self.database = database
        self.poll_seconds = poll_seconds

    async def _listen(self) -> None:
        pause = 0.1
        while self._watches:
            try:
                await self._watch_file()
                return
            except Exception as error:
                # Locked past the busy timeout, I/O error, a row that does not validate:
                # watches stay open and get the state they missed once it can be read again.
                logger.warning("job events cannot be read (%s); retrying in %.1f s", error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    async def _watch_file(self) -> None:
        conn = sqlite3.connect(self.database.path, isolation_level=None, timeout=10.0)
        try:
            data_version: int | None = None
            known: dict[str, int] = {}
            fastest, slowest = self.poll_seconds
            pause = fastest
            while self._watches:
                current = int(conn.execute("PRAGMA data_version").fetchone()[0])
                new = [job_id for job_id in self._watches if job_id not in known]
                if current == data_version and not new:
                    await asyncio.sleep(pause)
                    pause = min(pause * 1.5, slowest)
                    continue
                data_version = current
                pause = fastest
                self._read_changes(conn, known)
        finally:
            conn.close()

    def _read_changes(self, conn: sqlite3.Connection, known: dict[str, int]) -> None:
        """Deliver each watched job whose version moved (or that is newly watched)."""
        watched = self.watched()
        for job_id in set(known) - set(watched):
            del known[job_id]
        versions = versions_of(conn, watched)
        for job_id in watched:
            version = versions.get(job_id)
            if version is None:
                known.pop(job_id, None)
                self.deliver(job_id, None)
                continue
            if known.get(job_id) == version:
                continue
            record = read_job(conn, job_id)
            known[job_id] = version if record is None else record.version
            self.deliver(job_id, record)
