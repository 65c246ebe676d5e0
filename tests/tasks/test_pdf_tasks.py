"""The PDF tasks enforce the worker's limits themselves: a job queued without the API's
submit check (an older limit, another client) fails with a typed error, not a crash."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from brokers.factory import Backend
from service.submission import submit_job
from tasks.pdf_kinds import extract_text_job, rotate_pdf_job, split_pdf_job
from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.pdfs import numbered_pdf


async def run_unchecked(
    client: httpx.AsyncClient, backend: Backend, task: Any, kind: str, request: dict[str, Any]
) -> dict[str, Any]:
    record = await submit_job(backend, task, tenant="local", kind=kind, request=request)
    return await wait_for_job(client, record.id, timeout=60)


async def test_pages_past_the_end_fail_as_pages_out_of_range(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    source = await upload(client, numbered_pdf(3))
    job = await run_unchecked(
        client,
        any_backend,
        rotate_pdf_job,
        "pdf_rotate",
        {"file_id": source["id"], "angle": 90, "pages": "2-5"},
    )
    assert (job["status"], job["error"]["type"]) == ("failed", "pages_out_of_range")
    assert job["error"]["message"] == "2-5 is past the end: the file has 3 pages"


async def test_more_pages_than_the_workers_limit_fail_as_too_many_pages(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await upload(client, numbered_pdf(4), "four.pdf")
    monkeypatch.setattr(any_backend.settings, "pdf_max_pages", 3)
    job = await run_unchecked(
        client, any_backend, extract_text_job, "pdf_extract_text", {"file_id": source["id"]}
    )
    assert (job["status"], job["error"]["type"]) == ("failed", "too_many_pages")
    assert job["error"]["message"] == "four.pdf has 4 pages; this server takes at most 3"


async def test_a_split_into_too_many_files_fails_as_too_many_parts(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    source = await upload(client, numbered_pdf(101))
    job = await run_unchecked(
        client,
        any_backend,
        split_pdf_job,
        "pdf_split",
        {"file_id": source["id"], "output": "pdfs"},
    )
    assert (job["status"], job["error"]["type"]) == ("failed", "too_many_parts")
    assert job["result"] is None


async def test_an_unknown_file_fails_as_input_missing(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job = await run_unchecked(
        client, any_backend, rotate_pdf_job, "pdf_rotate", {"file_id": "0" * 32, "angle": 90}
    )
    assert (job["status"], job["error"]["type"]) == ("failed", "input_missing")
