from __future__ import annotations

import httpx

from tests.support.jobs import wait_for_job


async def test_submitted_qr_job_succeeds_and_downloads(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "hello"})
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job
    download = await client.get(job["links"]["result"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/png"
