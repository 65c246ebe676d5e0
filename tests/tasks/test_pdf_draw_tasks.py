"""The watermark and stamp tasks queued without the API's submit check (another client, an
older server): the worker refuses what the check would have, as typed failures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from brokers.factory import Backend
from service.submission import submit_job
from tasks.pdf_draw_kinds import stamp_qr_pdf_job, watermark_pdf_job
from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.pdfs import numbered_pdf


async def run_unchecked(
    client: httpx.AsyncClient, backend: Backend, task: Any, kind: str, request: dict[str, Any]
) -> dict[str, Any]:
    record = await submit_job(backend, task, tenant="local", kind=kind, request=request)
    return await wait_for_job(client, record.id, timeout=60)


@pytest.mark.parametrize(
    ("fields", "error_type"),
    [
        ({"data": "x" * 2000, "size": 40}, "qr_too_small"),
        ({"data": "ü" * 1500, "error_correction": "H"}, "qr_capacity"),
        ({"data": "ok", "pages": "5"}, "pages_out_of_range"),
    ],
)
async def test_an_unchecked_stamp_fails_typed(
    client: httpx.AsyncClient, any_backend: Backend, fields: dict[str, Any], error_type: str
) -> None:
    source = await upload(client, numbered_pdf(2))
    request = {"file_id": source["id"], **fields}
    job = await run_unchecked(client, any_backend, stamp_qr_pdf_job, "pdf_stamp_qr", request)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == error_type
    assert job["attempts"] == 1


async def test_an_unchecked_watermark_of_a_missing_file_fails_as_input_missing(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    request = {"file_id": "0" * 32, "text": "X"}
    job = await run_unchecked(client, any_backend, watermark_pdf_job, "pdf_watermark", request)
    assert (job["status"], job["error"]["type"]) == ("failed", "input_missing")
