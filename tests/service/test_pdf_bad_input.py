"""Bad PDF input through the API: a clear answer (422 at submit, or a typed job failure),
and the same worker runs a good job right after."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from brokers.factory import Backend
from brokers.uploads import Upload
from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.pdfs import (
    bomb_pdf,
    broken_stream_pdf,
    certificate_encrypted_pdf,
    corrupt_pdf,
    encrypted_pdf,
    numbered_pdf,
)

PROBLEM = "application/problem+json"


def field_messages(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {error["field"]: error["message"] for error in response.json()["errors"]}


async def failed(client: httpx.AsyncClient, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/pdf/{operation}", json=body)
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"], timeout=60)
    assert job["status"] == "failed", job
    assert job["error"]["retryable"] is False
    assert job["attempts"] == 1, "bad input is not run again"
    return job


async def a_good_job_runs(client: httpx.AsyncClient) -> None:
    good = await upload(client, numbered_pdf(2), "good.pdf")
    response = await client.post("/v1/jobs/pdf/rotate", json={"file_id": good["id"], "angle": 90})
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"], timeout=60)
    assert job["status"] == "succeeded", job


async def nothing_stored(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_a_corrupt_pdf_is_refused_at_submit_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    good = await upload(client, numbered_pdf(1), "good.pdf")
    bad = await upload(client, corrupt_pdf(), "scan.pdf")
    response = await client.post("/v1/jobs/pdf/merge", json={"file_ids": [good["id"], bad["id"]]})
    messages = field_messages(response)
    assert list(messages) == ["file_ids.1"]
    assert messages["file_ids.1"].startswith("scan.pdf is not a readable PDF")
    await nothing_stored(client)
    await a_good_job_runs(client)


async def test_a_corrupt_pdf_the_probe_cannot_see_fails_as_invalid_pdf(
    client: httpx.AsyncClient,
) -> None:
    broken = await upload(client, broken_stream_pdf(), "broken.pdf")
    job = await failed(client, "rotate", {"file_id": broken["id"], "angle": 90})
    assert job["error"]["type"] == "invalid_pdf"
    assert job["error"]["message"].startswith("broken.pdf is not a readable PDF")
    await a_good_job_runs(client)


async def test_a_pdf_encrypted_for_certificates_is_refused_at_submit(
    client: httpx.AsyncClient,
) -> None:
    sealed = await upload(client, certificate_encrypted_pdf(), "sealed.pdf")
    response = await client.post("/v1/jobs/pdf/rotate", json={"file_id": sealed["id"], "angle": 90})
    messages = field_messages(response)
    assert list(messages) == ["file_id"]
    assert messages["file_id"].startswith("sealed.pdf is not a readable PDF")
    await nothing_stored(client)
    await a_good_job_runs(client)


async def test_a_file_deleted_while_the_submit_checks_it_is_a_422_naming_the_field(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import inputs

    look_up = inputs._look_up

    def then_deleted(*args: Any) -> dict[str, Upload]:
        found = look_up(*args)
        for one in found.values():
            one.path.unlink()  # a DELETE or the purge landing right after the look-up
        return found

    monkeypatch.setattr(inputs, "_look_up", then_deleted)
    source = await upload(client, numbered_pdf(2), "gone.pdf")
    response = await client.post("/v1/jobs/pdf/rotate", json={"file_id": source["id"], "angle": 90})
    assert field_messages(response) == {"file_id": f"file {source['id']} was deleted or expired"}
    await nothing_stored(client)
    monkeypatch.undo()
    await a_good_job_runs(client)


async def test_an_encrypted_pdf_without_its_password_fails_as_encrypted_pdf(
    client: httpx.AsyncClient,
) -> None:
    locked = await upload(client, encrypted_pdf(["x"], "pw"), "locked.pdf")
    job = await failed(client, "extract-text", {"file_id": locked["id"]})
    assert job["error"]["type"] == "encrypted_pdf"
    assert job["error"]["message"] == "locked.pdf is encrypted; give its password"
    await a_good_job_runs(client)


async def test_a_wrong_password_fails_as_wrong_password(client: httpx.AsyncClient) -> None:
    locked = await upload(client, encrypted_pdf(["x"], "pw"), "locked.pdf")
    job = await failed(client, "decrypt", {"file_id": locked["id"], "password": "nope-guess"})
    assert job["error"]["type"] == "wrong_password"
    assert "nope-guess" not in str(job)
    await a_good_job_runs(client)


async def test_more_pages_than_the_setting_is_refused_at_submit(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(any_backend.settings, "pdf_max_pages", 5)
    long = await upload(client, numbered_pdf(6), "long.pdf")
    response = await client.post("/v1/jobs/pdf/rotate", json={"file_id": long["id"], "angle": 90})
    assert field_messages(response) == {
        "file_id": "long.pdf has 6 pages; this server takes at most 5"
    }
    three = await upload(client, numbered_pdf(3), "three.pdf")
    response = await client.post("/v1/jobs/pdf/merge", json={"file_ids": [three["id"]] * 2})
    assert field_messages(response) == {
        "file_ids": "together these files have 6 pages; this server merges at most 5"
    }
    await nothing_stored(client)
    await a_good_job_runs(client)


async def test_a_merge_of_more_bytes_than_the_setting_is_refused_at_submit(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(any_backend.settings, "pdf_max_merge_bytes", 1_000_000)
    big = await upload(client, numbered_pdf(1) + b" " * 600_000, "big.pdf")
    response = await client.post("/v1/jobs/pdf/merge", json={"file_ids": [big["id"]] * 2})
    message = field_messages(response)["file_ids"]
    assert message.startswith("together these files are 1,2")
    assert message.endswith("this server merges at most 1,000,000")
    await nothing_stored(client)
    await a_good_job_runs(client)


async def test_a_zero_byte_file_is_refused_at_submit(client: httpx.AsyncClient) -> None:
    empty = await upload(client, b"", "empty.pdf")
    response = await client.post("/v1/jobs/pdf/split", json={"file_id": empty["id"]})
    assert list(field_messages(response)) == ["file_id"]
    await nothing_stored(client)
    await a_good_job_runs(client)


@pytest.mark.parametrize(
    ("operation", "body", "field", "message"),
    [
        ("split", {"ranges": "1-2,9-"}, "ranges", "9- is past the end: the file has 3 pages"),
        ("rotate", {"angle": 90, "pages": "4"}, "pages", "4 is past the end: the file has 3 pages"),
        ("extract-text", {"pages": "2-7"}, "pages", "2-7 is past the end: the file has 3 pages"),
        ("split", {"ranges": "3-1"}, "ranges", "'3-1' ends before it starts"),
        ("rotate", {"angle": 90, "pages": "one"}, "pages", "'one' is not a page or range"),
        ("rotate", {"angle": 45}, "angle", "Input should be 90, 180 or 270"),
    ],
)
async def test_impossible_pages_are_refused_at_submit_naming_the_field(
    client: httpx.AsyncClient, operation: str, body: dict[str, Any], field: str, message: str
) -> None:
    source = await upload(client, numbered_pdf(3))
    response = await client.post(
        f"/v1/jobs/pdf/{operation}", json={"file_id": source["id"], **body}
    )
    messages = field_messages(response)
    assert list(messages) == [field]
    assert message in messages[field]
    await nothing_stored(client)
    await a_good_job_runs(client)


async def test_a_split_into_too_many_files_is_refused_naming_output(
    client: httpx.AsyncClient,
) -> None:
    source = await upload(client, numbered_pdf(101))
    response = await client.post(
        "/v1/jobs/pdf/split", json={"file_id": source["id"], "output": "pdfs"}
    )
    assert "101 parts is more than 100 result files" in field_messages(response)["output"]


async def test_a_decompression_bomb_fails_as_input_limit_exceeded_and_the_worker_lives(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(any_backend.settings, "pdf_max_stream_bytes", 10_000_000)
    content = bomb_pdf(100_000_000)
    assert len(content) < 150_000
    bomb = await upload(client, content, "bomb.pdf")
    job = await failed(client, "extract-text", {"file_id": bomb["id"]})
    assert job["error"]["type"] == "input_limit_exceeded"
    assert job["error"]["message"].startswith("bomb.pdf is over this server's limits")
    await a_good_job_runs(client)
