"""The jobs API through httpx against the app, with its in-process worker."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from brokers.contract import new_job_id
from brokers.factory import Backend
from schemas.jobs import JobStatus
from tests.support.jobs import store_job, wait_for_job

PROBLEM = "application/problem+json"


async def submit(client: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await client.post("/v1/jobs/qr", json={"data": "hello", **body})
    assert response.status_code == 202, response.text
    job: dict[str, object] = response.json()
    return job


async def test_submit_answers_202_with_the_job_and_its_location(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "https://example.com"})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "qr"
    assert job["tenant"] == "local"
    assert job["status"] in {"queued", "running", "succeeded"}
    assert job["max_attempts"] >= 1
    assert job["links"] == {
        "self": f"/v1/jobs/{job['id']}",
        "result": f"/v1/jobs/{job['id']}/result",
    }
    assert set(job) == {
        "id", "tenant", "kind", "status", "progress", "attempts", "max_attempts", "created_at",
        "started_at", "finished_at", "expires_at", "error", "cancel_requested", "result", "lane",
        "run_at", "timeout_s", "callback_url", "links", "attempt_errors", "next_attempt_at",
        "version", "webhook",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("png", "image/png"), ("svg", "image/svg+xml"), ("pdf", "application/pdf")],
)
async def test_finished_job_downloads_its_file(
    client: httpx.AsyncClient, fmt: str, content_type: str
) -> None:
    job = await submit(client, data="Grüße 你好", format=fmt)
    done = await wait_for_job(client, str(job["id"]))
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1
    assert done["started_at"] and done["finished_at"]
    [file] = done["result"]["files"]
    assert file["content_type"] == content_type
    download = await client.get(f"/v1/jobs/{job['id']}/result")
    assert download.status_code == 200
    assert download.headers["content-type"].startswith(content_type)
    assert f"qr.{fmt}" in download.headers["content-disposition"]
    assert download.headers["etag"] == f'"{file["sha256"]}"'
    assert len(download.content) == file["size"]
    if fmt == "png":
        [symbol] = decode(Image.open(io.BytesIO(download.content)))
        assert symbol.data.decode() == "Grüße 你好"


async def test_result_etag_revalidates_with_304(client: httpx.AsyncClient) -> None:
    job = await wait_for_job(client, str((await submit(client))["id"]))
    first = await client.get(f"/v1/jobs/{job['id']}/result")
    again = await client.get(
        f"/v1/jobs/{job['id']}/result", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


async def test_result_of_an_unfinished_job_is_a_409_problem(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    record = await store_job(any_backend, status=JobStatus.QUEUED)
    response = await client.get(f"/v1/jobs/{record.id}/result")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:offload:problem:result-not-ready"


async def test_unknown_job_is_a_404_problem(client: httpx.AsyncClient) -> None:
    missing = new_job_id()
    for path in (f"/v1/jobs/{missing}", f"/v1/jobs/{missing}/result"):
        response = await client.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "urn:offload:problem:job-not-found"
    assert (await client.delete(f"/v1/jobs/{missing}")).status_code == 404


async def test_malformed_job_id_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/jobs/not-a-job-id")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_wrong_method_on_the_submit_path_is_a_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/jobs/qr")).status_code == 405


async def test_delete_removes_a_finished_job_and_its_files(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job = await wait_for_job(client, str((await submit(client))["id"]))
    file_id = job["result"]["files"][0]["id"]
    assert any_backend.files.path(job["id"], file_id) is not None
    response = await client.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 204
    assert any_backend.files.path(job["id"], file_id) is None
    assert (await client.get(f"/v1/jobs/{job['id']}")).status_code == 404


async def test_delete_refuses_a_running_job_with_409(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    record = await store_job(any_backend, status=JobStatus.RUNNING)
    response = await client.delete(f"/v1/jobs/{record.id}")
    assert response.status_code == 409
    assert response.json()["type"] == "urn:offload:problem:job-not-finished"
    assert (await client.get(f"/v1/jobs/{record.id}")).status_code == 200


async def test_list_is_newest_first_and_pages_with_a_cursor(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    ids = [(await store_job(any_backend, status=JobStatus.SUCCEEDED)).id for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/jobs", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_list_filters_by_status_and_kind(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    failed = await store_job(any_backend, status=JobStatus.FAILED)
    await store_job(any_backend, status=JobStatus.SUCCEEDED)
    page = (await client.get("/v1/jobs", params={"status": "failed", "kind": "qr"})).json()
    assert [item["id"] for item in page["items"]] == [failed.id]
    assert (await client.get("/v1/jobs", params={"status": "queued"})).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "done"}, "status"),
        ({"kind": "fax"}, "kind"),
        ({"cursor": "zz"}, "cursor"),
    ],
)
async def test_list_rejects_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    response = await client.get("/v1/jobs", params=params)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "data"),
        ({"data": ""}, "data"),
        ({"data": 5}, "data"),
        ({"data": "x" * 3000, "error_correction": "H"}, "data"),
        ({"data": "x", "format": "gif"}, "format"),
        ({"data": "x", "error_correction": "Z"}, "error_correction"),
        ({"data": "x", "scale": 0}, "scale"),
        ({"data": "x", "scale": "big"}, "scale"),
        ({"data": "x", "border": -1}, "border"),
        ({"data": "x", "dark": "red"}, "dark"),
        ({"data": "x", "light": "#12345"}, "light"),
        ({"data": "x", "colour": "#000000"}, "colour"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/v1/jobs/qr", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:offload:problem:validation-error"
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]]
    assert (await client.get("/v1/jobs")).json()["items"] == [], "nothing was stored"


async def test_body_that_is_not_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs/qr", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


async def test_oversized_body_is_a_413_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "x" * 2_000_000})
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "urn:offload:problem:payload-too-large"


async def test_oversized_chunked_body_is_a_413_problem(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65536

    response = await client.post("/v1/jobs/qr", content=chunks())
    assert response.status_code == 413


async def test_many_concurrent_submissions_all_finish(client: httpx.AsyncClient) -> None:
    jobs = await asyncio.gather(*(submit(client, data=f"item {n}") for n in range(40)))
    done = await asyncio.gather(*(wait_for_job(client, str(job["id"])) for job in jobs))
    assert {job["status"] for job in done} == {"succeeded"}
    assert len({job["id"] for job in done}) == 40
