"""Real Offload processes on a private Redis: a killed worker, a Redis outage, two schedulers.

Each test owns its redis-server (function-scoped, on its own port), so stopping it or losing
its data cannot touch the session's server or another test's keys, in any order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from taskiq import ScheduledTask

from brokers.factory import build_backend
from brokers.redis.keys import Keys
from schemas.jobs import JobStatus
from service.settings import Settings
from tests.support.jobs import TERMINAL
from tests.support.processes import (
    BIN_DIR,
    OFFLOAD_WORKER_READY,
    SCHEDULER_STARTED,
    TASKIQ_LISTENING,
    InProcessJobs,
    Processes,
    job_log_line,
)
from tests.support.redis_server import RedisServer
from tests.support.slow_tasks import SLOW_TASK
from tests.support.tick_tasks import TICK_TASK

pytestmark = pytest.mark.slow

WORKER_DIED = "is dead. Scheduling reload."
"""Logged by TaskiQ's process manager when it has to restart a worker process."""


class DurableRedisServer(RedisServer):
    """A private redis-server that keeps its data across a restart: an append-only file,
    fsynced on every write, in its work directory."""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # PING answers -LOADING until the file is read
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[DurableRedisServer]:
    server = DurableRedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_redis(processes: Processes, server: RedisServer, **settings: str) -> Settings:
    """Point every process of the test at ``server`` under a fresh key prefix; return the
    same settings for the test's own in-process backend."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    processes.settings.update(
        OFFLOAD_BROKER_URL=server.url, OFFLOAD_REDIS_PREFIX=prefix, **settings
    )
    return Settings(
        broker_url=server.url,
        redis_prefix=prefix,
        data_dir=processes.data_dir,
        **{name.removeprefix("OFFLOAD_").lower(): value for name, value in settings.items()},  # type: ignore[arg-type]
    )


# -- (a) kill -9 mid-job ----------------------------------------------------------------------

LEASE_SECONDS = 2.0
JOB_SECONDS = 2.0
SLACK_SECONDS = 5.0


async def test_a_job_whose_worker_is_killed_is_finished_by_an_idle_worker(
    redis: RedisServer, processes: Processes
) -> None:
    """Worker A is ``kill -9``-ed mid-job on an otherwise idle queue; worker B, idle all
    along, takes the job over once its lease runs out (no other traffic) and finishes it."""
    settings = use_redis(processes, redis, OFFLOAD_LEASE_SECONDS=str(LEASE_SECONDS))
    workers = [
        processes.taskiq_worker(name, "tests.support.slow_tasks", wait=False)
        for name in ("worker-1", "worker-2")
    ]
    for worker in workers:
        processes.wait_for_log(worker, TASKIQ_LISTENING)

    jobs = InProcessJobs(settings)
    try:
        async with jobs:
            job_id = await jobs.submit(SLOW_TASK, seconds=JOB_SECONDS)
            running = await jobs.wait_for(
                job_id, {JobStatus.RUNNING}, timeout=10, processes=processes
            )
            assert running.attempts == 1, running
            worker_a, worker_b = processes.split_by_runner(job_id, workers)

            processes.kill(worker_a)
            killed_at = time.monotonic()
            still = await jobs.get(job_id)
            processes.check(
                still.status is JobStatus.RUNNING and still.attempts == 1,
                f"worker A should have been killed in the middle of the job: {still}",
            )
            done = await jobs.wait_for(
                job_id,
                {JobStatus.SUCCEEDED, JobStatus.FAILED},
                timeout=2 * LEASE_SECONDS + JOB_SECONDS + SLACK_SECONDS,
                processes=processes,
            )
            elapsed = time.monotonic() - killed_at
    finally:
        await jobs.backend.close()

    processes.check(
        done.status is JobStatus.SUCCEEDED and done.attempts == 2,
        f"expected success on the second attempt, {elapsed:.1f} s after the kill: {done}",
    )
    assert done.result is not None and done.result.data == {"slept": JOB_SECONDS}, done
    assert elapsed >= JOB_SECONDS, "worker B cannot have run the whole job after the kill"
    assert job_log_line(job_id, "succeeded") in worker_b.log()
    assert job_log_line(job_id, "succeeded") not in worker_a.log()
    assert worker_b.alive()


# -- (b) Redis stopped and started under load ----------------------------------------------------

LOAD_SECONDS = 5.0
OUTAGE_AT = 1.5
OUTAGE_SECONDS = 2.0
SUBMIT_EVERY = 0.02
MAX_ANSWER_SECONDS = 5.0
OUTAGE_LEASE_SECONDS = 3.0
SUBMITTERS = 8


@dataclass
class Submit:
    started: float
    finished: float
    status: int | str
    """The HTTP status, or the name of the transport error."""
    retry_after: str | None = None
    job_id: str | None = None
    key: str = ""
    """The Idempotency-Key: a submit answered 503 is sent again with the same key."""


async def submit_until(http: httpx.AsyncClient, until: float, log: list[Submit]) -> None:
    """Submit as a careful client does: each request has its own Idempotency-Key, and one
    that was not accepted is sent again with that key (after the load too, until accepted)."""
    pending: str | None = None
    while time.monotonic() < until or pending is not None:
        key = pending or uuid.uuid4().hex
        started = time.monotonic()
        try:
            response = await http.post(
                "/v1/jobs/qr", json={"data": f"outage {key}"}, headers={"Idempotency-Key": key}
            )
        except httpx.TransportError as error:
            log.append(Submit(started, time.monotonic(), type(error).__name__, key=key))
            pending = key
        else:
            body = response.json()
            accepted = response.status_code in (200, 202)
            job_id = body.get("id") if accepted else body.get("job_id")
            log.append(
                Submit(
                    started,
                    time.monotonic(),
                    response.status_code,
                    response.headers.get("Retry-After"),
                    job_id,
                    key,
                )
            )
            pending = None if accepted else key
        await asyncio.sleep(SUBMIT_EVERY if pending is None else 0.2)


async def every_job_id(http: httpx.AsyncClient) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/jobs", params=params)).json()
        ids += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def final_states(
    http: httpx.AsyncClient, job_ids: list[str], timeout: float, missing_ok: bool = False
) -> dict[str, dict[str, Any]]:
    """Poll every job until all are terminal or ``timeout`` passes; return the last states.

    With ``missing_ok``, a job that does not exist (404) is left out."""
    deadline = time.monotonic() + timeout
    states: dict[str, dict[str, Any]] = {}
    waiting = list(job_ids)
    while waiting and time.monotonic() < deadline:
        for job_id in list(waiting):
            response = await http.get(f"/v1/jobs/{job_id}")
            if missing_ok and response.status_code == 404:
                waiting.remove(job_id)
                continue
            assert response.status_code == 200, response.text
            states[job_id] = response.json()
            if states[job_id]["status"] in TERMINAL:
                waiting.remove(job_id)
        await asyncio.sleep(0.1)
    return states


async def test_a_redis_outage_under_load_answers_503_and_loses_no_accepted_job(
    durable_redis: DurableRedisServer, processes: Processes
) -> None:
    """Redis stops for ~2 s while a client submits all the time. Submits during the outage
    get 503 with Retry-After (never 500, never a hang); every 202 ends ``succeeded``; the API
    and the worker recover on their own (persistence on, so Redis keeps accepted jobs).

    A short lease: an entry whose XREADGROUP reply died with the connection is reclaimed
    after one lease, and this keeps that wait short."""
    use_redis(processes, durable_redis, OFFLOAD_LEASE_SECONDS=str(OUTAGE_LEASE_SECONDS))
    serve = processes.serve(wait=False)
    worker = processes.offload_worker(wait=False)
    processes.wait_healthy(serve)
    processes.wait_for_log(worker, OFFLOAD_WORKER_READY)
    assert serve.base_url is not None

    log: list[Submit] = []
    async with httpx.AsyncClient(base_url=serve.base_url, timeout=15) as http:
        began = time.monotonic()
        load = asyncio.gather(
            *(submit_until(http, began + LOAD_SECONDS, log) for _ in range(SUBMITTERS))
        )
        await asyncio.sleep(OUTAGE_AT)
        try:
            await asyncio.to_thread(durable_redis.stop)
            down_at = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            restart_at = time.monotonic()
            await asyncio.to_thread(durable_redis.start)
        up_at = time.monotonic()
        await load

        statuses = sorted({str(submit.status) for submit in log})
        processes.check(
            set(statuses) <= {"200", "202", "503"},
            f"submits answered other than 200/202/503: {statuses}",
        )
        slowest = max(submit.finished - submit.started for submit in log)
        processes.check(slowest < MAX_ANSWER_SECONDS, f"a submit took {slowest:.1f} s")
        refused = [submit for submit in log if submit.status == 503]
        processes.check(all(submit.retry_after for submit in refused), "a 503 without Retry-After")
        during = [s for s in log if s.started >= down_at and s.finished <= restart_at]
        processes.check(len(during) >= 10, f"too few submits during the outage: {len(during)}")
        processes.check(
            all(submit.status == 503 for submit in during),
            f"submits while Redis was down got {sorted({str(s.status) for s in during})}",
        )
        after = [s for s in log if s.started >= up_at]
        processes.check(
            any(submit.status == 202 for submit in after),
            f"the API took no job after Redis came back: {[s.status for s in after][:20]}",
        )
        job_of_key: dict[str, set[str]] = {}
        for submit in log:
            if submit.status in (200, 202) and submit.job_id is not None:
                job_of_key.setdefault(submit.key, set()).add(submit.job_id)
        keys = {submit.key for submit in log}
        processes.check(
            set(job_of_key) == keys, f"keys never accepted: {sorted(keys - set(job_of_key))}"
        )
        split = {key: ids for key, ids in job_of_key.items() if len(ids) > 1}
        processes.check(not split, f"one Idempotency-Key made several jobs: {split}")
        accepted = sorted({job_id for ids in job_of_key.values() for job_id in ids})
        states = await final_states(http, accepted, timeout=2 * OUTAGE_LEASE_SECONDS)
        stored = await every_job_id(http)

    processes.check(serve.alive() and worker.alive(), "the API or the worker exited")
    processes.check(WORKER_DIED not in worker.log(), "the worker process had to be restarted")
    for proc in (serve, worker):
        processes.check("never retrieved" not in proc.log(), f"{proc.name} lost an error in a task")
    unfinished = {
        job_id: (job["status"], job["attempts"])
        for job_id, job in states.items()
        if job["status"] != "succeeded"
    }
    processes.check(
        not unfinished, f"accepted jobs that did not succeed: {unfinished} of {len(accepted)}"
    )
    extra = sorted(set(stored) - set(accepted))
    processes.check(not extra, f"jobs stored that no client was given: {extra}")


# -- (c) two schedulers ------------------------------------------------------------------------

SCHEDULING_SECONDS = 3.0


async def test_two_schedulers_run_a_schedule_added_at_run_time_once_per_tick(
    redis: RedisServer, processes: Processes
) -> None:
    """Two ``offload scheduler`` processes and a worker; a one-second interval schedule is
    added at run time. Both schedulers try every tick, and each tick runs exactly once:
    as many runs as ticks claimed in the ledger, each run a different message."""
    settings = use_redis(processes, redis)
    scheduler_argv = [str(BIN_DIR / "offload"), "scheduler", "--update-interval", "1"]
    schedulers = [processes.start(name, scheduler_argv) for name in ("scheduler-1", "scheduler-2")]
    worker = processes.taskiq_worker("worker", "tests.support.tick_tasks", wait=False)
    for scheduler in schedulers:
        processes.wait_for_log(scheduler, SCHEDULER_STARTED)
    processes.wait_for_log(worker, TASKIQ_LISTENING)

    backend = build_backend(settings)
    assert backend.redis is not None
    redis_client: Redis = backend.redis
    source = backend.schedule_sources[-1]
    schedule_id = f"tick-{uuid.uuid4().hex[:8]}"
    runs_key = f"{settings.redis_prefix}:test-runs"
    try:
        await source.startup()
        await source.add_schedule(
            ScheduledTask(
                task_name=TICK_TASK,
                labels={},
                args=[],
                kwargs={"key": runs_key},
                interval=1,
                schedule_id=schedule_id,
            )
        )
        processes.wait_until(
            lambda: all(f"schedule_id {schedule_id}" in s.log() for s in schedulers),
            "both schedulers to try the new schedule",
            timeout=10,
        )
        await asyncio.sleep(SCHEDULING_SECONDS)
        # Stop both in the middle of a second: sends go out just after each whole second,
        # so no send is cut off halfway (which would leave a try neither sent nor lost).
        await asyncio.sleep((1.5 - time.time() % 1.0) % 1.0)
        for scheduler in schedulers:
            scheduler.signalled.append(signal.SIGTERM)
            os.kill(scheduler.pid, signal.SIGTERM)
        for scheduler in schedulers:
            scheduler.popen.wait(timeout=10)

        keys = Keys(settings.redis_prefix)

        async def drained() -> bool:
            pending = await redis_client.xpending(keys.stream, keys.group)
            return await redis_client.xlen(keys.stream) == 0 and not int(pending["pending"])

        deadline = time.monotonic() + 10
        while not await drained():
            processes.check(time.monotonic() < deadline, "the worker did not run every send")
            await asyncio.sleep(0.05)

        runs = [json.loads(raw) for raw in await redis_client.lrange(runs_key, 0, -1)]
        ticks = [key async for key in redis_client.scan_iter(f"{settings.redis_prefix}:tick:*")]
        ticks = [key for key in ticks if f":tick:{schedule_id}:" in key]
    finally:
        await source.shutdown()
        await backend.close()

    tried = [s.log().count(f"with schedule_id {schedule_id}") for s in schedulers]
    lost = sum(s.log().count(f"Scheduled task {TICK_TASK} has been cancelled") for s in schedulers)
    summary = f"runs {len(runs)}, ticks {len(ticks)}, tries per scheduler {tried}, lost {lost}"
    processes.check(len(runs) >= 3, f"the schedule hardly ran: {summary}")
    processes.check(len(runs) == len(ticks), f"a tick ran twice or ran unclaimed: {summary}")
    processes.check(
        len({run["task_id"] for run in runs}) == len(runs), f"a message ran twice: {summary}"
    )
    processes.check(all(run["schedule_id"] == schedule_id for run in runs), f"foreign runs: {runs}")
    processes.check(
        sum(tried) == len(runs) + lost, f"every try either sent or lost its tick: {summary}"
    )
    processes.check(
        min(tried) >= 3 and lost >= 2, f"the schedulers did not contend for ticks: {summary}"
    )
