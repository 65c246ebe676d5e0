"""Live events and long-polls through the HTTP API, on both backends, under a real server.

The task here waits at gates the test opens, so each change happens only after the test
saw the one before: the sequence of events is exact, never a matter of timing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from brokers import broker
from brokers.contract import JobRecord, new_job_id
from brokers.events import JobWatch
from brokers.factory import Backend
from schemas.jobs import JobStatus
from service.app import create_app
from service.submission import submit_job
from tasks.deps import AttemptDep
from tests.support.jobs import store_job
from tests.support.live import Event, open_stream, serving

gates: dict[str, asyncio.Queue[None]] = {}


@broker.task(task_name="tests.events.gated")
async def gated(request: dict[str, str], attempt: AttemptDep) -> dict[str, Any]:
    """Two progress steps and the finish, each after the test opens the next gate."""
    gate = gates[request["key"]]
    for done in (1, 2):
        await gate.get()
        await attempt.report(done, 2, f"step {done}")
    await gate.get()
    return {"data": {"done": 2}, "files": []}


@asynccontextmanager
async def api(backend: Backend, worker: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(backend, embedded_worker=worker)) as client:
        yield client


async def gated_job(backend: Backend) -> tuple[JobRecord, asyncio.Queue[None]]:
    key = new_job_id()
    gate = gates[key] = asyncio.Queue()
    record = await submit_job(backend, gated, tenant="local", kind="qr", request={"key": key})
    return record, gate


async def until_running(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(2000):
        job: dict[str, Any] = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] == "running":
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job_id} never ran: {job}")


def summary(events: list[Event]) -> list[tuple[str, str, int | None]]:
    return [
        (e.event, e.job["status"], e.job["progress"]["done"] if e.job["progress"] else None)
        for e in events
    ]


async def test_a_job_with_progress_streams_its_changes_then_closes(any_backend: Backend) -> None:
    async with api(any_backend) as client:
        record, gate = await gated_job(any_backend)
        async with open_stream(client, record.id) as stream:
            seen = [await stream.next()]
            if seen[0].job["status"] == "queued":  # the stream may open before it starts
                seen.append(await stream.next())
            for _ in range(3):
                gate.put_nowait(None)
                seen.append(await stream.next())
            rest = await stream.rest()
    assert stream.retry is not None
    assert rest == [], "the stream did not close after the terminal state"
    assert summary(seen[-4:]) == [
        ("status", "running", None),
        ("progress", "running", 1),
        ("progress", "running", 2),
        ("status", "succeeded", 2),
    ]
    ids = [event.id for event in seen]
    assert ids == sorted(set(ids)), f"ids are not strictly increasing: {ids}"
    assert all(event.job["version"] == event.id for event in seen)
    assert seen[-1].job["result"]["data"] == {"done": 2}


async def test_a_stream_resumed_with_last_event_id_repeats_nothing(any_backend: Backend) -> None:
    async with api(any_backend) as client:
        record, gate = await gated_job(any_backend)
        running = await until_running(client, record.id)
        gate.put_nowait(None)
        async with open_stream(client, record.id) as stream:
            first = await stream.next()
            while first.job["progress"] is None:
                first = await stream.next()
        # Reconnect having seen it: nothing is sent again until the job changes.
        async with open_stream(client, record.id, last_event_id=first.id) as stream:
            with pytest.raises(TimeoutError):
                await stream.next(timeout=0.5)
        async with open_stream(client, record.id, last_event_id=first.id) as stream:
            gate.put_nowait(None)
            second = await stream.next()
            gate.put_nowait(None)
            rest = await stream.rest()
        # Resumed from an older id, the current state comes at once, as one event.
        async with open_stream(client, record.id, last_event_id=running["version"]) as stream:
            caught_up = await stream.rest()
    assert second.id > first.id and second.event == "progress"
    assert second.job["progress"]["done"] == 2
    assert [e.job["status"] for e in rest] == ["succeeded"] and rest[0].id > second.id
    assert [(e.event, e.id) for e in caught_up] == [("status", rest[0].id)]


async def test_a_finished_jobs_stream_sends_its_final_state_and_closes(
    any_backend: Backend,
) -> None:
    async with api(any_backend, worker=False) as client:
        record = await store_job(any_backend, status=JobStatus.SUCCEEDED)
        async with open_stream(client, record.id) as stream:
            events = await stream.rest()
        async with open_stream(client, record.id, last_event_id=events[0].id) as stream:
            again = await stream.rest()
    assert summary(events) == [("status", "succeeded", None)]
    assert again == [], "a client that saw the final state got it again"


async def test_problems_come_before_the_stream_starts(any_backend: Backend) -> None:
    async with api(any_backend, worker=False) as client:
        expired = await store_job(any_backend, status=JobStatus.SUCCEEDED, expired=True)
        missing = await client.get(f"/v1/jobs/{new_job_id()}/events")
        invalid = await client.get("/v1/jobs/not-a-job/events")
        gone = await client.get(f"/v1/jobs/{expired.id}/events")
    for response, status, kind in (
        (missing, 404, "job-not-found"),
        (invalid, 404, "invalid-job-id"),
        (gone, 410, "job-expired"),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith(kind)


async def test_a_closed_stream_leaves_no_watch_behind(any_backend: Backend) -> None:
    async with api(any_backend, worker=False) as client:
        record = await store_job(any_backend, status=JobStatus.QUEUED)
        async with open_stream(client, record.id) as stream:
            await stream.next()
            assert any_backend.events.watch_count() == 1
        for _ in range(500):  # the server notices the disconnect on its own time
            if any_backend.events.watch_count() == 0:
                break
            await asyncio.sleep(0.01)
        assert any_backend.events.watch_count() == 0


async def test_an_idle_stream_gets_keep_alive_comments(any_backend: Backend) -> None:
    any_backend.settings.events_keepalive_seconds = 0.05
    try:
        async with api(any_backend, worker=False) as client:
            record = await store_job(any_backend, status=JobStatus.QUEUED)
            async with open_stream(client, record.id) as stream:
                await stream.next()
                cancelling = asyncio.ensure_future(stream.next())
                await asyncio.sleep(0.3)
                await client.post(f"/v1/jobs/{record.id}/cancel")
                cancelled = await cancelling
    finally:
        any_backend.settings.events_keepalive_seconds = 15.0
    assert cancelled.job["status"] == "cancelled"
    assert len(stream.comments) >= 2, stream.comments


async def test_two_hundred_clients_on_one_job_share_one_listener(any_backend: Backend) -> None:
    async with api(any_backend, worker=False) as client:
        record = await store_job(any_backend, status=JobStatus.QUEUED)

        async def follow() -> list[Event]:
            async with open_stream(client, record.id) as stream:
                return await stream.rest(timeout=60)

        # In groups: 200 requests at once would exceed redis-py's pool of 100 connections
        # (it refuses the 101st at once: 503), whatever the route.
        followers: list[asyncio.Future[list[Event]]] = []
        for group in range(1, 5):
            followers += [asyncio.ensure_future(follow()) for _ in range(50)]
            for _ in range(3000):
                if any_backend.events.watch_count() == 50 * group:
                    break
                await asyncio.sleep(0.01)
        assert any_backend.events.watch_count() == 200
        await client.post(f"/v1/jobs/{record.id}/cancel")
        streams = await asyncio.gather(*followers)
    assert all(summary(events)[-1] == ("status", "cancelled", None) for events in streams)
    subscriptions = getattr(any_backend.events, "subscriptions", None)
    if subscriptions is not None:  # Redis: one SUBSCRIBE for all of them
        assert subscriptions == 1


def test_a_client_that_never_reads_holds_one_state_only() -> None:
    """Each event carries the whole job, so a watch keeps the newest and drops the rest."""
    watch = JobWatch("job")
    now = time.time()
    for version in range(1, 10_001):
        watch.offer(JobRecord("job", "local", "qr", {}, now, now + 60, 3, version=version))
    assert watch._latest is not None and watch._latest.version == 10_000
    watch.offer(JobRecord("job", "local", "qr", {}, now, now + 60, 3, version=5))
    assert watch._latest.version == 10_000, "an older state replaced a newer one"


# -- long-poll -------------------------------------------------------------------------------


async def test_a_long_poll_answers_when_the_job_changes(any_backend: Backend) -> None:
    async with api(any_backend) as client:
        record, gate = await gated_job(any_backend)
        running = await until_running(client, record.id)
        polling = asyncio.ensure_future(client.get(f"/v1/jobs/{record.id}", params={"wait": 30}))
        await asyncio.sleep(0.2)
        assert not polling.done(), polling.result().text
        gate.put_nowait(None)
        changed = (await asyncio.wait_for(polling, 10)).json()
        # With `since`, a client that is behind gets the current state at once.
        behind = await client.get(
            f"/v1/jobs/{record.id}", params={"wait": 30, "since": running["version"]}
        )
        gate.put_nowait(None)
        gate.put_nowait(None)
    assert changed["version"] > running["version"]
    assert changed["progress"]["done"] == 1
    assert behind.json()["version"] == changed["version"]


async def test_a_long_poll_answers_after_its_wait_with_the_current_state(
    any_backend: Backend,
) -> None:
    async with api(any_backend, worker=False) as client:
        record = await store_job(any_backend, status=JobStatus.QUEUED)
        started = time.monotonic()
        response = await client.get(f"/v1/jobs/{record.id}", params={"wait": 0.3})
        waited = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    assert response.json()["version"] == record.version
    assert waited >= 0.3
    assert any_backend.events.watch_count() == 0


@pytest.mark.parametrize("wait", ["0", "-1", "60.5", "soon"])
async def test_a_long_poll_outside_its_range_is_422(any_backend: Backend, wait: str) -> None:
    async with api(any_backend, worker=False) as client:
        record = await store_job(any_backend, status=JobStatus.QUEUED)
        response = await client.get(f"/v1/jobs/{record.id}", params={"wait": wait})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "wait"
