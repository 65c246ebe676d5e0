"""Progress reported by a running task, through a real worker and the API, on both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from brokers import broker
from brokers.contract import new_job_id
from brokers.factory import Backend
from brokers.lifecycle import AttemptSuperseded
from service.submission import submit_job
from tasks.deps import AttemptDep, JobAttempt
from tests.support.jobs import taken_over_job, wait_for_job

ITEMS = 10_000
proceed: dict[str, asyncio.Event] = {}


@broker.task(task_name="tests.progress.many_items")
async def many_items(request: dict[str, Any], attempt: AttemptDep) -> dict[str, Any]:
    for done in range(1, ITEMS + 1):
        await attempt.report(done, ITEMS)
    return {"data": {"items": ITEMS}, "files": []}


@broker.task(task_name="tests.progress.halfway")
async def halfway(request: dict[str, str], attempt: AttemptDep) -> dict[str, Any]:
    await attempt.report(5, 10, "half of the pages")
    await proceed[request["key"]].wait()
    await attempt.report(10, 10, "done")
    return {"data": {}, "files": []}


async def test_a_10000_item_job_writes_its_progress_a_few_times_and_keeps_the_last(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[int] = []
    real_set_progress = any_backend.store.set_progress

    async def counted(job_id: str, fence: int, progress: Any) -> bool:
        writes.append(progress.done)
        return await real_set_progress(job_id, fence, progress)

    monkeypatch.setattr(any_backend.store, "set_progress", counted)
    record = await submit_job(any_backend, many_items, tenant="local", kind="qr", request={})
    job = await wait_for_job(client, record.id)
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": ITEMS, "total": ITEMS, "message": None, "percent": 100.0}
    assert 2 <= len(writes) <= 20, f"{len(writes)} progress writes for {ITEMS} reports"
    assert writes[-1] == ITEMS


async def test_progress_shows_while_the_job_runs(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    key = new_job_id()
    proceed[key] = asyncio.Event()
    record = await submit_job(any_backend, halfway, tenant="local", kind="qr", request={"key": key})
    deadline = time.monotonic() + 20
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{record.id}")).json()
        if job["progress"] is not None:
            break
        await asyncio.sleep(0.02)
    assert job["status"] == "running"
    assert job["progress"] == {
        "done": 5, "total": 10, "message": "half of the pages", "percent": 50.0
    }  # fmt: skip
    proceed[key].set()
    done = await wait_for_job(client, record.id)
    assert done["progress"]["percent"] == 100.0 and done["progress"]["message"] == "done"


async def test_a_superseded_attempt_is_stopped_at_its_next_report(any_backend: Backend) -> None:
    job_id, stalled, current = await taken_over_job(any_backend)
    late = JobAttempt(job_id=job_id, fence=stalled, is_job=True, backend=any_backend)
    with pytest.raises(AttemptSuperseded):
        await late.report(1, 2)
    holder = JobAttempt(job_id=job_id, fence=current, is_job=True, backend=any_backend)
    await holder.report(1, 2)
    record = await any_backend.store.get(job_id)
    assert record is not None and record.progress is not None and record.progress.done == 1
