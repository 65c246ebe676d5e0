"""Live events across processes: a worker process's changes reach the API's streams, on both
backends, and open streams outlive a Redis restart."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from brokers import backend as embedded
from brokers import broker
from brokers.factory import Backend, build_backend
from schemas.jobs import JobStatus
from service.app import create_app
from service.settings import Settings
from service.submission import submit_job
from tests.support.event_tasks import stepped
from tests.support.jobs import store_job
from tests.support.live import Event, EventStream, open_stream, serving
from tests.support.processes import Processes
from tests.support.redis_server import RedisServer
from tests.system.test_redis_processes import DurableRedisServer

pytestmark = pytest.mark.slow


def redis_for(processes: Processes, server: RedisServer) -> Backend:
    """A backend on ``server`` under a fresh prefix, the same one the processes get."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    processes.settings.update(OFFLOAD_BROKER_URL=server.url, OFFLOAD_REDIS_PREFIX=prefix)
    backend = build_backend(
        Settings(broker_url=server.url, redis_prefix=prefix, data_dir=processes.data_dir)
    )
    backend.adopt_tasks(broker)
    return backend


@asynccontextmanager
async def api_only(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no worker of its own: every change comes from elsewhere."""
    async with serving(create_app(backend, embedded_worker=False)) as client:
        yield client


@pytest.fixture(params=["sqlite", "redis"])
def shared_backend(request: pytest.FixtureRequest, processes: Processes) -> Iterator[Backend]:
    if request.param == "sqlite":
        embedded.use_data_dir(processes.data_dir)
        yield embedded
        return
    yield redis_for(processes, request.getfixturevalue("redis_server"))


async def test_a_worker_in_another_process_produces_the_events(
    shared_backend: Backend, processes: Processes
) -> None:
    processes.taskiq_worker("worker", "tests.support.event_tasks")
    async with api_only(shared_backend) as client:
        record = await submit_job(
            shared_backend,
            stepped,
            tenant="local",
            kind="qr",
            request={"steps": 3, "pause": 0.4},
        )
        async with open_stream(client, record.id) as stream:
            events = await stream.rest(timeout=60)
    statuses = [event.job["status"] for event in events]
    processes.check(statuses[-1] == "succeeded", f"the stream did not end succeeded: {statuses}")
    assert "running" in statuses
    assert any(event.event == "progress" for event in events), [e.event for e in events]
    assert events[-1].job["progress"]["done"] == 3
    ids = [event.id for event in events]
    assert ids == sorted(set(ids)), f"ids are not strictly increasing: {ids}"
    await shared_backend.close()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[DurableRedisServer]:
    server = DurableRedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_open_streams_get_the_changes_after_a_redis_restart(
    durable_redis: DurableRedisServer, processes: Processes
) -> None:
    """Redis goes away under an open stream and comes back; the change made right after it
    returns (maybe before this process subscribed again) still reaches the stream."""
    backend = redis_for(processes, durable_redis)
    backend.settings.events_keepalive_seconds = 0.1
    try:
        async with api_only(backend) as client:
            record = await store_job(backend, status=JobStatus.QUEUED)
            async with open_stream(client, record.id) as stream:
                first = await stream.next()
                for _ in range(1000):  # subscribed: the outage breaks a live subscription
                    if getattr(backend.events, "subscriptions", 0):
                        break
                    await asyncio.sleep(0.01)
                reading = asyncio.ensure_future(stream.next(timeout=60))
                durable_redis.stop()
                await until_comments(stream, 3, reading)  # the stream stays open meanwhile
                durable_redis.start()
                cancelled = await client.post(f"/v1/jobs/{record.id}/cancel")
                assert cancelled.status_code == 200, cancelled.text
                rest = [await reading, *await stream.rest(timeout=30)]
    finally:
        await backend.close()
    assert first.job["status"] == "queued"
    assert [(e.event, e.job["status"]) for e in rest] == [("status", "cancelled")]
    assert rest[0].id > first.id
    assert getattr(backend.events, "subscriptions", 0) >= 2, "it never subscribed again"


async def until_comments(stream: EventStream, count: int, reading: asyncio.Future[Event]) -> None:
    """Wait until the stream sent ``count`` more keep-alives, and no event meanwhile."""
    target = len(stream.comments) + count
    for _ in range(3000):
        if len(stream.comments) >= target:
            break
        assert not reading.done(), f"an event came during the outage: {reading.result()}"
        await asyncio.sleep(0.01)
    assert len(stream.comments) >= target


async def test_sigterm_ends_open_streams_instead_of_waiting_for_them(
    processes: Processes,
) -> None:
    """uvicorn waits for open responses before it stops: a stream on a job that never
    finishes would hold ``offload serve`` up for its whole grace time and then be cut."""
    server = processes.serve(OFFLOAD_SHUTDOWN_GRACE_SECONDS="60")
    embedded.use_data_dir(processes.data_dir)
    record = await store_job(embedded, status=JobStatus.QUEUED)  # no message: never runs
    async with (
        httpx.AsyncClient(base_url=str(server.base_url), timeout=30) as client,
        open_stream(client, record.id) as stream,
    ):
        first = await stream.next()
        server.signalled.append(signal.SIGTERM)
        server.popen.send_signal(signal.SIGTERM)
        rest = await stream.rest(timeout=20)
    code = await asyncio.to_thread(server.popen.wait, 20)
    assert first.job["status"] == "queued"
    assert rest == []
    assert any("shutting down" in comment for comment in stream.comments), stream.comments
    processes.check(code == 0, f"offload serve exited with {code}")
