"""The webhook outbox each backend keeps beside its job store.

A job with a ``callback_url`` gets an outbox entry in the same transaction (SQLite: a
trigger on the jobs table) or script (Redis: the ``move`` helper every transition uses)
that makes it succeeded, failed or cancelled. So an entry cannot be lost between the
terminal state and the delivery, whichever path finished the job (a worker, a cancel, the
admission gate, the sweeper), and no backstop scan is needed. Workers claim due entries
for a lease, POST, and record each try with the next due time; a worker killed between
tries leaves the entry for another worker once it is due (or its lease ran out).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import TypeAdapter

from schemas.webhooks import WebhookDelivery, WebhookState

DELIVERIES = TypeAdapter(list[WebhookDelivery])


def event_id(job_id: str, seq: int) -> str:
    """The ``webhook-id`` of a job's ``seq``-th finish: the same on every try of it."""
    return f"msg_{job_id}_{seq}"


@dataclass(frozen=True)
class DueWebhook:
    job_id: str
    seq: int
    """Which finish of the job this is (a job retried by hand finishes again)."""
    tries: int
    """Tries made so far."""


class WebhookOutbox(Protocol):
    async def claim(self, now: float, limit: int, lease_until: float) -> list[DueWebhook]:
        """Take up to ``limit`` due entries, hidden from other workers until ``lease_until``."""
        ...

    async def record(
        self,
        due: DueWebhook,
        delivery: WebhookDelivery | None,
        state: WebhookState,
        next_at: float | None,
    ) -> bool:
        """Add a try (if any) and the new state; due again at ``next_at`` while pending.
        False when the entry is gone or a later finish replaced it."""
        ...

    async def secret(self, tenant: str, candidate: str) -> str:
        """The tenant's signing secret; ``candidate`` becomes it if it has none yet."""
        ...
