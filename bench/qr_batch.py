"""Bulk QR end to end: items/s of a qr_batch job against a plain qrcode PNG loop, and memory.

    .venv/bin/python -m bench.qr_batch                   # 1k and 10k, zip png and svg, ~1 min
    .venv/bin/python -m bench.qr_batch --sizes 1000

One run, one process: the API with its embedded worker (SQLite backend, fresh data
directory, the CPU pool with one process per core) through httpx's ASGI transport, as the
tests drive it. For each size and output a job is submitted and timed from submit to
succeeded; items/s is the batch size over the best of ``--repeat`` (3) runs, as the
machine is shared. The baseline is the plain ``qrcode``
loop (QRCode, add_data, make_image, PNG save) on the same payloads in this process, one core.

Memory, for each job (run again with tracing on, as tracemalloc slows this process): the
peak of Python allocations in the API/worker process while the job runs, from the moment
the submit returns (so it counts the worker's parsed copy of the inline request, which
grows with the items), and the peak RSS (VmHWM) of the CPU pool's processes. Then the
same zip png jobs from an uploaded CSV, whose rows are streamed: no request grows with the
items. Then the writer alone (items drawn and archived in this process, the request parsed
before tracing starts): the ZIP's central directory is spooled to disk, so that stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

os.environ["OFFLOAD_DATA_DIR"] = tempfile.mkdtemp(prefix="offload-bench-qr-batch-")
os.environ.pop("OFFLOAD_BROKER_URL", None)

import httpx
import qrcode

import tasks  # noqa: F401
from bench.common import load, say
from brokers import backend
from schemas.qr_batch import QrBatchOptions
from service.app import create_app
from tasks.qr_batch_archive import QrArchive
from tasks.qr_batch_draw import DrawOptions, draw_chunk
from tasks.qr_batch_items import inline_items
from tasks.qr_batch_pipeline import chunks

BASELINE_ITEMS = 1000
SCALE = 10


def payloads(count: int) -> list[dict[str, str]]:
    kinds = ["https://example.com/orders/{i}?ref=qr", "ORDER-{i:08d}", "Grüße aus Köln #{i}"]
    return [
        {"data": kinds[i % 3].format(i=i), "name": f"order {i}", "label": f"Order {i}"}
        for i in range(count)
    ]


def csv_content(items: list[dict[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=["data", "name", "label"])
    writer.writeheader()
    writer.writerows(items)
    return out.getvalue().encode("utf-8")


def qrcode_loop(items: list[dict[str, str]]) -> float:
    started = time.perf_counter()
    for item in items:
        qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=SCALE)
        qr.add_data(item["data"])
        qr.make_image().save(io.BytesIO())
    return len(items) / (time.perf_counter() - started)


def pool_peak_rss_kib() -> int:
    """Largest VmHWM among this process's children (the CPU pool's processes)."""
    peak = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children = (task / "children").read_text().split()
        for pid in children:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except FileNotFoundError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak


async def run_job(
    client: httpx.AsyncClient, body: dict[str, Any], traced: bool = False
) -> tuple[float, int, dict[str, Any]]:
    """Seconds from submit to succeeded (polled as a client would, every POLL_SECONDS), the
    Python allocation peak while it ran (``traced``: tracemalloc on, which slows this
    process, so timed runs go without it), and the job."""
    started = time.perf_counter()
    response = await client.post("/v1/jobs/qr-batch", json=body)
    assert response.status_code == 202, response.text
    if traced:
        tracemalloc.start()
    job_id = response.json()["id"]
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 1})).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
    elapsed = time.perf_counter() - started
    peak = 0
    if traced:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert job["status"] == "succeeded", job
    return elapsed, peak, job


def writer_peak(size: int, fmt: str, folder: Path) -> int:
    """Python allocation peak of drawing and archiving ``size`` items in this process."""
    request = QrBatchOptions.model_validate({"items": payloads(size), "format": fmt})
    draw = DrawOptions(format=request.format, scale=SCALE, border=4, max_png_pixels=4_000_000)
    tracemalloc.start()
    with QrArchive(folder / f"{fmt}-{size}.zip") as archive:
        for chunk in chunks(inline_items(request)):
            for drawn in draw_chunk(chunk, draw):
                archive.add(drawn)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--formats", nargs="+", default=["png", "svg", "pdf"])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best counts")
    args = parser.parse_args()
    say(f"cores {len(os.sched_getaffinity(0))}, scale {SCALE}; {load()}")
    baseline = qrcode_loop(payloads(BASELINE_ITEMS))
    say(f"plain qrcode PNG loop: {baseline:.0f} items/s ({BASELINE_ITEMS} items, one core)")
    app = create_app(backend, embedded_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await run_job(client, {"items": payloads(50)})  # starts the pool
            for fmt in args.formats:
                for size in args.sizes:
                    body: dict[str, Any] = {"items": payloads(size), "format": fmt, "scale": SCALE}
                    if fmt == "pdf":
                        body = {"items": payloads(size), "output": "pdf"}
                    runs = [await run_job(client, body) for _ in range(args.repeat)]
                    elapsed, _, job = min(runs, key=lambda run: run[0])
                    _, peak, _ = await run_job(client, body, traced=True)
                    rate = size / elapsed
                    size_mib = job["result"]["files"][0]["size"] / 2**20
                    output = "pdf" if fmt == "pdf" else f"zip {fmt}"
                    say(
                        f"{output} {size:>6}: {rate:6.0f} items/s ({elapsed:5.2f} s, "
                        f"{rate / baseline:4.1f}x the qrcode loop), archive {size_mib:5.1f} MiB, "
                        f"worker-process Python peak {peak / 2**20:5.1f} MiB, "
                        f"pool process peak RSS {pool_peak_rss_kib() / 1024:5.1f} MiB"
                    )
            for size in args.sizes:
                content = csv_content(payloads(size))
                files = {"file": ("items.csv", content, "text/csv")}
                uploaded = (await client.post("/v1/files", files=files)).json()
                body = {"csv_file_id": uploaded["id"], "scale": SCALE}
                elapsed, _, job = await run_job(client, body)
                _, peak, _ = await run_job(client, body, traced=True)
                say(
                    f"zip png {size:>6} from a CSV upload: {size / elapsed:6.0f} items/s, "
                    f"worker-process Python peak {peak / 2**20:5.1f} MiB (the input streamed)"
                )
    with tempfile.TemporaryDirectory() as folder:
        for fmt in [fmt for fmt in args.formats if fmt != "pdf"]:
            peaks = [writer_peak(size, fmt, Path(folder)) / 2**20 for size in args.sizes]
            shown = ", ".join(f"{s}: {p:.1f} MiB" for s, p in zip(args.sizes, peaks, strict=True))
            say(f"writer alone, zip {fmt}, Python peak: {shown}")


if __name__ == "__main__":
    asyncio.run(main())
