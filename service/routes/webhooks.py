"""The tenant's webhook signing secret."""

from __future__ import annotations

from fastapi import APIRouter

from schemas.webhooks import WebhookSecret
from service.deps import BackendDep, TenantDep
from service.errors import BackendUnavailableError, documented
from service.webhooks.signing import new_secret

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.get(
    "/secret",
    operation_id="get_webhook_secret",
    responses=documented(BackendUnavailableError),
)
async def get_webhook_secret(backend: BackendDep, tenant: TenantDep) -> WebhookSecret:
    """The secret that signs this tenant's webhooks (made on first use, then never changes)."""
    if backend.webhooks is None:
        raise BackendUnavailableError("this backend keeps no webhooks")
    return WebhookSecret(secret=await backend.webhooks.secret(tenant, new_secret()))
