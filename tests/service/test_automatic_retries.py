"""Automatic retries with exponential backoff, seen through the HTTP API, on both backends.

A retryable failure with attempts left makes the job ``retrying`` with ``next_attempt_at``;
its message is queued again for that time (the backends' own due times, no TaskiQ retry
middleware), and every attempt's error is kept in ``attempt_errors``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from brokers.lifecycle import JobFailure, JobLifecycleMiddleware
from brokers.retries import BACKOFF_BASE_LABEL, BACKOFF_CAP_LABEL
from schemas.jobs import JobOptions
from service.submission import submit
from tasks.qr import QR as QR_KIND
from tests.support.jobs import wait_for_job

BASE = 0.2
CAP = 0.5


class Flaky(JobFailure):
    error_type = "flaky"
    retryable = True


starts: dict[str, list[float]] = {}
"""Job key -> when each run of it started."""


def _started(request: dict[str, Any]) -> int:
    runs = starts.setdefault(request["key"], [])
    runs.append(time.time())
    return len(runs)


@broker.task(
    task_name="tests.retries.flaky",
    **{BACKOFF_BASE_LABEL: BASE, BACKOFF_CAP_LABEL: CAP},
)
async def flaky(request: dict[str, Any]) -> dict[str, Any]:
    """Fails retryably on its first ``fail`` runs, then succeeds."""
    run = _started(request)
    if run <= request["fail"]:
        raise Flaky(f"run {run} fails")
    return {"data": {"run": run}, "files": []}


@broker.task(task_name="tests.retries.broken")
async def broken(request: dict[str, Any]) -> dict[str, Any]:
    _started(request)
    raise ValueError("bad input: nothing to retry")


class Ceiling(random.Random):
    """Jitter pinned to its upper bound, so each wait is exactly the backoff's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def ceiling(any_backend: Backend) -> Iterator[None]:
    middleware = next(
        m for m in any_backend.broker.middlewares if isinstance(m, JobLifecycleMiddleware)
    )
    before, middleware.rng = middleware.rng, Ceiling()
    yield
    middleware.rng = before


async def submit_flaky(
    backend: Backend, fail: int, *, task: Any = flaky, max_attempts: int | None = None
) -> tuple[str, str]:
    key = new_job_id()
    accepted = await submit(
        backend,
        QR_KIND,
        tenant="local",
        task=task,
        request={"key": key, "fail": fail},
        options=JobOptions(max_attempts=max_attempts),
    )
    return accepted.job.id, key


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def bound(attempt: int, base: float = BASE, cap: float = CAP) -> float:
    return float(min(cap, base * 2 ** (attempt - 1)))


async def test_a_job_failing_retryably_twice_then_succeeding_shows_retrying_between(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id, key = await submit_flaky(any_backend, fail=2)
    waiting = await wait_for_job(client, job_id, {"retrying"})
    assert waiting["next_attempt_at"] is not None
    assert waiting["error"]["type"] == "flaky"
    assert [e["attempt"] for e in waiting["attempt_errors"]] == [1]

    job = await wait_for_job(client, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 3 and job["error"] is None and job["next_attempt_at"] is None
    errors = job["attempt_errors"]
    assert [(e["attempt"], e["type"], e["retryable"]) for e in errors] == [
        (1, "flaky", True),
        (2, "flaky", True),
    ]
    # Each wait is drawn from [0, min(cap, base * 2 ** (attempt - 1))], and the next run
    # starts no earlier than it was due.
    runs = starts[key]
    for error in errors:
        failed_at, due = seconds(error["at"]), seconds(error["retry_at"])
        assert 0 <= due - failed_at <= bound(error["attempt"]) + 1e-3, error
        assert runs[error["attempt"]] >= due - 1e-3, "an attempt started before it was due"


async def test_the_waits_between_attempts_double_up_to_the_cap(
    client: httpx.AsyncClient, any_backend: Backend, ceiling: None
) -> None:
    job_id, key = await submit_flaky(any_backend, fail=9, max_attempts=5)
    job = await wait_for_job(client, job_id)
    assert job["status"] == "failed" and job["attempts"] == 5
    errors = job["attempt_errors"]
    waits = [seconds(e["retry_at"]) - seconds(e["at"]) for e in errors[:-1]]
    assert waits == pytest.approx([0.2, 0.4, 0.5, 0.5], abs=2e-3)
    assert errors[-1]["retry_at"] is None, "the last attempt has no next one"
    runs = starts[key]
    gaps = [later - earlier for earlier, later in itertools.pairwise(runs)]
    # Not compared with each other: pickup adds up to a promotion interval to each gap.
    assert all(gap >= wait - 1e-3 for gap, wait in zip(gaps, waits, strict=True)), gaps


async def test_a_non_retryable_error_fails_at_once(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id, key = await submit_flaky(any_backend, fail=0, task=broken)
    job = await wait_for_job(client, job_id)
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["type"] == "value_error" and not job["error"]["retryable"]
    assert [(e["attempt"], e["type"]) for e in job["attempt_errors"]] == [(1, "value_error")]
    assert len(starts[key]) == 1


async def test_a_job_that_spends_its_attempts_fails_keeping_every_error(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    """max_attempts is the job's own (2 here, the default being 3)."""
    job_id, key = await submit_flaky(any_backend, fail=9, max_attempts=2)
    job = await wait_for_job(client, job_id)
    assert job["status"] == "failed" and job["attempts"] == 2 and job["max_attempts"] == 2
    assert [e["attempt"] for e in job["attempt_errors"]] == [1, 2]
    assert job["error"]["type"] == "flaky"
    assert len(starts[key]) == 2
    listed = (await client.get("/v1/jobs", params={"status": "failed"})).json()["items"]
    mine = [item for item in listed if item["id"] == job_id]
    assert mine and mine[0]["error"]["type"] == "flaky" and len(mine[0]["attempt_errors"]) == 2


async def test_a_job_cancelled_while_retrying_never_starts_again(
    client: httpx.AsyncClient, any_backend: Backend, ceiling: None
) -> None:
    job_id, key = await submit_flaky(any_backend, fail=9)
    await wait_for_job(client, job_id, {"retrying"})
    response = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    await asyncio.sleep(BASE + 0.5)  # past the due time, and a promotion or two
    marker = (await client.post("/v1/jobs/qr", json={"data": "after"})).json()["id"]
    await wait_for_job(client, marker)
    job = (await client.get(f"/v1/jobs/{job_id}")).json()
    assert job["status"] == "cancelled" and job["attempts"] == 1
    assert len(starts[key]) == 1, "the cancelled job started again"


async def test_a_manual_retry_of_a_job_failed_after_retries_keeps_its_errors(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job_id, key = await submit_flaky(any_backend, fail=2, max_attempts=2)
    failed = await wait_for_job(client, job_id)
    assert failed["status"] == "failed" and len(failed["attempt_errors"]) == 2
    response = await client.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 202, response.text
    assert len(response.json()["attempt_errors"]) == 2
    job = await wait_for_job(client, job_id)
    assert job["status"] == "succeeded" and job["attempts"] == 3
    assert [e["attempt"] for e in job["attempt_errors"]] == [1, 2]
    assert len(starts[key]) == 3
