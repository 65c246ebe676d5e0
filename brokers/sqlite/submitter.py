"""Submitting on the embedded backend: the job row and its queue row in one transaction."""

from __future__ import annotations

from taskiq import BrokerMessage

from brokers.contract import IdempotencyKey, JobRecord, Submitted
from brokers.sqlite.broker import SqliteBroker
from brokers.sqlite.store import SqliteJobStore


class SqliteJobSubmitter:
    def __init__(self, broker: SqliteBroker) -> None:
        self.broker = broker

    async def submit(
        self, job: JobRecord, message: BrokerMessage, key: IdempotencyKey | None = None
    ) -> Submitted:
        with self.broker.database.transaction() as conn:
            if key is not None:
                held = conn.execute(
                    "SELECT job_id, fingerprint FROM idempotency_keys "
                    "WHERE tenant = ? AND key = ? AND expires_at > ?",
                    (job.tenant, key.key, job.created_at),
                ).fetchone()
                if held is not None:
                    return Submitted(held[0], created=False, fingerprint=held[1])
                conn.execute(
                    "INSERT OR REPLACE INTO idempotency_keys "
                    "(tenant, key, job_id, fingerprint, expires_at) VALUES (?, ?, ?, ?, ?)",
                    (job.tenant, key.key, job.id, key.fingerprint, job.expires_at),
                )
            SqliteJobStore.insert(conn, job)
            self.broker.enqueue_in(conn, message)
        self.broker.wake()
        return Submitted(job.id, created=True)
