"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.deps import BackendDep

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="'ok' when every part answers, else 'degraded'.")
    backend: str = Field(description="Which engine runs the queue: sqlite or redis.")
    checks: dict[str, str] = Field(description="Each part and 'ok' or what is wrong with it.")


@router.get("/healthz", operation_id="get_health", response_model=Health)
async def healthz() -> Health:
    """Answers while the process is alive, whatever the backend's state."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="get_readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A part is down"}},
)
async def readyz(backend: BackendDep) -> Any:
    """Says whether the job backend answers, and what is degraded if not."""
    checks: dict[str, str] = {}
    try:
        await backend.store.ping()
        checks["store"] = "ok"
    except Exception as error:
        checks["store"] = f"unreachable: {error}"
    degraded = any(value != "ok" for value in checks.values())
    readiness = Readiness(
        status="degraded" if degraded else "ok", backend=backend.settings.backend, checks=checks
    )
    return JSONResponse(readiness.model_dump(), status_code=503 if degraded else 200)
