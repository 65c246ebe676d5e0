"""Submitting on the embedded backend: the job row and its queue row in one transaction."""

from __future__ import annotations

from taskiq import BrokerMessage

from brokers.contract import JobRecord
from brokers.sqlite.broker import SqliteBroker
from brokers.sqlite.store import SqliteJobStore


class SqliteJobSubmitter:
    def __init__(self, broker: SqliteBroker) -> None:
        self.broker = broker

    async def submit(self, job: JobRecord, message: BrokerMessage) -> None:
        with self.broker.database.transaction() as conn:
            SqliteJobStore.insert(conn, job)
            self.broker.enqueue_in(conn, message)
        self.broker.wake()
