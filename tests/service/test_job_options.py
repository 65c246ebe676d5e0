"""Job options in the submit body (lane, run_at/delay_s, max_attempts, timeout_s,
callback_url), through the API on both backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from brokers.factory import Backend
from brokers.lifecycle import JOB_KIND_LABEL
from service.app import create_app
from tasks.qr import QR
from tests.support.jobs import stored_labels, wait_for_job

PROBLEM = "application/problem+json"
HOOK = "https://hooks.example.com/offload?id=7"


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def submit(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/jobs/qr", json={"data": "options", **body})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


@asynccontextmanager
async def api(backend: Backend, worker: bool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backend, embedded_worker=worker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield http


@pytest.fixture
async def idle(any_backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no worker: what a submit stored, with nothing started since. (On Redis a
    delayed job is not yet held back; that is the due-times work's, not tested here.)"""
    async with api(any_backend, worker=False) as http:
        yield http


@pytest.fixture
async def sqlite_client(embedded_backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    async with api(embedded_backend, worker=True) as http:
        yield http


async def test_options_are_stored_and_shown_on_the_job(
    idle: httpx.AsyncClient, any_backend: Backend
) -> None:
    run_at = later(3600)
    job = await submit(
        idle, lane="bulk", run_at=run_at, timeout_s=7.5, max_attempts=5, callback_url=HOOK
    )
    shown = (await idle.get(f"/v1/jobs/{job['id']}")).json()
    for seen in (job, shown):
        assert seen["status"] == "queued"
        assert seen["lane"] == "bulk"
        assert instant(seen["run_at"]) == pytest.approx(instant(run_at), abs=0.001)
        assert seen["timeout_s"] == 7.5
        assert seen["max_attempts"] == 5
        assert seen["callback_url"] == HOOK
    record = await any_backend.store.get(job["id"])
    assert record is not None
    assert (record.lane, record.timeout_s, record.max_attempts) == ("bulk", 7.5, 5)
    assert record.callback_url == HOOK
    assert record.due_at == pytest.approx(instant(run_at), abs=0.001)
    assert record.request == {
        "data": "options", "format": "png", "error_correction": "M", "scale": 10, "border": 4,
        "dark": "#000000", "light": "#FFFFFF",
    }, "the task gets its own fields only"  # fmt: skip


async def test_unset_options_take_the_kinds_defaults(client: httpx.AsyncClient) -> None:
    job = await wait_for_job(client, (await submit(client))["id"])
    assert job["status"] == "succeeded"
    assert job["lane"] == QR.lane.value
    assert job["max_attempts"] == QR.max_attempts
    assert job["timeout_s"] == QR.timeout_s
    assert job["run_at"] is None and job["callback_url"] is None


async def test_the_message_labels_carry_lane_delay_timeout_and_backoff(
    idle: httpx.AsyncClient, any_backend: Backend
) -> None:
    chosen = await submit(idle, lane="bulk", delay_s=600, timeout_s=12)
    labels = await stored_labels(any_backend, chosen["id"])
    assert labels[JOB_KIND_LABEL] == "qr"
    assert labels["lane"] == "bulk"
    assert 590 < labels["delay"] <= 600
    assert labels["timeout"] == 12.0
    assert labels["offload_backoff_base_s"] == QR.backoff.base_s
    assert labels["offload_backoff_cap_s"] == QR.backoff.cap_s

    defaults = await submit(idle)
    labels = await stored_labels(any_backend, defaults["id"])
    assert labels["timeout"] == QR.timeout_s and labels["lane"] == QR.lane.value
    assert "delay" not in labels


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"run_at": later(3600), "delay_s": 5}, "delay_s"),
        ({"delay_s": -1}, "delay_s"),
        ({"delay_s": "soon"}, "delay_s"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 26}, "max_attempts"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"run_at": "tomorrow"}, "run_at"),
        ({"run_at": later(3600)[:-1]}, "run_at"),  # no time zone
        ({"run_at": 1893456000}, "run_at"),
        ({"run_at": "2999-01-01T00:00:00Z"}, "run_at"),  # past the 30-day bound
        ({"lane": "fast"}, "lane"),
        ({"callback_url": "ftp://example.com/hook"}, "callback_url"),
        ({"callback_url": "/hooks/offload"}, "callback_url"),
        ({"callback_url": "https://"}, "callback_url"),
        ({"callback_url": "https://exa mple.com/"}, "callback_url"),
        ({"callback_url": "https://example.com:99999/"}, "callback_url"),
        ({"callback_url": "https://example.com/" + "a" * 2048}, "callback_url"),
        # The webhook sender's rules that need no DNS lookup apply at submit too.
        ({"callback_url": "http://hooks.example.com/offload"}, "callback_url"),
        ({"callback_url": "https://127.0.0.1/hook"}, "callback_url"),
        ({"callback_url": "https://[::ffff:10.0.0.1]/hook"}, "callback_url"),
        ({"callback_url": "https://user:secret@hooks.example.com/"}, "callback_url"),
        ({"callback_url": "https://localhost/hook"}, "callback_url"),
        ({"priority": 1}, "priority"),
    ],
)
async def test_bad_options_are_a_422_naming_the_field(
    client: httpx.AsyncClient, options: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "x", **options})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert field in [error["field"] for error in response.json()["errors"]]
    assert (await client.get("/v1/jobs")).json()["items"] == [], "nothing was stored"


async def test_a_plain_http_callback_url_is_accepted_where_private_addresses_are(
    any_backend: Backend,
) -> None:
    """OFFLOAD_WEBHOOK_ALLOW_PRIVATE (local setups, tests) lifts the address and https rules."""
    any_backend.settings.webhook_allow_private = True
    try:
        app = create_app(any_backend, embedded_worker=False)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                job = await submit(http, callback_url="http://localhost:8080/hook")
    finally:
        any_backend.settings.webhook_allow_private = False
    assert job["callback_url"] == "http://localhost:8080/hook"


async def test_a_delayed_job_is_queued_with_its_run_at_and_can_be_cancelled(
    idle: httpx.AsyncClient,
) -> None:
    before = time.time()
    job = await submit(idle, delay_s=600)
    assert job["status"] == "queued"
    assert before + 600 <= instant(job["run_at"]) <= time.time() + 600
    cancelled = await idle.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["started_at"] is None


async def test_options_are_part_of_the_idempotency_fingerprint(idle: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": "options-1"}
    body = {"data": "same", "delay_s": 600}
    first = await idle.post("/v1/jobs/qr", json=body, headers=key)
    assert first.status_code == 202
    again = await idle.post("/v1/jobs/qr", json=body, headers=key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other_lane = await idle.post("/v1/jobs/qr", json={**body, "lane": "bulk"}, headers=key)
    assert other_lane.status_code == 409


async def test_a_delayed_job_does_not_start_before_its_run_at_on_sqlite(
    sqlite_client: httpx.AsyncClient,
) -> None:
    """On Redis, due times are the retries work's (a scheduled set); here the queue has them."""
    job = await submit(sqlite_client, delay_s=1.5)
    assert job["status"] == "queued" and job["run_at"] is not None
    done = await wait_for_job(sqlite_client, job["id"], timeout=15)
    assert done["status"] == "succeeded", done
    assert instant(done["started_at"]) >= instant(job["run_at"])
