"""What stopping work costs: the CPU pool against a thread, and cancel to ``cancelled``.

    .venv/bin/python -m bench.stopping [--calls 300] [--jobs 300] [--cancels 20]

Three figures, in one process on the embedded backend (the worker runs in the process, as
``offload serve`` does):

1. one call, median and p90: a no-op and a small QR render, in a thread (asyncio.to_thread,
   what the QR job used) and in the CPU pool (pebble, spawned processes);
2. small QR jobs drained end to end (submit, render, store, record), the job rendering in
   the pool against the same job rendering in a thread;
3. time from POST /cancel to the job reading ``cancelled``, for a job awaiting with no
   checkpoint (the watcher's poll is OFFLOAD_CANCEL_POLL_SECONDS, 0.2 s by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("OFFLOAD_DATA_DIR", tempfile.mkdtemp(prefix="offload-bench-stop-"))
os.environ.pop("OFFLOAD_BROKER_URL", None)

import httpx

from brokers import backend, broker
from brokers.cpu_pool import CpuPool
from schemas.jobs import JobResult
from schemas.qr import QrOptions
from service.app import create_app
from service.submission import submit_job
from tasks.deps import AttemptDep
from tasks.qr import render_qr_job
from tasks.qr_render import render_within_limits
from tests.support.cpu_work import double
from tests.support.stop_tasks import silent_sleep

SMALL = QrOptions(data="https://example.com/order/12345")


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201


@broker.task(task_name="bench.qr_in_a_thread")
async def qr_in_a_thread(options: QrOptions, attempt: AttemptDep) -> dict[str, Any]:
    """The QR job as it was: the render in a thread."""
    limit = attempt.backend.settings.qr_max_pixels
    rendered = await asyncio.to_thread(render_within_limits, options, limit)
    stored = await attempt.save_file(
        "qr", f"qr.{rendered.extension}", rendered.content, rendered.content_type
    )
    return JobResult(data={"format": options.format.value}, files=[stored]).model_dump(mode="json")


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered) * 1e3:.3f} ms, p90 {p90 * 1e3:.3f} ms"


async def timed(call: Callable[[], Awaitable[object]], times: int) -> list[float]:
    for _ in range(20):
        await call()
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def calls(times: int) -> None:
    pool = CpuPool(workers=1)
    start = time.perf_counter()
    await pool.run(double, 1)
    say(f"pool start and first call: {time.perf_counter() - start:.2f} s")
    cases: list[tuple[str, Callable[..., object], tuple[Any, ...]]] = [
        ("no-op", double, (1,)),
        ("small QR render", render_within_limits, (SMALL, 4_000_000)),
    ]
    for name, fn, args in cases:
        thread = await timed(lambda fn=fn, args=args: asyncio.to_thread(fn, *args), times)
        pooled = await timed(lambda fn=fn, args=args: pool.run(fn, *args), times)
        extra = statistics.median(pooled) - statistics.median(thread)
        say(f"{name:16} thread {summary(thread)} | pool {summary(pooled)} | +{extra * 1e3:.3f} ms")
    await asyncio.to_thread(pool.close)


async def until(client: httpx.AsyncClient, job_id: str, status: str) -> None:
    while True:
        if (await client.get(f"/v1/jobs/{job_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.005)


async def drain(client: httpx.AsyncClient, task: Any, jobs: int) -> float:
    start = time.perf_counter()
    ids = [
        (await submit_job(backend, task, tenant="local", kind="qr", request=SMALL.model_dump())).id
        for _ in range(jobs)
    ]
    for job_id in ids:
        await until(client, job_id, "succeeded")
    return time.perf_counter() - start


async def cancels(client: httpx.AsyncClient, count: int) -> list[float]:
    took = []
    for _ in range(count):
        record = await submit_job(
            backend, silent_sleep, tenant="local", kind="qr", request={"seconds": 600}
        )
        await until(client, record.id, "running")
        start = time.perf_counter()
        await client.post(f"/v1/jobs/{record.id}/cancel")
        await until(client, record.id, "cancelled")
        took.append(time.perf_counter() - start)
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--cancels", type=int, default=20)
    args = parser.parse_args()
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    await calls(args.calls)
    app = create_app(backend, embedded_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await drain(client, render_qr_job, 20)  # starts the pool
            for round_ in (1, 2):
                thread = await drain(client, qr_in_a_thread, args.jobs)
                pooled = await drain(client, render_qr_job, args.jobs)
                say(
                    f"small QR jobs, round {round_}: thread {args.jobs / thread:.0f} jobs/s "
                    f"({thread / args.jobs * 1e3:.2f} ms each), pool {args.jobs / pooled:.0f} "
                    f"jobs/s ({pooled / args.jobs * 1e3:.2f} ms each), "
                    f"pool/thread time {pooled / thread:.2f}"
                )
            took = await cancels(client, args.cancels)
            say(f"cancel to cancelled (silent async job, {args.cancels} jobs): {summary(took)}")


if __name__ == "__main__":
    asyncio.run(main())
