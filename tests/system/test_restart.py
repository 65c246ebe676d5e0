"""SIGTERM ``offload serve`` under a backlog, then start it again on the same data directory."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from tests.support.jobs import wait_for_job
from tests.support.processes import Processes, job_log_line

pytestmark = pytest.mark.slow

EXIT_SLACK_SECONDS = 10.0
"""SIGTERM must end the service within the grace time plus this (HTTP drain, releases)."""
DRAIN = pytest.param(3.0, id="running-jobs-finish")
INTERRUPT = pytest.param(0.0, id="running-jobs-released")
SHUTDOWN_COMPLETE = "Application shutdown complete."
BACKLOG = 48
CHUNK = 24
EARLIER = {"data": "https://example.com/offload/earlier-job", "format": "png"}


def heavy_job(number: int) -> dict[str, Any]:
    """A QR code that takes a noticeable time to render: long data, level H, large PNG."""
    data = f"offload restart backlog job {number:04d} " + "lorem ipsum dolor sit amet " * 12
    return {"data": data, "format": "png", "error_correction": "H", "scale": 12}


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the database file directly (read-only), as an operator would."""
    with closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


def statuses(database: Path) -> Counter[str]:
    return Counter(dict(query(database, "SELECT status, COUNT(*) FROM jobs GROUP BY status")))


def decode_png(content: bytes) -> list[str]:
    return [bytes(symbol.data).decode() for symbol in decode(Image.open(io.BytesIO(content)))]


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/jobs/qr", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


@pytest.mark.parametrize("grace", [DRAIN, INTERRUPT])
async def test_sigterm_under_load_leaves_no_job_running_and_a_restart_finishes_them(
    processes: Processes, grace: float
) -> None:
    processes.settings["OFFLOAD_SHUTDOWN_GRACE_SECONDS"] = str(grace)
    database = processes.data_dir / "offload.db"

    first = processes.serve("serve-1")
    assert first.base_url is not None
    async with httpx.AsyncClient(base_url=first.base_url, timeout=30) as http:
        earlier_id = await submit(http, EARLIER)
        earlier = await wait_for_job(http, earlier_id, timeout=20)
        assert earlier["status"] == "succeeded", earlier
        earlier_png = (await http.get(f"/v1/jobs/{earlier_id}/result")).content
        assert decode_png(earlier_png) == [EARLIER["data"]]

        backlog: list[str] = []
        for start in range(0, BACKLOG, CHUNK):
            chunk = [heavy_job(number) for number in range(start, start + CHUNK)]
            backlog += await asyncio.gather(*(submit(http, body) for body in chunk))
        sigterm_at = time.monotonic()
        returncode = processes.terminate(first, timeout=grace + EXIT_SLACK_SECONDS)
        stopped_in = time.monotonic() - sigterm_at
    processes.check(
        returncode == 0 and SHUTDOWN_COMPLETE in first.log(),
        f"serve did not shut down cleanly: exit status {returncode}",
    )

    after_stop = statuses(database)
    processes.check(
        after_stop["running"] == 0,
        f"jobs left running after a graceful stop in {stopped_in:.1f} s: {after_stop}",
    )
    failed = query(database, "SELECT id, error FROM jobs WHERE status = 'failed'")
    processes.check(
        sum(after_stop.values()) == BACKLOG + 1
        and after_stop["succeeded"] + after_stop["queued"] == BACKLOG + 1,
        f"every job should be succeeded or queued: {after_stop}; failed: {failed}",
    )
    lost = query(
        database,
        "SELECT id FROM jobs WHERE status = 'queued' "
        "AND NOT EXISTS (SELECT 1 FROM queue WHERE queue.task_id = jobs.id)",
    )
    processes.check(not lost, f"queued jobs with no message left in the queue: {lost}")
    processes.check(
        after_stop["succeeded"] < BACKLOG + 1,
        f"the service finished the whole backlog before it stopped; make it bigger: {after_stop}",
    )

    second = processes.serve("serve-2")
    assert second.base_url is not None
    processes.wait_until(
        lambda: statuses(database)["succeeded"] == BACKLOG + 1,
        "every job to succeed after the restart",
        timeout=45,
        watch=second,
        interval=0.25,
    )
    attempts = dict(query(database, "SELECT attempts, COUNT(*) FROM jobs GROUP BY attempts"))
    processes.check(
        attempts == {1: BACKLOG + 1},
        f"a job released at shutdown should not use up an attempt: jobs by attempts {attempts}",
    )
    async with httpx.AsyncClient(base_url=second.base_url, timeout=30) as http:
        again = (await http.get(f"/v1/jobs/{earlier_id}")).json()
        assert again["status"] == "succeeded" and again["result"] == earlier["result"], again
        download = await http.get(f"/v1/jobs/{earlier_id}/result")
        assert download.status_code == 200, download.text
        assert download.content == earlier_png
        assert decode_png(download.content) == [EARLIER["data"]]
        for job_id in backlog[:: CHUNK // 3]:
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
            assert job["status"] == "succeeded", job

    restarted = second.log()
    redone = [job_id for job_id in backlog if job_log_line(job_id, "running") in restarted]
    processes.check(
        len(redone) == BACKLOG + 1 - after_stop["succeeded"],
        f"the restarted service should run exactly the {after_stop['queued']} queued jobs, "
        f"ran {len(redone)}",
    )
