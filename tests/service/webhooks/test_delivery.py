"""Webhooks end to end on both backends: the API with its in-process worker, a real HTTP
receiver on loopback, and the job's ``webhook`` as ``GET /v1/jobs/{id}`` shows it."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.exceptions import RequestValidationError

from brokers.contract import JobRecord, new_job_id
from brokers.factory import Backend
from schemas.jobs import JobOptions, JobStatus
from schemas.qr import QrOptions
from service import submission
from service.app import create_app
from service.webhooks import dispatcher, sender
from service.webhooks.urls import check_callback_option
from tasks.qr import QR as QR_KIND
from tests.support.jobs import wait_for_job
from tests.support.receiver import Receiver, receiver

README = Path(__file__).resolve().parents[3] / "README.md"
FAST = {
    "webhook_backoff_base_seconds": 0.4,
    "webhook_backoff_cap_seconds": 10.0,
    "webhook_timeout_seconds": 3.0,
}

OpenApi = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def readme_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    """The receiver's check exactly as the README shows it, run from the README's own text."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- webhook-verify:[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "the README lost its webhook-verify block"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)
    verify: Callable[[str, dict[str, str], bytes], bool] = namespace["verify"]
    return verify


@pytest.fixture
def open_api(any_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> OpenApi:
    """The API and its in-process worker (and webhook sender) with webhook settings."""
    monkeypatch.setattr(dispatcher, "POLL_SECONDS", 0.02)

    @asynccontextmanager
    async def opened(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
        updated = any_backend.settings.model_copy(update={**FAST, **settings})
        monkeypatch.setattr(any_backend, "settings", updated)
        app = create_app(any_backend, embedded_worker=True)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as c:
                yield c

    return opened


async def submit(backend: Backend, url: str, **options: Any) -> str:
    """Submit a QR job with a callback the way the API will (the submit hook aside)."""
    accepted = await submission.submit(
        backend,
        QR_KIND,
        tenant="local",
        request=QrOptions(data="webhook test", format="svg").model_dump(mode="json"),
        options=JobOptions(callback_url=url, **options),
    )
    backend.wake_workers()
    return accepted.job.id


async def wait_for_webhook(
    client: httpx.AsyncClient, job_id: str, states: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job.get("webhook") and job["webhook"]["state"] in states:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"webhook of {job_id} did not reach {states}: {job}")


async def until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def refused_forms(hook: Receiver) -> list[str]:
    port = hook.port
    return [
        f"https://127.0.0.1:{port}/hook",
        f"https://localhost:{port}/hook",
        f"https://127.1:{port}/hook",
        f"https://0x7f000001:{port}/hook",
        f"https://2130706433:{port}/hook",
        f"https://127.0.0.1.:{port}/hook",
        f"https://[::ffff:127.0.0.1]:{port}/hook",
        f"http://127.0.0.1:{port}/hook",
    ]


async def test_callbacks_to_loopback_are_refused_and_the_listener_gets_nothing(
    any_backend: Backend, open_api: OpenApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return {"one.example": ["127.0.0.1"], "both.example": ["93.184.216.34", "10.0.0.7"]}[host]

    monkeypatch.setattr(sender, "resolve", resolver)
    with receiver() as hook:
        forms = refused_forms(hook)
        for url in forms:  # the submit hook refuses each without DNS
            with pytest.raises(RequestValidationError):
                check_callback_option(JobOptions(callback_url=url), allow_private=False)
        # Names that only DNS shows to be private pass the hook; the sender refuses them.
        by_dns = [f"https://one.example:{hook.port}/hook", f"https://both.example:{hook.port}/"]
        for url in by_dns:
            check_callback_option(JobOptions(callback_url=url), allow_private=False)
        async with open_api(webhook_allow_private=False) as client:
            # Jobs stored with such URLs anyway (a client that skipped the API, an older
            # Offload): the sender checks again and records the refusal, once.
            ids = [await submit(any_backend, url) for url in forms + by_dns]
            jobs = [await wait_for_webhook(client, job_id, {"failed"}) for job_id in ids]
            await asyncio.sleep(1.0)  # longer than the first retry's wait could be
            jobs = [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in ids]
        for job in jobs:
            assert job["status"] == "succeeded", job
            (only,) = job["webhook"]["deliveries"]
            assert only["status_code"] is None
            assert only["error"].startswith("refused"), only
            assert job["webhook"]["next_try_at"] is None
        assert "resolves to 127.0.0.1" in jobs[-2]["webhook"]["deliveries"][0]["error"]
        assert "resolves to 10.0.0.7" in jobs[-1]["webhook"]["deliveries"][0]["error"]
        assert hook.connections == 0


async def test_a_finished_job_is_delivered_once_signed_as_the_readme_verifies(
    any_backend: Backend, open_api: OpenApi
) -> None:
    verify = readme_verify()
    with receiver() as hook:
        async with open_api(webhook_allow_private=True) as client:
            job_id = await submit(any_backend, hook.url)
            job = await wait_for_webhook(client, job_id, {"delivered", "failed"})
            secret = (await client.get("/v1/webhooks/secret")).json()["secret"]
            assert (await client.get("/v1/webhooks/secret")).json()["secret"] == secret
            await asyncio.sleep(0.5)
    assert job["status"] == "succeeded"
    assert job["webhook"]["state"] == "delivered", job["webhook"]
    (delivery,) = job["webhook"]["deliveries"]
    assert delivery["status_code"] == 200 and delivery["error"] is None
    (request,) = hook.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == job["webhook"]["event_id"]
    assert secret.startswith("whsec_")
    assert verify(secret, request.headers, request.body)
    assert not verify(secret, request.headers, request.body.replace(b"succeeded", b"failed"))
    other = "whsec_" + "A" * 43 + "="
    assert not verify(other, request.headers, request.body)
    sent = json.loads(request.body)
    # The job as it was when sent; recording the try made a newer version of it since.
    assert sent["version"] < job["version"]
    assert {key: value for key, value in sent.items() if key != "version"} == {
        key: value for key, value in job.items() if key not in {"webhook", "version"}
    }


async def test_every_way_a_job_ends_sends_its_webhook(
    any_backend: Backend, open_api: OpenApi
) -> None:
    with receiver() as hook:
        async with open_api(webhook_allow_private=True) as client:
            ran = await submit(any_backend, hook.url)
            waiting = await submit(any_backend, hook.url, delay_s=600)
            cancel = await client.post(f"/v1/jobs/{waiting}/cancel")
            assert cancel.status_code == 200, cancel.text
            now = time.time()
            lost = JobRecord(
                id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
                expires_at=now + 3600, max_attempts=3, callback_url=hook.url,
            )  # fmt: skip
            await any_backend.store.create(lost)  # no message: the sweeper fails it
            assert (await any_backend.store.sweep(time.time())).failed == [lost.id]
            for job_id in (ran, waiting, lost.id):
                await wait_for_webhook(client, job_id, {"delivered"})
            await wait_for_job(client, ran)
    sent = {json.loads(r.body)["id"]: json.loads(r.body) for r in hook.requests}
    assert len(hook.requests) == 3
    assert sent[ran]["status"] == "succeeded"
    assert sent[waiting]["status"] == "cancelled"
    assert sent[lost.id]["status"] == "failed"
    assert sent[lost.id]["error"]["type"] == "worker_lost"
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 3


async def test_failed_tries_are_retried_with_growing_gaps_until_one_succeeds(
    any_backend: Backend, open_api: OpenApi
) -> None:
    verify = readme_verify()
    with receiver(statuses=[500, 500, 500]) as hook:
        async with open_api(webhook_allow_private=True, webhook_max_tries=8) as client:
            job_id = await submit(any_backend, hook.url)
            job = await wait_for_webhook(client, job_id, {"delivered", "failed"}, timeout=30)
            secret = (await client.get("/v1/webhooks/secret")).json()["secret"]
    webhook = job["webhook"]
    assert webhook["state"] == "delivered"
    assert [d["status_code"] for d in webhook["deliveries"]] == [500, 500, 500, 200]
    assert webhook["deliveries"][0]["error"] == "the receiver answered 500"
    assert len(hook.requests) == 4
    assert {r.headers["webhook-id"] for r in hook.requests} == {webhook["event_id"]}
    assert all(verify(secret, r.headers, r.body) for r in hook.requests)
    arrivals = [r.at for r in hook.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    # The wait after try n is within [c/2, c] for c = 0.4 * 2^(n-1), plus up to a second of
    # delivery latency. So it grows: the third wait's floor (0.8 s) is above the first's
    # ceiling (0.4 s); comparing two measured gaps would count that latency as backoff.
    for number, gap in enumerate(gaps, start=1):
        ceiling = 0.4 * 2 ** (number - 1)
        assert ceiling / 2 <= gap <= ceiling + 1.0, gaps


async def test_tries_stop_at_the_limit_and_redirects_are_not_followed(
    any_backend: Backend, open_api: OpenApi
) -> None:
    with receiver() as elsewhere, receiver(statuses=[302] * 10, location=elsewhere.url) as hook:
        async with open_api(webhook_allow_private=True, webhook_max_tries=3) as client:
            job_id = await submit(any_backend, hook.url)
            job = await wait_for_webhook(client, job_id, {"failed", "delivered"}, timeout=30)
            await asyncio.sleep(1.0)
            job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["webhook"]["state"] == "failed"
    assert [d["status_code"] for d in job["webhook"]["deliveries"]] == [302, 302, 302]
    assert len(hook.requests) == 3
    assert elsewhere.connections == 0


async def test_deleting_a_job_stops_its_deliveries(any_backend: Backend, open_api: OpenApi) -> None:
    with receiver(statuses=[500] * 100) as hook:
        async with open_api(webhook_allow_private=True, webhook_backoff_base_seconds=0.2) as client:
            job_id = await submit(any_backend, hook.url)
            await wait_for_job(client, job_id)
            await until(lambda: len(hook.requests) >= 2)
            deleted = await client.delete(f"/v1/jobs/{job_id}")
            assert deleted.status_code == 204, deleted.text
            await asyncio.sleep(0.3)  # a try already under way may still arrive
            seen = len(hook.requests)
            await asyncio.sleep(2.0)  # several retry waits (0.2, 0.4, 0.8 s ceilings)
            assert len(hook.requests) == seen
            assert any_backend.webhooks is not None
            later = time.time() + 10**6
            assert await any_backend.webhooks.claim(later, 10, later) == []
    assert seen >= 2


async def test_a_job_that_expires_stops_its_deliveries(
    any_backend: Backend, open_api: OpenApi
) -> None:
    with receiver(statuses=[500] * 100) as hook:
        async with open_api(webhook_allow_private=True, webhook_backoff_base_seconds=0.2):
            now = time.time()
            job = JobRecord(
                id=new_job_id(now), tenant="local", kind="qr", request={}, created_at=now,
                expires_at=now + 1.0, max_attempts=1, callback_url=hook.url,
            )  # fmt: skip
            await any_backend.store.create(job)
            await any_backend.store.sweep(time.time())
            found: JobRecord | None = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # the API answers 410 once it expired
                found = await any_backend.store.get(job.id)
                assert found is not None
                if found.webhook is not None and found.webhook.state == "failed":
                    break
                await asyncio.sleep(0.05)
            seen = len(hook.requests)
            await asyncio.sleep(1.0)
    assert found is not None and found.webhook is not None, found
    assert found.webhook.state == "failed", found.webhook
    assert found.webhook.next_try_at is None
    assert found.status is JobStatus.FAILED
    assert 1 <= seen == len(hook.requests)
