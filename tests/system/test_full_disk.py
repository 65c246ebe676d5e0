"""The embedded backend on a data directory that fills up: ``offload serve`` on a real tmpfs.

The API refuses what it cannot store (503, never 500), /readyz says the disk is full, the
worker keeps going, and once space is freed every accepted job succeeds with no temporary
files left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.jobs import TERMINAL
from tests.support.processes import Processes

pytestmark = pytest.mark.slow

DISK_BYTES = 4 << 20
LEASE_SECONDS = 3.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (mounting needs root, which the test machines and CI have)."""
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no space left; return it."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as handle:
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    with contextlib.suppress(OSError), filler.open("ab") as handle:
        while True:
            handle.write(b"\0")
            handle.flush()
    return filler


async def submit(http: httpx.AsyncClient, number: int) -> httpx.Response:
    return await http.post("/v1/jobs/qr", json={"data": f"full disk {number}", "format": "png"})


async def test_serve_survives_a_full_disk_and_finishes_every_accepted_job(
    processes: Processes, small_disk: Path
) -> None:
    assert processes.data_dir == small_disk
    serve = processes.serve(OFFLOAD_LEASE_SECONDS=str(LEASE_SECONDS))
    assert serve.base_url is not None
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=serve.base_url, timeout=15) as http:
        for number in range(5):
            response = await submit(http, number)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["id"])

        filler = await asyncio.to_thread(fill, small_disk)
        answers = []
        for number in range(5, 25):
            response = await submit(http, number)
            answers.append(response.status_code)
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            else:
                assert response.headers["content-type"] == "application/problem+json"
        processes.check(set(answers) <= {202, 503}, f"submits on a full disk got {answers}")
        processes.check(503 in answers, f"no submit was refused on a full disk: {answers}")
        ready = await http.get("/readyz")
        processes.check(ready.status_code == 503, f"/readyz on a full disk: {ready.text}")
        processes.check("disk" in ready.json()["checks"], ready.text)
        processes.check(ready.json()["checks"]["disk"] != "ok", ready.text)
        await asyncio.sleep(2 * LEASE_SECONDS)
        processes.check(serve.alive(), "serve died on a full disk")

        filler.unlink()
        for number in range(25, 30):
            response = await submit(http, number)
            processes.check(response.status_code == 202, f"after space freed: {response.text}")
            accepted.append(response.json()["id"])
        states = await final_states(http, accepted, timeout=6 * LEASE_SECONDS + 20)
        ready = await http.get("/readyz")

    unfinished = {job_id: state for job_id, state in states.items() if state != "succeeded"}
    processes.check(not unfinished, f"accepted jobs that did not succeed: {unfinished}")
    processes.check(ready.status_code == 200, f"/readyz after space was freed: {ready.text}")
    leftovers = sorted(str(path) for path in await asyncio.to_thread(small_disk.rglob, ".tmp-*"))
    processes.check(not leftovers, f"temporary files left behind: {leftovers}")


async def final_states(
    http: httpx.AsyncClient, job_ids: list[str], timeout: float
) -> dict[str, str]:
    deadline = asyncio.get_running_loop().time() + timeout
    states: dict[str, str] = {}
    while asyncio.get_running_loop().time() < deadline:
        for job_id in job_ids:
            response = await http.get(f"/v1/jobs/{job_id}")
            if response.status_code == 200:
                states[job_id] = response.json()["status"]
        if all(states.get(job_id) in TERMINAL for job_id in job_ids):
            break
        await asyncio.sleep(0.2)
    return states
