"""Pipelining by the event-loop turn: commands issued together share one round trip.

A worker finishing and acknowledging several jobs at once would otherwise pay one network
round trip per write; each caller still awaits its own command's reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

Command = Callable[[Pipeline], Any]


class RedisBatch:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def run(self, command: Command) -> Awaitable[Any]:
        """Queue one command (added to a pipeline by ``command``); await its reply."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, future))
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_soon(self._start_flush)
        return future

    def _start_flush(self) -> None:
        pending, self._pending = self._pending, []
        self._scheduled_on = None
        task = asyncio.create_task(self._flush(pending))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, pending: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for command, _ in pending:
                    command(pipe)
                replies = await pipe.execute(raise_on_error=False)
            # A Redis that restarted (or ran SCRIPT FLUSH) lost the scripts: load them again
            # (SCRIPT EXISTS + LOAD) and rerun only the commands that answered NOSCRIPT.
            again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if again:
                _LOADED.clear()
                async with self.redis.pipeline(transaction=False) as pipe:
                    for i in again:
                        pending[i][0](pipe)
                    for i, reply in zip(
                        again, await pipe.execute(raise_on_error=False), strict=True
                    ):
                        replies[i] = reply
        except Exception as error:
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), reply in zip(pending, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)


_LOADED: set[str] = set()
"""Scripts known to be loaded; cleared when Redis answers NOSCRIPT."""


def call_script(script: Any, keys: list[str], args: list[Any]) -> Command:
    """A registered Lua script as a batched command (loaded by the pipeline if needed)."""

    def add(pipe: Pipeline) -> None:
        # redis-py sends SCRIPT EXISTS (a round trip of its own) before every pipeline that
        # carries scripts; check each script once per process instead.
        if script.sha not in _LOADED:
            pipe.scripts.add(script)
            _LOADED.add(script.sha)
        pipe.evalsha(script.sha, len(keys), *keys, *args)

    return add
