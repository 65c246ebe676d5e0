"""The CPU pool: steps run in processes that can be killed, and a killed one is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from brokers.cpu_pool import POOL_PROCESS_NAME, CpuPool, CpuStepDied
from schemas.qr import QrOptions
from tasks.qr_render import render_within_limits
from tests.support.cpu_work import double, spin_forever, whoami
from tests.support.pids import wait_for_pid, wait_gone


@pytest.fixture
async def pool() -> AsyncIterator[CpuPool]:
    cpu = CpuPool(workers=1)
    yield cpu
    await asyncio.to_thread(cpu.close)


async def test_a_pool_process_imports_no_broker_and_no_service(pool: CpuPool) -> None:
    """Importing a step's module must not build a broker, a server or a heartbeat."""
    me = await pool.run(whoami)
    assert me["name"] == POOL_PROCESS_NAME
    assert me["pid"] != os.getpid()
    assert me["offload_modules"] == [], me


async def test_cancelling_a_step_kills_its_process_and_the_pool_goes_on(
    pool: CpuPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    step = asyncio.create_task(pool.run(spin_forever, str(pid_file)))
    pid = await wait_for_pid(pid_file)
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    await wait_gone(pid)
    assert await pool.run(double, 21) == 42
    assert (await pool.run(whoami))["pid"] != pid


async def test_a_step_whose_process_is_killed_from_outside_fails_and_the_pool_goes_on(
    pool: CpuPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    step = asyncio.create_task(pool.run(spin_forever, str(pid_file)))
    os.kill(await wait_for_pid(pid_file), signal.SIGKILL)
    with pytest.raises(CpuStepDied) as died:
        await step
    assert died.value.retryable
    assert await pool.run(double, 2) == 4


async def test_steps_cut_short_by_close_are_handed_back_not_failed(
    pool: CpuPool, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    step = asyncio.create_task(pool.run(spin_forever, str(pid_file)))
    pid = await wait_for_pid(pid_file)
    await asyncio.to_thread(pool.close)
    with pytest.raises(asyncio.CancelledError):
        await step
    await wait_gone(pid)
    with pytest.raises(asyncio.CancelledError):
        await pool.run(double, 1)
    pool.reopen()
    assert await pool.run(double, 3) == 6


async def test_rendering_a_qr_code_in_the_pool_does_not_import_the_broker(pool: CpuPool) -> None:
    """tasks/__init__ registers no tasks in a pool process, so the QR step stays light."""
    rendered = await pool.run(render_within_limits, QrOptions(data="light"), 4_000_000)
    assert rendered.content.startswith(b"\x89PNG")
    me = await pool.run(whoami)  # the same (only) pool process
    assert me["offload_modules"] == [], me
