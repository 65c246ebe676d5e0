"""HTTP semantics the API promises beyond single routes: methods, media types, ids, expiry."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from brokers.contract import new_job_id
from brokers.factory import Backend
from schemas.jobs import JobStatus
from tests.support.jobs import store_job, wait_for_job

PROBLEM = "application/problem+json"
JOB_ID = "0123456789abcdef0123456789abcdef"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}


async def finished_job(client: httpx.AsyncClient, **options: object) -> dict[str, Any]:
    submitted = await client.post("/v1/jobs/qr", json={"data": "hello", **options})
    assert submitted.status_code == 202, submitted.text
    job = await wait_for_job(client, submitted.json()["id"])
    assert job["status"] == "succeeded", job
    return job


async def spec_of(client: httpx.AsyncClient) -> dict[str, Any]:
    spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    return spec


# 1. Methods: every 405 names what the path allows; HEAD works wherever GET does.


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", f"/v1/jobs/{JOB_ID}/result", "GET, HEAD"),
        ("PATCH", "/v1/jobs/qr", "POST"),
        ("GET", "/v1/jobs/qr", "POST"),
        ("POST", f"/v1/jobs/{JOB_ID}", "DELETE, GET, HEAD"),
        ("DELETE", "/v1/jobs", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
    ],
)
async def test_405_lists_the_methods_the_path_allows(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["allow"] == allowed


async def test_every_documented_path_answers_405_with_its_methods(
    client: httpx.AsyncClient,
) -> None:
    for template, operations in (await spec_of(client))["paths"].items():
        path = template.replace("{job_id}", JOB_ID)
        documented = {method.upper() for method in operations}
        allowed = documented | ({"HEAD"} if "GET" in documented else set())
        for method in sorted(METHODS - allowed):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"] == ", ".join(sorted(allowed)), (method, path)


async def test_head_on_a_result_gives_its_headers_and_no_body(client: httpx.AsyncClient) -> None:
    job = await finished_job(client)
    url = f"/v1/jobs/{job['id']}/result"
    got = await client.get(url)
    head = await client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    for header in ("content-type", "content-length", "etag", "content-disposition"):
        assert head.headers[header] == got.headers[header], header
    again = await client.head(url, headers={"If-None-Match": got.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == got.headers["etag"]


@pytest.mark.parametrize("path", ["/v1/jobs/{id}", "/v1/jobs", "/healthz", "/openapi.json"])
async def test_head_works_wherever_get_does(
    client: httpx.AsyncClient, any_backend: Backend, path: str
) -> None:
    record = await store_job(any_backend, status=JobStatus.SUCCEEDED)
    url = path.replace("{id}", record.id)
    got = await client.get(url)
    head = await client.head(url)
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))


async def test_head_of_an_unknown_job_is_a_404_without_body(client: httpx.AsyncClient) -> None:
    response = await client.head(f"/v1/jobs/{new_job_id()}")
    assert (response.status_code, response.content) == (404, b"")
    assert response.headers["content-type"] == PROBLEM


# 2. Malformed job ids: a 404 problem that states the rule, and a spec that says so.


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/doesnotexist"),
        ("GET", f"/v1/jobs/{JOB_ID.upper()}"),
        ("GET", f"/v1/jobs/{JOB_ID[:-1]}"),
        ("GET", "/v1/jobs/doesnotexist/result"),
        ("DELETE", "/v1/jobs/doesnotexist"),
    ],
)
async def test_malformed_job_id_is_a_404_problem_naming_the_rule(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:offload:problem:invalid-job-id"
    assert problem["errors"] == [
        {"field": "job_id", "message": "must be 32 lowercase hexadecimal characters"}
    ]


async def test_spec_states_the_job_id_rule_and_no_422_for_it(client: httpx.AsyncClient) -> None:
    paths = (await spec_of(client))["paths"]
    for path, method in [
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/result", "get"),
        ("/v1/jobs/{job_id}/events", "get"),
    ]:
        operation = paths[path][method]
        [parameter] = [p for p in operation["parameters"] if p["name"] == "job_id"]
        assert parameter["schema"]["pattern"] == "^[0-9a-f]{32}$"
        assert "32 lowercase hexadecimal characters" in parameter["description"]
        assert "invalid-job-id" in operation["responses"]["404"]["description"]
        queries = [p["name"] for p in operation["parameters"] if p["in"] == "query"]
        # get_job's 422 is for its long-poll's `wait` and `since`, never for the id.
        if not queries:
            assert "422" not in operation["responses"], (method, path)


# 3. Request bodies: 415 for other media types; unreadable JSON says what is wrong.


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/x-www-form-urlencoded"},
        {"content-type": "text/plain"},
        {"content-type": "multipart/form-data; boundary=x"},
        {},
    ],
)
async def test_a_body_that_is_not_json_is_a_415_problem(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1/jobs/qr", content=b"data=hello", headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:offload:problem:unsupported-media-type"
    assert [error["field"] for error in problem["errors"]] == ["content-type"]
    assert "application/json" in problem["errors"][0]["message"]


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/jobs/qr",
        content=b'{"data": "hello"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202, response.text


async def test_spec_documents_the_415(client: httpx.AsyncClient) -> None:
    responses = (await spec_of(client))["paths"]["/v1/jobs/qr"]["post"]["responses"]
    assert PROBLEM in responses["415"]["content"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "is not valid JSON: Expecting property name"),
        (b'{"data": "x",}', "is not valid JSON: "),
        (b'{"data": "x", "scale": ' + b"9" * 5000 + b"}", "has a number too large"),
        (b"[" * 100_000 + b"]" * 100_000, "is nested too deeply"),
        (b'{"data": "\xff"}', "is not UTF-8"),
    ],
)
async def test_unreadable_json_says_what_is_wrong_with_the_body(
    client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await client.post(
        "/v1/jobs/qr", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith(message), error


# 4. Expiry: the job and its result agree (410) while the record is kept.


async def test_expired_job_and_its_result_are_both_410(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    record = await store_job(any_backend, status=JobStatus.SUCCEEDED, expired=True)
    job = await client.get(f"/v1/jobs/{record.id}")
    assert job.status_code == 410
    assert job.headers["content-type"] == PROBLEM
    assert job.json()["type"] == "urn:offload:problem:job-expired"
    result = await client.get(f"/v1/jobs/{record.id}/result")
    assert result.status_code == 410
    assert result.json()["type"] == "urn:offload:problem:result-expired"
    deleted = await client.delete(f"/v1/jobs/{record.id}")
    assert deleted.status_code == 410
    assert deleted.json()["type"] == "urn:offload:problem:job-expired"
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_expired_job_answers_410_after_its_files_are_purged_then_404(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    record = await store_job(any_backend, status=JobStatus.SUCCEEDED, expired=True)
    await any_backend.store.purge_expired(time.time(), tombstone_seconds=3600)
    assert (await client.get(f"/v1/jobs/{record.id}")).status_code == 410
    await any_backend.store.purge_expired(time.time() + 3600, tombstone_seconds=0)
    assert (await client.get(f"/v1/jobs/{record.id}")).status_code == 404


async def test_spec_documents_410_on_the_job(client: httpx.AsyncClient) -> None:
    paths = (await spec_of(client))["paths"]
    assert "410" in paths["/v1/jobs/{job_id}"]["get"]["responses"]
    assert "410" in paths["/v1/jobs/{job_id}"]["delete"]["responses"]


# 5. The result's media types are the ones it is really served with.


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
async def test_result_is_served_with_a_documented_media_type(
    client: httpx.AsyncClient, fmt: str
) -> None:
    job = await finished_job(client, format=fmt)
    download = await client.get(f"/v1/jobs/{job['id']}/result")
    spec = await spec_of(client)
    documented = spec["paths"]["/v1/jobs/{job_id}/result"]["get"]["responses"]["200"]["content"]
    assert download.headers["content-type"].split(";")[0] in documented
    assert "application/octet-stream" not in documented


# 6. Interactive docs work offline: every asset they load is served by the API itself.

_ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_load_only_local_assets_and_those_are_served(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://|//[a-z]", html, re.IGNORECASE), "an external reference"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        served = await client.get(asset)
        assert served.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert served.headers["content-type"].startswith(_ASSET_TYPES[suffix]), asset
        assert len(served.content) > 1000, asset
    assert "/openapi.json" in html


# 7. Deleting a job leaves no empty folder behind.


async def test_delete_removes_the_job_folder_and_its_empty_shard(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    job = await finished_job(client)
    shard = any_backend.files.root / job["id"][-2:]
    assert (shard / job["id"]).is_dir()
    assert (await client.delete(f"/v1/jobs/{job['id']}")).status_code == 204
    assert not shard.exists()
    assert list(any_backend.files.root.iterdir()) == []
