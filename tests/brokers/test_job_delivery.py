"""Every delivered job ends in a recorded state or goes back to the queue, on both backends.

TaskiQ's receiver acknowledges a message whose task it does not know, or cannot parse,
without calling any middleware; these tests drive the real embedded worker through the API
with such messages, with a task that cancels itself, and with a task's own timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from taskiq import BrokerMessage, InMemoryBroker
from taskiq.kicker import AsyncKicker

from brokers import broker
from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend, build_backend
from brokers.lifecycle import JOB_KIND_LABEL
from service.app import create_app
from service.settings import Settings
from service.submission import submit_job
from tests.conftest import redis_backend
from tests.support.jobs import wait_for_job

SHORT_LEASE = 1.5
"""Seconds: a message handed back on Redis is reclaimed after one lease."""

elsewhere = InMemoryBroker()
"""Tasks no worker in this process knows: what a newer deploy's API may submit."""


@elsewhere.task(task_name="tests.delivery.newer_kind")
async def newer_kind(request: dict[str, Any]) -> dict[str, Any]:
    return {"data": {"ran": True}, "files": []}


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A backend of each kind with a short lease, running every task the app defines."""
    if request.param == "sqlite":
        built = build_backend(Settings(data_dir=tmp_path, lease_seconds=SHORT_LEASE))
        built.adopt_tasks(broker)
        yield built
        return
    server = request.getfixturevalue("redis_server")
    built = redis_backend(server, tmp_path, lease_seconds=SHORT_LEASE)
    yield built
    await built.close()


@asynccontextmanager
async def serving(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backend, embedded_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http


async def test_a_job_no_live_worker_knows_fails_as_unknown_kind(backend: Backend) -> None:
    async with serving(backend) as client:
        record = await submit_job(backend, newer_kind, tenant="local", kind="qr", request={})
        job = await wait_for_job(client, record.id)
        assert job["status"] == "failed"
        assert job["error"]["type"] == "unknown_kind"
        assert "tests.delivery.newer_kind" in job["error"]["message"]
        after = await client.post("/v1/jobs/qr", json={"data": "the worker goes on"})
        assert (await wait_for_job(client, after.json()["id"]))["status"] == "succeeded"


async def test_a_job_another_live_worker_knows_is_handed_back_until_one_runs_it(
    backend: Backend,
) -> None:
    registry = backend.broker.registry  # type: ignore[attr-defined]

    async def newer_worker_heartbeat() -> None:
        while True:
            await registry.announce("newer-worker", ["tests.delivery.newer_kind"], time.time())
            await asyncio.sleep(SHORT_LEASE / 3)

    heartbeat = asyncio.create_task(newer_worker_heartbeat())
    async with serving(backend) as client:
        record = await submit_job(backend, newer_kind, tenant="local", kind="qr", request={})
        await asyncio.sleep(3 * SHORT_LEASE)
        waiting = (await client.get(f"/v1/jobs/{record.id}")).json()
        assert waiting["status"] == "queued", waiting
        assert waiting["attempts"] == 0
        # The newer worker arrives here: this worker learns the task.
        backend.broker.register_task(newer_kind.original_func, newer_kind.task_name)
        job = await wait_for_job(client, record.id, timeout=4 * SHORT_LEASE + 10)
    heartbeat.cancel()
    assert job["status"] == "succeeded" and job["result"]["data"] == {"ran": True}


async def test_an_unreadable_message_fails_its_job(backend: Backend) -> None:
    now = time.time()
    job_id = new_job_id(now)
    await backend.store.create(
        JobRecord(id=job_id, tenant="local", kind="qr", request={}, created_at=now,
                  expires_at=now + 60, max_attempts=3)
    )  # fmt: skip
    async with serving(backend) as client:
        await backend.broker.kick(
            BrokerMessage(task_id=job_id, task_name="?", message=b"{not json", labels={})
        )
        job = await wait_for_job(client, job_id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "invalid_message"


cancelled_once: set[str] = set()


@broker.task(task_name="tests.delivery.cancels_itself_once")
async def cancels_itself_once(request: dict[str, str]) -> dict[str, Any]:
    if request["key"] not in cancelled_once:
        cancelled_once.add(request["key"])
        raise asyncio.CancelledError
    return {"data": {"second": True}, "files": []}


async def test_a_job_cut_short_by_a_cancel_runs_again(backend: Backend) -> None:
    """It used to stay ``running`` for good: the message was acked with no outcome."""
    backend.adopt_tasks(broker)
    async with serving(backend) as client:
        record = await submit_job(
            backend,
            cancels_itself_once,
            tenant="local",
            kind="qr",
            request={"key": new_job_id()},
        )
        job = await wait_for_job(client, record.id, timeout=3 * SHORT_LEASE + 10)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 2, "the cut-short attempt counts"


@broker.task(task_name="tests.delivery.too_slow", timeout=0.3)
async def too_slow(request: dict[str, str]) -> dict[str, Any]:
    await asyncio.sleep(30)
    return {"data": {}, "files": []}


async def test_a_task_timeout_applies_to_api_jobs(backend: Backend) -> None:
    backend.adopt_tasks(broker)
    async with serving(backend) as client:
        record = await submit_job(backend, too_slow, tenant="local", kind="qr", request={})
        job = await wait_for_job(client, record.id, timeout=10)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "timeout" and job["error"]["retryable"]


def test_the_private_taskiq_name_submit_relies_on_still_builds_a_labelled_message() -> None:
    """service.submission builds the message with AsyncKicker._prepare_message (so the job and
    its message land in one transaction); a taskiq upgrade that drops it must fail here."""
    kicker: AsyncKicker[Any, Any] = (
        too_slow.kicker().with_task_id("0" * 32).with_labels(**{JOB_KIND_LABEL: "qr"})
    )
    message = kicker._prepare_message({"x": 1})
    assert message.task_id == "0" * 32
    assert message.task_name == "tests.delivery.too_slow"
    assert message.labels[JOB_KIND_LABEL] == "qr"
    assert float(message.labels["timeout"]) == 0.3
    assert message.args == [{"x": 1}]
