"""What one QR request can cost Offload: time, event-loop stalls and memory.

Three parts, each against real processes on a fresh embedded (SQLite) data directory::

    .venv/bin/python -m bench.qr_limits                 # all three, ~1 minute
    .venv/bin/python -m bench.qr_limits --only payload  # or worker, sync

* payload: ``offload serve``; ``POST /v1/jobs/qr`` with 1,040,000 characters of data (under
  the 1 MiB body limit) and with 7,089 (the most any QR code holds), while another thread
  asks ``/healthz`` back to back. Prints the time to the answer and the slowest ``/healthz``.
* worker: the API without its worker (``bench/serve_no_worker.py``) beside ``offload worker
  --processes 1``; one, then ``--jobs`` (32) of the largest PNG the API accepts (version 40,
  transparent background, so RGBA: 4 bytes a pixel), submitted at once. Prints the peak RSS
  (VmHWM) of the worker process that renders them.
* sync: ``offload serve``; ``--sync-requests`` (40) concurrent ``GET /v1/qr`` of the largest
  PNG the synchronous path accepts (512 bytes of data at level H). Prints the server's RSS
  before and at its peak, and how many were answered 200 and 429.

"Largest accepted" is worked out from the checked-out code: ``MAX_PNG_PIXELS`` when
``schemas.qr`` has it (before the pixel limit became ``OFFLOAD_QR_MAX_PIXELS``), else the
setting's value. Processes are started in their own session and stopped by pid.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.common import PYTHON, free_port, load, say, spawn, stop, wait_healthy

VERSION_40_MODULES = 177
SYNC_DATA = "a" * 512
"""The synchronous path takes at most 512 bytes; at level H they make a version 25 code."""
SYNC_MODULES = 117
TRANSPARENT = "#FFFFFF00"


def pixel_limit() -> int:
    from schemas import qr

    old_limit = getattr(qr, "MAX_PNG_PIXELS", None)
    if old_limit is not None:
        return int(old_limit)
    from service.settings import load_settings

    return int(load_settings().qr_max_pixels)


def largest_png(modules: int, limit: int) -> tuple[int, int]:
    """The (scale, border) with the most pixels within ``limit``; the larger border on ties."""
    best = (0, 0, 0)
    for scale in range(1, 51):
        for border in range(21):
            side = (modules + 2 * border) * scale
            if side * side <= limit:
                best = max(best, (side * side, border, scale))
    return best[2], best[1]


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


class HealthProbe:
    """Asks /healthz back to back in a thread; remembers each answer's latency."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.latencies: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                client.get(self.url).raise_for_status()
                self.latencies.append((started, time.perf_counter() - started))
                time.sleep(0.005)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def slowest_since(self, since: float) -> float:
        return max((latency for started, latency in self.latencies if started >= since), default=0)


def part_payload(root: Path) -> None:
    say("\n== payload: time to answer, and the slowest /healthz meanwhile ==")
    port = free_port()
    server = spawn([PYTHON, "-m", "service.cli", "serve", "--port", str(port)], root, "serve.log")
    try:
        wait_healthy(port, server)
        url = f"http://127.0.0.1:{port}/v1/jobs/qr"
        cases = [
            ("1,040,000 x 'A' (level M)", {"data": "A" * 1_040_000}),
            ("7,089 x 'A' at level H", {"data": "A" * 7089, "error_correction": "H"}),
            ("7,089 x '7' at level L (fits)", {"data": "7" * 7089, "error_correction": "L"}),
        ]
        with httpx.Client(timeout=120) as client, HealthProbe(port) as probe:
            for name, body in cases:
                for attempt in ("first", "again"):
                    started = time.perf_counter()
                    response = client.post(url, json=body)
                    took = time.perf_counter() - started
                    time.sleep(0.1)
                    message = ""
                    if response.status_code == 422:
                        message = response.json()["errors"][0]["message"][:70]
                    slowest = probe.slowest_since(started) * 1000
                    say(
                        f"  {name:<30} {attempt:<5} {response.status_code} in "
                        f"{took * 1000:7.1f} ms; slowest /healthz {slowest:7.1f} ms  {message}"
                    )
    finally:
        stop(server)


