"""Shared fixtures. The environment is set before any Offload module is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="offload-tests-"))
os.environ["OFFLOAD_DATA_DIR"] = str(_SESSION_DIR / "default")
os.environ.pop("OFFLOAD_BROKER_URL", None)
os.environ.setdefault("OFFLOAD_LEASE_SECONDS", "30")

import importlib  # noqa: E402
import pkgutil  # noqa: E402
import uuid  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402

import anyio  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402

import tasks  # noqa: E402, F401
from brokers import backend, broker  # noqa: E402
from brokers.factory import Backend, build_backend  # noqa: E402
from service.app import create_app  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

# anyio imports its parts on first use and parses their source with ast to do so. CPython
# 3.11 breaks ("AST constructor recursion depth mismatch") when two threads build ASTs at
# once, e.g. a job thread importing anyio's file helpers while hypothesis parses a lambda.
# Importing it all now, on the main thread, leaves nothing to parse later.
for _module in pkgutil.walk_packages(anyio.__path__, "anyio."):
    if "trio" not in _module.name and "pytest" not in _module.name:
        importlib.import_module(_module.name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server for the session (never the shared 6379)."""
    server = RedisServer(_SESSION_DIR / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def embedded_backend(tmp_path: Path) -> Backend:
    """The process's embedded backend, pointed at a fresh data directory for this test."""
    backend.use_data_dir(tmp_path)
    return backend


def redis_backend(server: RedisServer, data_dir: Path, **settings: float) -> Backend:
    """A Redis backend with its own key prefix, running every task the app defines."""
    redis = build_backend(
        Settings(
            broker_url=server.url,
            redis_prefix=f"test-{uuid.uuid4().hex[:12]}",
            data_dir=data_dir,
            **settings,  # type: ignore[arg-type]
        )
    )
    redis.adopt_tasks(broker)
    return redis


@pytest.fixture(params=["sqlite", "redis"])
async def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend in turn: the behaviour the API promises must not depend on the engine."""
    if request.param == "sqlite":
        backend.use_data_dir(tmp_path)
        yield backend
        return
    redis = redis_backend(request.getfixturevalue("redis_server"), tmp_path)
    yield redis
    await redis.close()


@pytest.fixture
async def client(any_backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The API with an in-process worker and scheduler, through httpx's ASGI transport."""
    app = create_app(any_backend, embedded_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http
