"""Liveness and readiness."""

from __future__ import annotations

import shutil
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from brokers.factory import Backend
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


MIN_FREE_BYTES = 1 << 20
"""Below this much free space in the data directory, the embedded backend is degraded."""
WRITE_ERROR_SHOWN_SECONDS = 60.0


def _disk_check(backend: Backend) -> str:
    database = backend.database
    if database is None:
        return "ok"
    folder = database.path.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError as error:
        return f"unreadable: {error}"
    if free < MIN_FREE_BYTES:
        return f"full: {free} bytes free in {folder}"
    failed = database.last_write_error
    if failed is not None and time.time() - failed[0] < WRITE_ERROR_SHOWN_SECONDS:
        return f"writes failing: {failed[1]}"
    return "ok"


@router.get(
    "/readyz",
    operation_id="get_readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A part is down"}},
)
async def readyz(backend: BackendDep, request: Request) -> Any:
    """Says whether the job backend answers, and what is degraded if not."""
    checks: dict[str, str] = {}
    try:
        await backend.store.ping()
        checks["store"] = "ok"
    except Exception as error:
        checks["store"] = f"unreachable: {error}"
    if backend.embedded:
        checks["disk"] = _disk_check(backend)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        checks.update(runtime.checks())
    degraded = any(value != "ok" for value in checks.values())
    readiness = Readiness(
        status="degraded" if degraded else "ok", backend=backend.settings.backend, checks=checks
    )
    return JSONResponse(readiness.model_dump(), status_code=503 if degraded else 200)
