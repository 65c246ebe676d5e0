"""Uploads: how fast POST /v1/files takes a file, and what it costs in memory, against raw
disk writes and FastAPI's usual UploadFile route in the same run.

    .venv/bin/python -m bench.uploads [--mib 40] [--rounds 3]

1. raw: the bytes written to a file with sha256 and fsync, 64 KiB at a time (the floor).
2. in process (httpx's ASGI transport, no sockets): Offload's streamed route, and a bare
   FastAPI route taking ``UploadFile`` (Starlette spools the part to a temporary file) and
   copying it to storage while hashing, the common way; MiB/s and tracemalloc peak.
3. ``offload serve`` over loopback: MiB/s up and down, and the server's peak RSS (VmHWM)
   growth over an upload refused at 60 MiB (413) and one stored.
This is not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, UploadFile

from bench.common import free_port, load, say, spawn, stop, wait_healthy

MiB = 1 << 20
CHUNK = 64 * 1024
BOUNDARY = "bench-boundary"
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


async def multipart(size: int, block: bytes) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="b.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    for start in range(0, size, CHUNK):
        yield piece_of(block, start, size)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def piece_of(block: bytes, start: int, size: int) -> bytes:
    offset = start % len(block)
    return block[offset : offset + min(CHUNK, size - start)]


def raw_write(folder: Path, size: int, block: bytes) -> float:
    started = time.perf_counter()
    digest = hashlib.sha256()
    with (folder / "raw.bin").open("wb") as handle:
        for start in range(0, size, CHUNK):
            piece = piece_of(block, start, size)
            handle.write(piece)
            digest.update(piece)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    (folder / "raw.bin").unlink()
    return elapsed


def upload_file_app(folder: Path) -> Any:
    """The usual FastAPI route: UploadFile, then a copy to storage while hashing."""
    app = FastAPI()

    @app.post("/v1/files", status_code=201)
    async def receive(file: UploadFile) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        with (folder / "copy.bin").open("wb") as out:
            while chunk := await file.read(MiB):
                digest.update(chunk)
                size += len(chunk)
                await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(os.fsync, out.fileno())
        return {"size": size, "sha256": digest.hexdigest()}

    return app


async def in_process(app: Any, size: int, block: bytes, traced: bool) -> tuple[float, int]:
    """Seconds for one upload, and (``traced``: measured again under tracemalloc, which
    slows allocation) the peak of Python memory allocated meanwhile."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        response = await http.post("/v1/files", content=multipart(size, block), headers=HEADERS)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert response.json()["size"] == size
    return elapsed, peak


def best(runs: list[float]) -> float:
    return min(runs)


def peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no VmHWM")


async def served(folder: Path, size: int, block: bytes, rounds: int) -> dict[str, float]:
    port = free_port()
    from bench.common import PYTHON

    server = spawn([PYTHON, "-m", "service.cli", "serve", "--port", str(port)], folder, "serve.log")
    try:
        wait_healthy(port, server)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            warm = await http.post("/v1/files", files={"file": ("w.pdf", b"%PDF-1.4\n")})
            assert warm.status_code == 201, warm.text
            before = peak_rss_mb(server.pid)
            refused = await http.post(
                "/v1/files", content=multipart(60 * MiB, block), headers=HEADERS
            )
            assert refused.status_code == 413, refused.text
            ups, downs = [], []
            for _ in range(rounds):
                started = time.perf_counter()
                stored = await http.post(
                    "/v1/files", content=multipart(size, block), headers=HEADERS
                )
                ups.append(time.perf_counter() - started)
                assert stored.status_code == 201, stored.text
                started = time.perf_counter()
                async with http.stream("GET", f"/v1/files/{stored.json()['id']}") as download:
                    received = sum([len(piece) async for piece in download.aiter_bytes()])
                downs.append(time.perf_counter() - started)
                assert received == size
            grown = peak_rss_mb(server.pid) - before
    finally:
        stop(server)
    return {"up": best(ups), "down": best(downs), "rss_before": before, "rss_grown": grown}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * MiB
    block = os.urandom(4 * MiB)
    say(f"uploads of {args.mib} MiB, best of {args.rounds}; {load()}")
    folder = Path(tempfile.mkdtemp(prefix="offload-bench-uploads-"))
    os.environ["OFFLOAD_DATA_DIR"] = str(folder / "data")
    try:
        raw = best([raw_write(folder, size, block) for _ in range(args.rounds)])
        say(f"1. raw write + sha256 + fsync      {args.mib / raw:8.0f} MiB/s")

        from brokers.factory import build_backend
        from service.app import create_app
        from service.settings import Settings

        offload = create_app(
            build_backend(Settings(data_dir=folder / "data")), embedded_worker=False
        )
        usual = upload_file_app(folder)
        results: dict[str, tuple[float, int]] = {}
        runs: dict[str, Callable[[bool], Coroutine[Any, Any, tuple[float, int]]]] = {
            "offload": lambda traced: in_process(offload, size, block, traced),
            "UploadFile + copy": lambda traced: in_process(usual, size, block, traced),
        }
        for _ in range(args.rounds):  # interleaved, so both see the same machine load
            for name, run in runs.items():
                elapsed, _ = await run(False)
                previous = results.get(name, (elapsed, 0))
                results[name] = (min(previous[0], elapsed), 0)
        for name, run in runs.items():
            results[name] = (results[name][0], (await run(True))[1])
        for name, (elapsed, peak) in results.items():
            say(
                f"2. in process, {name:<18} {args.mib / elapsed:8.0f} MiB/s "
                f"({raw / elapsed:4.0%} of raw), tracemalloc peak {peak / MiB:5.1f} MiB"
            )
        ratio = results["UploadFile + copy"][0] / results["offload"][0]
        say(f"   offload takes an upload {ratio:.2f}x as fast as UploadFile + copy")

        serve = await served(folder, size, block, args.rounds)
        say(
            f"3. offload serve, loopback: up {args.mib / serve['up']:6.0f} MiB/s, down "
            f"{args.mib / serve['down']:6.0f} MiB/s; peak RSS {serve['rss_before']:.0f} MB, "
            f"+{serve['rss_grown']:.0f} MB over a 60 MiB refusal and {args.rounds} x "
            f"{args.mib} MiB stored"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
