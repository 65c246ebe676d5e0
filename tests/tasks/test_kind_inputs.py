"""A kind that takes uploaded files declares them (``inputs``): the submit refuses a file
that is missing, someone else's, expired, empty (422) or of the wrong type (415) before
anything is queued; ``check_files`` looks inside off the event loop; the task reads its
inputs through ``attempt.input`` and fails as ``input_missing`` when one is gone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from brokers import backend, broker
from brokers.factory import Backend
from brokers.uploads import Upload
from service.app import create_app
from service.settings import Settings
from tasks.deps import AttemptDep
from tasks.kinds import FileInput, KindDeclarationError, declare_kind
from tests.support.files import upload
from tests.support.jobs import wait_for_job

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
TOO_BIG_FOR_CHECK = 4096
PDF_ONLY = frozenset({"application/pdf"})
IMAGES = frozenset({"image/png", "image/jpeg"})


class DocumentRequest(BaseModel):
    """PDFs to measure, and an optional logo."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"file_ids": ["0" * 32]}]}
    )

    file_ids: list[str] = Field(min_length=1, max_length=5)
    logo_file_id: str | None = None


def document_inputs(request: DocumentRequest) -> Iterator[FileInput]:
    for number, file_id in enumerate(request.file_ids):
        yield FileInput(field=f"file_ids.{number}", file_id=file_id, accept=PDF_ONLY)
    if request.logo_file_id is not None:
        yield FileInput(field="logo_file_id", file_id=request.logo_file_id, accept=IMAGES)


checked_on: list[str] = []


def not_too_big(request: DocumentRequest, settings: Settings, uploads: dict[str, Upload]) -> None:
    checked_on.append(threading.current_thread().name)
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # no loop here: the check runs in a worker thread
    assert set(uploads) == set(request.file_ids) | {request.logo_file_id} - {None}
    for number, file_id in enumerate(request.file_ids):
        if uploads[file_id].path.stat().st_size > TOO_BIG_FOR_CHECK:
            raise ValidationError.from_exception_data(
                "DocumentRequest",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("too_big", "has too many pages"),
                        loc=("file_ids", number),
                        input=file_id,
                    )
                ],
            )


@broker.task(task_name="tests.kinds.measure_documents")
async def measure_documents(request: DocumentRequest, attempt: AttemptDep) -> dict[str, Any]:
    sizes = []
    for file_id in request.file_ids:
        upload = await attempt.input(file_id)
        sizes.append(len(await asyncio.to_thread(upload.path.read_bytes)))
    return {"data": {"sizes": sizes}, "files": []}


DOCUMENTS = declare_kind(
    name="measure_documents",
    request=DocumentRequest,
    task=measure_documents,
    summary="Measure uploaded PDFs.",
    path="/v1/jobs/documents/measure",
    inputs=document_inputs,
    check_files=not_too_big,
)


async def stored(
    backend: Backend, content: bytes, *, tenant: str = "local", ttl: float = 3600
) -> Upload:
    async def chunks() -> AsyncIterator[bytes]:
        yield content

    return await backend.uploads.save(tenant, "in.pdf", chunks(), 1 << 20, ttl)


