"""``offload serve`` and a separate ``offload worker`` on one data directory, over real HTTP."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from tests.support.jobs import wait_for_job
from tests.support.processes import OFFLOAD_WORKER_READY, Processes, job_ids_in

pytestmark = pytest.mark.slow

BATCH = 21
"""Jobs submitted at a time; more batches follow only while the worker has run none."""
PICKUP_DEADLINE = 30.0
FORMATS = ("png", "svg", "pdf")
CONTENT_TYPES = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def decode_png(content: bytes) -> str:
    symbols = decode(Image.open(io.BytesIO(content)))
    assert len(symbols) == 1, f"expected one QR code in the PNG, found {len(symbols)}"
    return bytes(symbols[0].data).decode("utf-8")


async def submit_batch(http: httpx.AsyncClient, first: int) -> dict[str, dict[str, Any]]:
    submitted: dict[str, dict[str, Any]] = {}
    for number in range(first, first + BATCH):
        # ASCII only: QR byte mode carries no charset here, and zbar guesses one for short
        # non-ASCII payloads (e.g. it reads UTF-8 "ü" as Shift JIS).
        body = {
            "data": f"https://example.com/offload/{number}?check={number * 7919}",
            "format": FORMATS[number % len(FORMATS)],
        }
        response = await http.post("/v1/jobs/qr", json=body)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["status"] == "queued", job
        submitted[job["id"]] = body
    return submitted


async def check_result(http: httpx.AsyncClient, job_id: str, body: dict[str, Any]) -> None:
    job = await wait_for_job(http, job_id, timeout=30)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1, job
    download = await http.get(f"/v1/jobs/{job_id}/result")
    assert download.status_code == 200, download.text
    assert download.headers["content-type"].startswith(CONTENT_TYPES[body["format"]])
    if body["format"] == "png":
        assert decode_png(download.content) == body["data"]
    elif body["format"] == "svg":
        assert b"<svg" in download.content
    else:
        assert download.content.startswith(b"%PDF")


async def test_jobs_submitted_over_http_run_in_the_api_and_in_a_separate_worker(
    processes: Processes,
) -> None:
    worker = processes.offload_worker(wait=False)
    service = processes.serve(wait=False)
    processes.wait_healthy(service)
    processes.wait_for_log(worker, OFFLOAD_WORKER_READY)
    assert service.base_url is not None

    submitted: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + PICKUP_DEADLINE
    async with httpx.AsyncClient(base_url=service.base_url, timeout=10) as http:
        # The API process's embedded worker competes for every job: submit batches until the
        # separate worker has run at least one.
        while not job_ids_in(worker.log(), "running", submitted):
            processes.check(
                time.monotonic() < deadline,
                f"the separate worker ran none of {len(submitted)} jobs in {PICKUP_DEADLINE:g} s",
            )
            batch = await submit_batch(http, len(submitted))
            for job_id, body in batch.items():
                await check_result(http, job_id, body)
            submitted.update(batch)

    ran_in_worker = job_ids_in(worker.log(), "running", submitted)
    ran_in_service = job_ids_in(service.log(), "running", submitted)
    processes.check(
        ran_in_worker | ran_in_service == set(submitted) and not ran_in_worker & ran_in_service,
        "every job should have run exactly once, in one of the two processes: "
        f"worker ran {len(ran_in_worker)}, service ran {len(ran_in_service)} "
        f"of {len(submitted)}",
    )
    assert worker.alive() and service.alive()
