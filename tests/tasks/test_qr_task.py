"""The QR task through a real worker: it enforces the worker's limits and fences its file."""

from __future__ import annotations

import time

import httpx
import pytest

from brokers.factory import Backend
from brokers.lifecycle import AttemptSuperseded
from schemas.jobs import JobStatus
from service.submission import submit_job
from tasks.deps import JobAttempt
from tasks.qr import render_qr_job
from tests.support.jobs import store_job, taken_over_job, wait_for_job


async def test_a_job_queued_past_the_pixel_limit_fails_instead_of_rendering(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    """Queued without the API's check (an older limit, another client): the worker refuses."""
    request = {"data": "x" * 500, "format": "png", "scale": 50, "border": 20}
    record = await submit_job(
        any_backend, render_qr_job, tenant="local", kind="qr", request=request
    )
    job = await wait_for_job(client, record.id)
    assert job["status"] == "failed"
    assert job["error"]["type"] == "validation_error"
    assert "pixels" in job["error"]["message"]
    assert job["result"] is None


async def test_the_result_file_is_named_for_its_attempt(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "fenced", "format": "svg"})
    job = await wait_for_job(client, response.json()["id"])
    [file] = job["result"]["files"]
    assert file["id"] == "qr-1" and file["name"] == "qr.svg"
    assert any_backend.files.path(job["id"], "qr-1") is not None


async def test_a_superseded_attempt_writes_no_file(any_backend: Backend) -> None:
    job_id, stalled, current = await taken_over_job(any_backend)
    late = JobAttempt(job_id=job_id, fence=stalled, is_job=True, backend=any_backend)
    with pytest.raises(AttemptSuperseded):
        await late.save_file("qr", "qr.png", b"stale", "image/png")
    assert any_backend.files.path(job_id, f"qr-{stalled}") is None
    lost = JobAttempt(job_id=job_id, fence=None, is_job=True, backend=any_backend)
    with pytest.raises(AttemptSuperseded):
        await lost.save_file("qr", "qr.png", b"unfenced", "image/png")
    holder = JobAttempt(job_id=job_id, fence=current, is_job=True, backend=any_backend)
    stored = await holder.save_file("qr", "qr.png", b"fresh", "image/png")
    assert stored.id == f"qr-{current}"
    path = any_backend.files.path(job_id, stored.id)
    assert path is not None and path.read_bytes() == b"fresh"


async def test_a_job_run_again_keeps_one_file(any_backend: Backend) -> None:
    record = await store_job(any_backend, status=JobStatus.QUEUED)
    first = (await any_backend.store.begin_attempt(record.id, time.time())).fence
    lost = JobAttempt(job_id=record.id, fence=first, is_job=True, backend=any_backend)
    await lost.save_file("qr", "qr.png", b"first run", "image/png")
    second = (await any_backend.store.begin_attempt(record.id, time.time())).fence
    again = JobAttempt(job_id=record.id, fence=second, is_job=True, backend=any_backend)
    stored = await again.save_file("qr", "qr.png", b"second run", "image/png")
    folder = any_backend.files.path(record.id, stored.id)
    assert folder is not None
    assert sorted(path.name for path in folder.parent.iterdir()) == [f"qr-{second}"]


async def test_a_scratch_file_is_kept_under_the_attempts_name_or_removed(
    any_backend: Backend,
) -> None:
    job_id, stalled, current = await taken_over_job(any_backend)
    late = JobAttempt(job_id=job_id, fence=stalled, is_job=True, backend=any_backend)
    async with late.scratch_file(".zip") as written:
        written.write_bytes(b"stale archive")
        with pytest.raises(AttemptSuperseded):
            await late.keep_file("archive", "codes.zip", written, "application/zip")
    assert not written.exists(), "a scratch file not kept is removed"
    holder = JobAttempt(job_id=job_id, fence=current, is_job=True, backend=any_backend)
    async with holder.scratch_file(".zip") as written:
        written.write_bytes(b"archive")
        stored = await holder.keep_file("archive", "codes.zip", written, "application/zip")
    assert (stored.id, stored.size) == (f"archive-{current}", 7)
    path = any_backend.files.path(job_id, stored.id)
    assert path is not None and path.read_bytes() == b"archive"
    assert sorted(entry.name for entry in path.parent.iterdir()) == [stored.id]
