"""Uploads against a real ``offload serve``: the body is streamed from the socket to the disk
(the process's peak RSS barely moves for 60 MiB), a large file round-trips byte-identical,
and a slow upload is not cut off by the request deadline meant for small requests."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Proc, Processes

pytestmark = pytest.mark.slow

MiB = 1 << 20
BOUNDARY = "offload-system-boundary"
HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
    "Content-Type: application/octet-stream\r\n\r\n"
).encode()
TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
RSS_ALLOWANCE_MB = 20
"""Peak RSS may grow this much while 60 MiB goes by (a buffered body would add 60+)."""


def peak_rss_mb(proc: Proc) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


async def body(size: int, chunk: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    yield HEAD
    sent = 0
    while sent < size:
        piece = chunk[: min(len(chunk), size - sent)]
        sent += len(piece)
        yield piece
        if pause:
            await asyncio.sleep(pause)
    yield TAIL


async def test_uploads_stream_through_a_real_server(processes: Processes) -> None:
    serve = processes.serve()
    assert serve.base_url is not None
    chunk = os.urandom(MiB)
    async with httpx.AsyncClient(base_url=serve.base_url, timeout=60) as http:
        warm = await http.post("/v1/files", files={"file": ("a.pdf", b"%PDF-1.4\n", "x/y")})
        assert warm.status_code == 201, warm.text
        before = peak_rss_mb(serve)
        refused = await http.post("/v1/files", content=body(60 * MiB, chunk), headers=HEADERS)
        assert refused.status_code == 413, refused.text
        size = 40 * MiB + 7
        stored = await http.post("/v1/files", content=body(size, chunk), headers=HEADERS)
        assert stored.status_code == 201, stored.text
        grown = peak_rss_mb(serve) - before
        processes.check(grown < RSS_ALLOWANCE_MB, f"peak RSS grew {grown} MB for 60 + 40 MiB")
        info = stored.json()
        expected = hashlib.sha256()
        for start in range(0, size, MiB):
            expected.update(chunk[: min(MiB, size - start)])
        assert (info["size"], info["sha256"]) == (size, expected.hexdigest())
        received = hashlib.sha256()
        async with http.stream("GET", f"/v1/files/{info['id']}") as download:
            assert download.status_code == 200
            async for piece in download.aiter_bytes():
                received.update(piece)
        assert received.hexdigest() == expected.hexdigest()
    leftovers = list(processes.data_dir.rglob(".tmp-*"))
    assert leftovers == [], leftovers


async def test_a_slow_upload_gets_the_upload_deadline_not_the_request_one(
    processes: Processes,
) -> None:
    serve = processes.serve(
        OFFLOAD_REQUEST_TIMEOUT_SECONDS="1", OFFLOAD_UPLOAD_TIMEOUT_SECONDS="20"
    )
    assert serve.base_url is not None
    async with httpx.AsyncClient(base_url=serve.base_url, timeout=30) as http:
        slow = await http.post(
            "/v1/files", content=body(64 * 1024, b"x" * 4096, pause=0.2), headers=HEADERS
        )
        assert slow.status_code == 201, slow.text
        assert slow.json()["size"] == 64 * 1024
    processes.check(serve.alive(), "serve died")
