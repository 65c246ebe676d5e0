"""Shared fixtures. The environment is set before any Offload module is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="offload-tests-"))
os.environ["OFFLOAD_DATA_DIR"] = str(_SESSION_DIR / "default")
os.environ.pop("OFFLOAD_BROKER_URL", None)
os.environ.setdefault("OFFLOAD_LEASE_SECONDS", "30")

from collections.abc import AsyncIterator  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402

import tasks  # noqa: E402, F401
from brokers import backend  # noqa: E402
from brokers.factory import Backend  # noqa: E402
from service.app import create_app  # noqa: E402


@pytest.fixture
def embedded_backend(tmp_path: Path) -> Backend:
    """The process's embedded backend, pointed at a fresh data directory for this test."""
    backend.use_data_dir(tmp_path)
    return backend


@pytest.fixture
async def client(embedded_backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its in-process worker and scheduler, through httpx's ASGI transport."""
    app = create_app(embedded_backend)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http
