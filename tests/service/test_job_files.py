"""Every result file of a job downloads from its own url, ``/v1/jobs/{id}/files/{file_id}``,
with the headers, ETag and 304/404/409/410 rules of ``/result`` (which keeps the first)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from brokers import broker
from brokers.factory import Backend
from schemas.jobs import JobResult, JobStatus
from tasks.deps import AttemptDep
from tasks.kinds import declare_kind
from tests.support.jobs import store_job, wait_for_job


class PairRequest(BaseModel):
    """Two texts, stored as two result files."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"first": "a", "second": "b"}]}
    )

    first: str = Field(min_length=1, max_length=100)
    second: str = Field(min_length=1, max_length=100)


@broker.task(task_name="tests.job_files.pair")
async def write_pair(request: PairRequest, attempt: AttemptDep) -> dict[str, Any]:
    first = await attempt.save_file("first", "first.txt", request.first.encode(), "text/plain")
    second = await attempt.save_file(
        "second", "second <script>.svg", request.second.encode(), "image/svg+xml"
    )
    return JobResult(data={}, files=[first, second]).model_dump(mode="json")


PAIR = declare_kind(
    name="file_pair",
    request=PairRequest,
    task=write_pair,
    summary="Store two result files.",
    path="/v1/jobs/files/pair",
)


async def finished_pair(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/v1/jobs/files/pair", json={"first": "one", "second": "<svg/>"})
    assert response.status_code == 202, response.text
    done = await wait_for_job(client, response.json()["id"])
    assert done["status"] == "succeeded", done
    return done


async def test_each_result_file_downloads_from_its_url(client: httpx.AsyncClient) -> None:
    job = await finished_pair(client)
    first, second = job["result"]["files"]
    assert first["url"] == f"/v1/jobs/{job['id']}/files/{first['id']}"
    assert second["url"] == f"/v1/jobs/{job['id']}/files/{second['id']}"
    for file, content in [(first, b"one"), (second, b"<svg/>")]:
        download = await client.get(file["url"])
        assert download.status_code == 200, download.text
        assert download.content == content
        assert download.headers["content-type"].startswith(file["content_type"])
        assert download.headers["etag"] == f'"{hashlib.sha256(content).hexdigest()}"'
        assert download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-security-policy"] == "default-src 'none'; sandbox"
        assert download.headers["content-disposition"].startswith("attachment;")
        again = await client.get(file["url"], headers={"If-None-Match": download.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert "filename*=" in (await client.get(second["url"])).headers["content-disposition"]
    assert (await client.get(f"/v1/jobs/{job['id']}/result")).content == b"one"


async def test_a_file_the_result_does_not_name_is_a_404(client: httpx.AsyncClient) -> None:
    job = await finished_pair(client)
    for file_id in ["nope", "first", job["result"]["files"][0]["id"] + "x"]:
        response = await client.get(f"/v1/jobs/{job['id']}/files/{file_id}")
        assert response.status_code == 404, file_id
        assert response.json()["type"] == "urn:offload:problem:result-file-not-found"
    traversal = await client.get(f"/v1/jobs/{job['id']}/files/..%2F..%2Foffload.db")
    assert traversal.status_code == 404 and b"SQLite" not in traversal.content


async def test_the_result_rules_hold_for_every_file(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    queued = await store_job(any_backend, status=JobStatus.QUEUED)
    expired = await store_job(any_backend, status=JobStatus.SUCCEEDED, expired=True)
    for record, status_code, problem in [
        (queued, 409, "result-not-ready"),
        (expired, 410, "result-expired"),
    ]:
        response = await client.get(f"/v1/jobs/{record.id}/files/first")
        assert response.status_code == status_code
        assert response.json()["type"] == f"urn:offload:problem:{problem}"
    unknown = await client.get(f"/v1/jobs/{'0' * 32}/files/first")
    assert unknown.json()["type"] == "urn:offload:problem:job-not-found"
    malformed = await client.get("/v1/jobs/not-a-job/files/first")
    assert malformed.status_code == 404
    assert malformed.json()["type"] == "urn:offload:problem:invalid-job-id"


async def test_a_result_file_removed_from_disk_is_410(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job = await finished_pair(client)
    second = job["result"]["files"][1]
    path = any_backend.files.path(job["id"], second["id"])
    assert path is not None
    path.unlink()
    response = await client.get(second["url"])
    assert response.status_code == 410
    assert (await client.get(job["result"]["files"][0]["url"])).status_code == 200
