"""Watermark and QR stamp through the API, on both backends, with the embedded worker: the
outputs judged by qpdf, poppler and zbar; bad input answered, then a good job runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.pdf_tools import decode_qr, pdf_text, qpdf_check, rasterise
from tests.support.pdfs import bomb_pdf, corrupt_pdf, encrypted_pdf, numbered_pdf, text_pdf
from tests.support.sample_pdfs import text_pdf as text_pdf_file

PROBLEM = "application/problem+json"
URL = "https://example.com/doc/42"


async def finished(
    client: httpx.AsyncClient, operation: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/pdf/{operation}", json=body)
    assert response.status_code == 202, response.text
    return await wait_for_job(client, response.json()["id"], timeout=60)


async def download(client: httpx.AsyncClient, job: dict[str, Any], path: Path) -> Path:
    [file] = job["result"]["files"]
    assert file["content_type"] == "application/pdf"
    response = await client.get(file["url"])
    assert response.status_code == 200, response.text
    await asyncio.to_thread(path.write_bytes, response.content)
    await asyncio.to_thread(qpdf_check, path)
    return path


def field_messages(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {error["field"]: error["message"] for error in response.json()["errors"]}


async def test_watermark_on_chosen_pages(client: httpx.AsyncClient, tmp_path: Path) -> None:
    source = await upload(client, text_pdf(["alpha", "beta", "gamma"]), "report.pdf")
    body = {"file_id": source["id"], "text": "CONFIDENTIAL ) \\ (", "pages": "1,3"}
    job = await finished(client, "watermark", body)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "pdf_watermark"
    assert job["result"]["data"] == {"pages_drawn": 2}
    assert job["progress"]["done"] == job["progress"]["total"] == 2
    out = await download(client, job, tmp_path / "out.pdf")
    for number, word in enumerate(["alpha", "beta", "gamma"], start=1):
        text = await asyncio.to_thread(pdf_text, out, number)
        assert word in text
        assert ("CONFIDENTIAL ) \\ (" in text) == (number != 2)


async def test_stamp_qr_decodes_on_every_page(client: httpx.AsyncClient, tmp_path: Path) -> None:
    source = await upload(client, numbered_pdf(3))
    body = {"file_id": source["id"], "data": URL, "position": "top-left", "size": 90}
    job = await finished(client, "stamp-qr", body)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "pdf_stamp_qr"
    out = await download(client, job, tmp_path / "stamped.pdf")
    for number in (1, 2, 3):
        image = await asyncio.to_thread(rasterise, out, tmp_path, number)
        assert decode_qr(image) == [URL]
        assert f"page {number}" in await asyncio.to_thread(pdf_text, out, number)


async def test_the_operations_are_in_the_api_description(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert paths["/v1/jobs/pdf/watermark"]["post"]["operationId"] == "create_pdf_watermark_job"
    assert paths["/v1/jobs/pdf/stamp-qr"]["post"]["operationId"] == "create_pdf_stamp_qr_job"


async def test_bad_requests_are_refused_at_submit_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    good = await upload(client, numbered_pdf(2))
    bad = await upload(client, corrupt_pdf(), "scan.pdf")
    png = await upload(client, b"\x89PNG\r\n\x1a\n" + bytes(64), "logo.png", "image/png")
    cases: list[tuple[str, dict[str, Any], str, int]] = [
        ("watermark", {"file_id": bad["id"], "text": "X"}, "file_id", 422),
        ("watermark", {"file_id": good["id"], "text": "X", "pages": "3"}, "pages", 422),
        ("watermark", {"file_id": "nope", "text": "X"}, "file_id", 422),
        ("watermark", {"file_id": good["id"], "text": "X", "opacity": 2}, "opacity", 422),
        ("stamp-qr", {"file_id": good["id"], "data": URL, "x": 10}, "y", 422),
        ("stamp-qr", {"file_id": good["id"], "data": "x" * 2000, "size": 40}, "size", 422),
        ("stamp-qr", {"file_id": png["id"], "data": URL}, "file_id", 415),
    ]
    for operation, body, field, status in cases:
        response = await client.post(f"/v1/jobs/pdf/{operation}", json=body)
        assert response.status_code == status, (body, response.text)
        if status == 422:
            assert field in field_messages(response), (body, response.text)
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_failures_are_typed_and_the_worker_runs_a_good_job_after(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    locked = await upload(client, encrypted_pdf(["secret"], "pw"), "locked.pdf")
    job = await finished(client, "watermark", {"file_id": locked["id"], "text": "X"})
    assert (job["status"], job["error"]["type"]) == ("failed", "encrypted_pdf")
    small = await upload(client, numbered_pdf(1))
    job = await finished(
        client, "stamp-qr", {"file_id": small["id"], "data": URL, "x": 590, "y": 5}
    )
    assert (job["status"], job["error"]["type"]) == ("failed", "stamp_outside_page"), job
    assert job["attempts"] == 1
    body = {"file_id": locked["id"], "text": "OPENED", "password": "pw"}
    job = await finished(client, "watermark", body)
    assert job["status"] == "succeeded", job
    out = await download(client, job, tmp_path / "opened.pdf")
    text = await asyncio.to_thread(pdf_text, out)
    assert "secret" in text and "OPENED" in text


async def test_a_running_stamp_is_cancelled_and_the_worker_goes_on(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    many = text_pdf_file(tmp_path / "many.pdf", 5000)
    source = await upload(client, many.read_bytes(), "many.pdf")
    response = await client.post(
        "/v1/jobs/pdf/stamp-qr", json={"file_id": source["id"], "data": URL}
    )
    job_id = response.json()["id"]
    await wait_for_job(client, job_id, {"running"}, timeout=60)
    cancelling = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelling.status_code == 202, cancelling.text
    assert cancelling.json()["cancel_requested"] is True
    job = await wait_for_job(client, job_id, timeout=60)
    assert job["status"] == "cancelled", job
    assert job["result"] is None
    small = await upload(client, numbered_pdf(1))
    job = await finished(client, "stamp-qr", {"file_id": small["id"], "data": URL})
    assert job["status"] == "succeeded", job


async def test_a_decompression_bomb_is_carried_through_never_inflated(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Drawing reads no content stream of the page, so a bomb's stream is copied as it is
    (still compressed) and the worker never holds it inflated; the next job runs."""
    bomb = await upload(client, bomb_pdf(), "bomb.pdf")
    job = await finished(client, "watermark", {"file_id": bomb["id"], "text": "X"})
    assert job["status"] == "succeeded", job
    [file] = job["result"]["files"]
    assert file["size"] < 1_000_000
    small = await upload(client, numbered_pdf(1))
    job = await finished(client, "stamp-qr", {"file_id": small["id"], "data": URL})
    assert job["status"] == "succeeded", job