def submit_and_wait(client: httpx.Client, base: str, body: dict[str, Any], count: int) -> float:
    started = time.perf_counter()
    ids = []
    for _ in range(count):
        response = client.post(f"{base}/v1/jobs/qr", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
        ids.append(response.json()["id"])
    for job_id in ids:
        while (status := client.get(f"{base}/v1/jobs/{job_id}").json()["status"]) not in (
            "succeeded",
            "failed",
        ):
            time.sleep(0.05)
        if status != "succeeded":
            raise RuntimeError(f"job {job_id} {status}")
    return time.perf_counter() - started


def part_worker(root: Path, jobs: int) -> None:
    limit = pixel_limit()
    scale, border = largest_png(VERSION_40_MODULES, limit)
    side = (VERSION_40_MODULES + 2 * border) * scale
    say(
        f"\n== worker: largest accepted PNG job, limit {limit:,} px: scale {scale} border "
        f"{border}, {side}x{side} RGBA ({side * side * 4 / 2**20:,.0f} MiB of pixels) =="
    )
    body = {
        "data": "a" * 2953,
        "error_correction": "L",
        "scale": scale,
        "border": border,
        "light": TRANSPARENT,
    }
    for count in (1, jobs):
        data_dir = root / f"worker-{count}"
        data_dir.mkdir()
        port = free_port()
        api = spawn(
            [PYTHON, "-m", "bench.serve_no_worker", "--port", str(port)], data_dir, "api.log"
        )
        worker = spawn(
            [PYTHON, "-m", "service.cli", "worker", "--processes", "1"], data_dir, "worker.log"
        )
        try:
            wait_healthy(port, api)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(timeout=120) as client:
                submit_and_wait(client, base, {"data": "warm-up"}, 1)
                child = _only_child(worker.pid)
                idle = status_kib(child, "VmRSS")
                took = submit_and_wait(client, base, body, count)
                peak = status_kib(child, "VmHWM")
            say(
                f"  {count:>3} job(s): worker RSS idle {mib(idle)}, peak {mib(peak)}"
                f" (+{mib(peak - idle)}); all rendered in {took:.1f} s"
            )
        finally:
            stop(api)
            stop(worker)


def _only_child(pid: int) -> int:
    from bench.common import children_of

    deadline = time.monotonic() + 30
    while not (children := children_of(pid)):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker process did not start")
        time.sleep(0.05)
    return children[0]


def part_sync(root: Path, requests: int) -> None:
    limit = pixel_limit()
    scale, border = largest_png(SYNC_MODULES, limit)
    side = (SYNC_MODULES + 2 * border) * scale
    say(
        f"\n== sync: {requests} concurrent GET /v1/qr, limit {limit:,} px: scale {scale} border "
        f"{border}, {side}x{side} RGBA =="
    )
    port = free_port()
    server = spawn([PYTHON, "-m", "service.cli", "serve", "--port", str(port)], root, "sync.log")
    params = {
        "data": SYNC_DATA,
        "error_correction": "H",
        "scale": scale,
        "border": border,
        "light": TRANSPARENT,
    }
    url = f"http://127.0.0.1:{port}/v1/qr"
    try:
        wait_healthy(port, server)
        with httpx.Client(timeout=120) as client:
            client.get(url, params={"data": "warm-up"}).raise_for_status()
        before = status_kib(server.pid, "VmRSS")
        peak_threads = 0
        done = threading.Event()

        def watch_threads() -> None:
            nonlocal peak_threads
            while not done.is_set():
                peak_threads = max(peak_threads, status_kib(server.pid, "Threads"))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch_threads, daemon=True)
        watcher.start()

        def one(_: int) -> tuple[int, float]:
            started = time.perf_counter()
            with httpx.Client(timeout=300) as client:
                status = client.get(url, params=params).status_code
            return status, time.perf_counter() - started

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(requests) as pool:
            answers = list(pool.map(one, range(requests)))
        took = time.perf_counter() - started
        done.set()
        watcher.join()
        peak = status_kib(server.pid, "VmHWM")
        statuses = Counter(status for status, _ in answers)
        slowest = max(latency for _, latency in answers)
        say(
            f"  server RSS before {mib(before)}, peak {mib(peak)} (+{mib(peak - before)}); "
            f"peak threads {peak_threads}; answers {dict(sorted(statuses.items()))}; "
            f"all in {took:.1f} s, slowest {slowest:.2f} s"
        )
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=["payload", "worker", "sync"])
    parser.add_argument("--jobs", type=int, default=32, help="largest PNG jobs at once")
    parser.add_argument("--sync-requests", type=int, default=40)
    args = parser.parse_args()
    parts = args.only or ["payload", "worker", "sync"]
    say(f"qr_limits: {load()}; {math.floor(pixel_limit()):,} pixel limit in this checkout")
    with tempfile.TemporaryDirectory(prefix="offload-qr-limits-") as tmp:
        root = Path(tmp)
        if "payload" in parts:
            part_payload(root)
        if "worker" in parts:
            part_worker(root, args.jobs)
        if "sync" in parts:
            part_sync(root, args.sync_requests)


if __name__ == "__main__":
    main()
