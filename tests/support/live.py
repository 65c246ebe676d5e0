"""The app under a real uvicorn server in the test's event loop, and an SSE reader.

httpx's ASGITransport hands over a response only once it is complete, so a stream that
stays open could never be read through it; a real server on a loopback port can.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from tests.support.processes import free_port


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for ``app`` served by uvicorn on 127.0.0.1 (lifespan included)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
        ) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@dataclass
class Event:
    event: str
    id: int
    job: dict[str, Any]


@dataclass
class EventStream:
    """What one SSE response said: its events and how many keep-alive comments it sent."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    async def events(self) -> AsyncIterator[Event]:
        """Each event as it arrives; ends when the server closes the stream."""
        fields: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line)
            elif line == "":
                if "data" in fields:
                    yield Event(fields["event"], int(fields["id"]), json.loads(fields["data"]))
                fields = {}
            else:
                name, _, value = line.partition(":")
                if name == "retry":
                    self.retry = int(value.strip())
                else:
                    fields[name] = value.removeprefix(" ")

    def __post_init__(self) -> None:
        self._events = self.events()

    async def next(self, timeout: float = 10) -> Event:
        """The next event; fails if none comes within ``timeout`` or the stream ends."""
        return await asyncio.wait_for(anext(self._events), timeout)

    async def rest(self, timeout: float = 10) -> list[Event]:
        """Every event until the server closes the stream."""

        async def collect() -> list[Event]:
            return [event async for event in self._events]

        return await asyncio.wait_for(collect(), timeout)


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, job_id: str, last_event_id: int | None = None
) -> AsyncIterator[EventStream]:
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    async with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)
