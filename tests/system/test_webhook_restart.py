"""A worker killed (kill -9) between two tries of a webhook: a new worker finishes it."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from schemas.jobs import JobOptions
from schemas.qr import QrOptions
from service import submission
from service.settings import Settings
from tasks.qr import QR as QR_KIND
from tests.support.processes import InProcessJobs, Processes
from tests.support.receiver import receiver

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
async def test_a_webhook_survives_its_worker_being_killed_between_tries(
    processes: Processes, request: pytest.FixtureRequest, engine: str
) -> None:
    processes.settings.update(
        OFFLOAD_WEBHOOK_ALLOW_PRIVATE="true",
        OFFLOAD_WEBHOOK_BACKOFF_BASE_SECONDS="2",
        OFFLOAD_WEBHOOK_BACKOFF_CAP_SECONDS="10",
        OFFLOAD_WEBHOOK_TIMEOUT_SECONDS="3",
    )
    settings = Settings(data_dir=processes.data_dir)
    if engine == "redis":
        server = request.getfixturevalue("redis_server")
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        processes.settings.update(OFFLOAD_BROKER_URL=server.url, OFFLOAD_REDIS_PREFIX=prefix)
        settings = Settings(broker_url=server.url, redis_prefix=prefix, data_dir=processes.data_dir)
    with receiver(statuses=[500, 500]) as hook:
        async with InProcessJobs(settings) as jobs:
            first = processes.offload_worker("worker-1")
            accepted = await submission.submit(
                jobs.backend,
                QR_KIND,
                tenant="local",
                request=QrOptions(data="survives", format="svg").model_dump(mode="json"),
                options=JobOptions(callback_url=hook.url),
            )
            job_id = accepted.job.id

            async def tries() -> int:
                webhook = (await jobs.get(job_id)).webhook
                return 0 if webhook is None else len(webhook.deliveries)

            deadline = time.monotonic() + 30
            while await tries() < 1:
                processes.check(time.monotonic() < deadline, "the first try was not recorded")
                await asyncio.sleep(0.02)
            # The first try failed (500) and is recorded with its next due time, 1-2 s away:
            # the worker dies between the two tries.
            processes.kill(first)
            assert len(hook.requests) == 1
            await asyncio.sleep(3.0)  # the next try falls due with no worker alive
            assert len(hook.requests) == 1

            second = processes.offload_worker("worker-2")
            deadline = time.monotonic() + 40
            while True:
                webhook = (await jobs.get(job_id)).webhook
                assert webhook is not None
                if webhook.state != "pending":
                    break
                processes.check(time.monotonic() < deadline, f"not delivered: {webhook}")
                await asyncio.sleep(0.05)
    assert webhook.state == "delivered", webhook
    assert [d.status_code for d in webhook.deliveries] == [500, 500, 200]
    assert len(hook.requests) == 3
    assert {r.headers["webhook-id"] for r in hook.requests} == {webhook.event_id}
    processes.check(f"webhook {webhook.event_id}" in second.log(), "worker-2 did not send it")
