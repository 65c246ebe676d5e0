"""A webhook receiver for tests: a tiny HTTP/1.1 server on a free 127.0.0.1 port.

It counts every TCP connection it accepts (not only complete requests), so a test that
expects Offload never to reach it can assert on ``connections == 0``: even a TLS hello or
a half-sent request would count. It runs in its own thread with its own event loop, so it
answers whatever the test's loop (or another process) is doing.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.support.processes import free_port


@dataclass
class Received:
    at: float
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=list)
    """Status of each answer in turn; once used up, 200."""
    location: str | None = None
    """Sent as ``Location`` with every 3xx answer."""
    connections: int = 0
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            method, path, _ = request_line.split(" ", 2)
            self.requests.append(Received(time.monotonic(), method, path, headers, body))
            index = len(self.requests) - 1
            status = self.statuses[index] if index < len(self.statuses) else 200
            extra = (
                f"location: {self.location}\r\n" if 300 <= status < 400 and self.location else ""
            )
            reply = f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}"
            writer.write(f"{reply}\r\nok".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


@contextmanager
def receiver(
    statuses: list[int] | None = None,
    location: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Receiver]:
    """Run a receiver for the block; it answers ``statuses`` in turn, then 200."""
    hook = Receiver(free_port(), list(statuses or []), location)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    server: list[asyncio.Server] = []

    async def start() -> None:
        server.append(await asyncio.start_server(hook._serve, "127.0.0.1", hook.port, ssl=tls))
        ready.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield hook
    finally:

        async def stop() -> None:
            server[0].close()
            await server[0].wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
