"""Idempotency-Key on submit: a repeat is the same job, on both backends."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.jobs import wait_for_job


async def post(client: httpx.AsyncClient, key: str, data: str) -> httpx.Response:
    return await client.post("/v1/jobs/qr", json={"data": data}, headers={"Idempotency-Key": key})


async def test_the_same_key_and_body_answer_the_same_job(client: httpx.AsyncClient) -> None:
    first = await post(client, "order-1234", "same")
    assert first.status_code == 202
    again = await post(client, "order-1234", "same")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    await wait_for_job(client, first.json()["id"])
    after = await post(client, "order-1234", "same")
    assert after.status_code == 200 and after.json()["status"] == "succeeded"
    listed = (await client.get("/v1/jobs")).json()["items"]
    assert [job["id"] for job in listed].count(first.json()["id"]) == 1
    assert len(listed) == 1


async def test_the_same_key_with_another_body_is_a_409(client: httpx.AsyncClient) -> None:
    assert (await post(client, "k", "one")).status_code == 202
    clash = await post(client, "k", "two")
    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["type"].endswith("idempotency-key-reused")
    assert len((await client.get("/v1/jobs")).json()["items"]) == 1


async def test_different_keys_and_no_key_make_new_jobs(client: httpx.AsyncClient) -> None:
    ids = {
        (await post(client, "a", "x")).json()["id"],
        (await post(client, "b", "x")).json()["id"],
        (await client.post("/v1/jobs/qr", json={"data": "x"})).json()["id"],
        (await client.post("/v1/jobs/qr", json={"data": "x"})).json()["id"],
    }
    assert len(ids) == 4


async def test_a_deleted_job_frees_its_key(client: httpx.AsyncClient) -> None:
    first = (await post(client, "reuse", "x")).json()["id"]
    await wait_for_job(client, first)
    assert (await client.delete(f"/v1/jobs/{first}")).status_code == 204
    second = await post(client, "reuse", "x")
    assert second.status_code == 202 and second.json()["id"] != first


async def test_concurrent_repeats_make_one_job(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(post(client, "burst", "x") for _ in range(10)))
    assert sorted(answer.status_code for answer in answers) == [200] * 9 + [202]
    assert len({answer.json()["id"] for answer in answers}) == 1
