"""Webhook state on a job, and the tenant's signing secret: part of the API contract."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class WebhookState(StrEnum):
    PENDING = "pending"
    """Not delivered yet: a try is due (``next_try_at``) or under way."""
    DELIVERED = "delivered"
    """The receiver answered 2xx."""
    FAILED = "failed"
    """Given up: every try failed, the URL was refused, or the job expired first."""


class WebhookDelivery(BaseModel):
    """One try at delivering the webhook."""

    at: datetime = Field(description="When the try started.")
    status_code: int | None = Field(
        default=None, description="The receiver's HTTP status; null when it never answered."
    )
    error: str | None = Field(
        default=None, description="Why the try failed (refused, timeout, connection error)."
    )
    duration_ms: float = Field(ge=0, description="How long the try took.")


class JobWebhook(BaseModel):
    """Delivery of the job's webhook, sent once it finishes (the latest finish, after a retry)."""

    url: str
    state: WebhookState
    event_id: str = Field(
        description="The `webhook-id` header of every try: the same for each try of one event, "
        "so a receiver can drop duplicates."
    )
    next_try_at: datetime | None = Field(default=None, description="When the next try is due.")
    deliveries: list[WebhookDelivery] = Field(default_factory=list, description="Each try.")


class WebhookSecret(BaseModel):
    secret: str = Field(
        description="The tenant's signing secret (`whsec_` + base64 of the key): each "
        "delivery's `webhook-signature` is `v1,` + base64(HMAC-SHA256(key, "
        "`{webhook-id}.{webhook-timestamp}.{body}`))."
    )
