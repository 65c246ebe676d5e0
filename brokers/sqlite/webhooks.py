"""The webhook outbox on the embedded database: the ``webhooks`` table and its triggers
(brokers/sqlite/database.py SCHEMA) hold one entry per job that has a callback."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from brokers.sqlite.database import Database
from brokers.webhooks import DELIVERIES, DueWebhook, event_id
from schemas.webhooks import JobWebhook, WebhookDelivery, WebhookState


def webhook_of(conn: sqlite3.Connection, job_id: str, url: str) -> JobWebhook | None:
    """The job's webhook as the API shows it; None until the job first finished."""
    row = conn.execute(
        "SELECT seq, state, due_at, deliveries FROM webhooks WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return None
    seq, state, due_at, deliveries = row
    return JobWebhook(
        url=url,
        state=WebhookState(state),
        event_id=event_id(job_id, seq),
        next_try_at=datetime.fromtimestamp(due_at, UTC) if due_at else None,
        deliveries=DELIVERIES.validate_json(deliveries),
    )


class SqliteWebhookOutbox:
    """Implements :class:`brokers.webhooks.WebhookOutbox`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def claim(self, now: float, limit: int, lease_until: float) -> list[DueWebhook]:
        with self.database.transaction() as conn:
            rows = conn.execute(
                "UPDATE webhooks SET due_at = ? WHERE job_id IN (SELECT job_id FROM webhooks "
                "WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?) "
                "RETURNING job_id, seq, tries",
                (lease_until, now, limit),
            ).fetchall()
        return [DueWebhook(job_id, seq, tries) for job_id, seq, tries in rows]

    async def record(
        self,
        due: DueWebhook,
        delivery: WebhookDelivery | None,
        state: WebhookState,
        next_at: float | None,
    ) -> bool:
        # json_insert with '$[#]' appends, in the same statement that checks the entry.
        appended = "deliveries" if delivery is None else "json_insert(deliveries, '$[#]', json(?))"
        tried = [] if delivery is None else [delivery.model_dump_json()]
        with self.database.transaction() as conn:
            row = conn.execute(
                f"UPDATE webhooks SET state = ?, due_at = ?, tries = tries + ?, "
                f"deliveries = {appended} WHERE job_id = ? AND seq = ? AND tries = ? "
                "RETURNING job_id",
                (state.value, next_at, len(tried), *tried, due.job_id, due.seq, due.tries),
            ).fetchone()
            if row is not None:
                # The job's webhook is part of what a client sees: a new version (the
                # jobs_version trigger skips an update that sets it itself).
                conn.execute("UPDATE jobs SET version = version + 1 WHERE id = ?", (due.job_id,))
        return row is not None

    async def secret(self, tenant: str, candidate: str) -> str:
        row = self.database.connection.execute(
            "SELECT secret FROM webhook_secrets WHERE tenant = ?", (tenant,)
        ).fetchone()
        if row is not None:
            return str(row[0])
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO webhook_secrets (tenant, secret) VALUES (?, ?)",
                (tenant, candidate),
            )
            row = conn.execute(
                "SELECT secret FROM webhook_secrets WHERE tenant = ?", (tenant,)
            ).fetchone()
        return str(row[0])
