"""When the watcher stops a job: at once for async work, after the grace inside a CPU step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from brokers.factory import Backend
from brokers.stopping import RESEND_SECONDS, JobStopper, _Running

GRACE = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def parts(embedded_backend: Backend) -> AsyncIterator[tuple[JobStopper, Clock, _Running]]:
    clock = Clock()
    stopper = JobStopper(
        embedded_backend.store, poll_seconds=60, grace_seconds=GRACE, cpu_workers=1, clock=clock
    )
    task = asyncio.create_task(asyncio.sleep(600))
    running = _Running(task)
    stopper._running["job"] = running
    yield stopper, clock, running
    task.cancel()


async def test_async_work_is_cancelled_at_once(parts: tuple[JobStopper, Clock, _Running]) -> None:
    stopper, _, running = parts
    stopper.act(set())
    assert running.sends == 0
    stopper.act({"job", "someone-elses"})
    assert running.sends == 1
    await asyncio.sleep(0)
    assert running.task.cancelling() == 1


async def test_a_cpu_step_gets_its_grace_then_is_cancelled(
    parts: tuple[JobStopper, Clock, _Running],
) -> None:
    stopper, clock, running = parts
    running.cpu_steps = 1
    stopper.act({"job"})
    clock.now += GRACE - 0.1
    stopper.act({"job"})
    assert running.sends == 0
    clock.now += 0.1
    stopper.act({"job"})
    assert running.sends == 1


async def test_a_step_that_ends_within_the_grace_leaves_async_work_to_stop_at_once(
    parts: tuple[JobStopper, Clock, _Running],
) -> None:
    stopper, clock, running = parts
    running.cpu_steps = 1
    stopper.act({"job"})
    running.cpu_steps = 0
    clock.now += 0.2
    stopper.act({"job"})
    assert running.sends == 1


async def test_a_cancel_not_acted_on_is_sent_again_but_not_every_poll(
    parts: tuple[JobStopper, Clock, _Running],
) -> None:
    stopper, clock, running = parts
    stopper.act({"job"})
    clock.now += RESEND_SECONDS / 2
    stopper.act({"job"})
    assert running.sends == 1
    clock.now += RESEND_SECONDS
    stopper.act({"job"})
    assert running.sends == 2