async def submit(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/v1/jobs/documents/measure", json=body)


async def no_jobs(client: httpx.AsyncClient) -> bool:
    items: list[object] = (await client.get("/v1/jobs")).json()["items"]
    return items == []


async def test_a_job_reads_its_uploaded_inputs(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    first = await upload(client, PDF)  # through POST /v1/files, as a client does
    second = await stored(any_backend, PDF + b"%more")
    logo = await stored(any_backend, PNG)
    response = await submit(client, file_ids=[first["id"], second.id], logo_file_id=logo.id)
    assert response.status_code == 202, response.text
    done = await wait_for_job(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["data"] == {"sizes": [len(PDF), len(PDF) + 5]}
    assert checked_on and checked_on[-1] != threading.main_thread().name


async def test_a_missing_file_is_a_422_naming_its_field(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    good = await stored(any_backend, PDF)
    theirs = await stored(any_backend, PDF, tenant="acme")
    expired = await stored(any_backend, PDF, ttl=0.001)
    empty = await stored(any_backend, b"")
    await asyncio.sleep(0.01)
    for file_ids, field in [
        ([good.id, "f" * 32], "file_ids.1"),
        ([theirs.id], "file_ids.0"),
        ([good.id, good.id, expired.id], "file_ids.2"),
        ([empty.id], "file_ids.0"),
        (["../../etc/passwd"], "file_ids.0"),
    ]:
        response = await submit(client, file_ids=file_ids)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [error["field"] for error in response.json()["errors"]] == [field]
    missing_logo = await submit(client, file_ids=[good.id], logo_file_id="0" * 32)
    assert [error["field"] for error in missing_logo.json()["errors"]] == ["logo_file_id"]
    assert await no_jobs(client)


async def test_a_file_that_expires_before_a_later_job_starts_is_a_422(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    soon = await stored(any_backend, PDF, ttl=60)
    late = await submit(client, file_ids=[soon.id], delay_s=120)
    assert late.status_code == 422, late.text
    [error] = late.json()["errors"]
    assert error["field"] == "file_ids.0" and "before the job may start" in error["message"]
    assert (await submit(client, file_ids=[soon.id], delay_s=30)).status_code == 202


async def test_a_file_of_the_wrong_type_is_a_415_naming_it(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    pdf, png = await stored(any_backend, PDF), await stored(any_backend, PNG)
    html = await stored(any_backend, b"<html><body>not a pdf</body></html>")
    response = await submit(client, file_ids=[pdf.id, html.id], logo_file_id=pdf.id)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:offload:problem:unsupported-file-type"
    assert [error["field"] for error in problem["errors"]] == ["file_ids.1", "logo_file_id"]
    assert html.id in problem["detail"] and "text/plain" in problem["detail"]
    assert pdf.id in problem["errors"][1]["message"]
    swapped = await submit(client, file_ids=[png.id])
    assert swapped.status_code == 415 and swapped.json()["errors"][0]["field"] == "file_ids.0"
    assert await no_jobs(client)


async def test_check_files_refusal_is_a_422_naming_the_field(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    small = await stored(any_backend, PDF)
    big = await stored(any_backend, PDF + b"0" * TOO_BIG_FOR_CHECK)
    response = await submit(client, file_ids=[small.id, big.id])
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": "file_ids.1", "message": "has too many pages"}]
    assert await no_jobs(client)


async def test_an_input_gone_before_the_job_runs_fails_it_as_input_missing(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    upload = await stored(any_backend, PDF)
    response = await submit(client, file_ids=[upload.id], delay_s=0.3)
    assert response.status_code == 202, response.text
    assert any_backend.uploads.delete("local", upload.id)
    failed = await wait_for_job(client, response.json()["id"])
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "input_missing" and not failed["error"]["retryable"]
    assert upload.id in failed["error"]["message"]
    assert failed["attempts"] == 1


def test_kinds_with_inputs_document_the_415() -> None:
    paths = create_app(backend, embedded_worker=False).openapi()["paths"]
    documents = paths["/v1/jobs/documents/measure"]["post"]["responses"]
    assert "422" in documents
    assert documents["415"]["content"]["application/problem+json"]
    assert "(unsupported-file-type)" in documents["415"]["description"]
    assert "(unsupported-media-type)" in documents["415"]["description"]
    qr = paths["/v1/jobs/qr"]["post"]["responses"]
    assert "(unsupported-file-type)" not in qr["415"]["description"]


@broker.task(task_name="tests.kinds.unused_inputs")
async def unused_inputs(request: DocumentRequest) -> None:
    return None


def test_check_files_without_inputs_is_refused() -> None:
    with pytest.raises(KindDeclarationError, match="check_files needs inputs"):
        declare_kind(
            name="unused_inputs",
            request=DocumentRequest,
            task=unused_inputs,
            summary="Never declared.",
            check_files=not_too_big,
        )
