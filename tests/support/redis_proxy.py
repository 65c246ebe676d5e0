"""A TCP proxy in front of redis-server that loses replies and goes dark on demand.

A connection that breaks after Redis ran a command but before its reply arrived is what
makes redis-py send the command again (with ``retry_on_error``): the proxy produces exactly
that, so a test can show that a write is safe to repeat, or what happens when the client
cannot learn whether it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass, field

_QUIET_SECONDS = 0.05
"""After the first byte of a lost reply, how long the rest of it (a pipeline's) may take."""


def evalsha_of(script: str) -> bytes:
    """The bytes on the wire (RESP) of an EVALSHA that runs ``script``."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    return b"EVALSHA\r\n$40\r\n" + sha.encode()


@dataclass
class LostReply:
    """One request whose reply the proxy swallows; filled in as it happens."""

    pattern: bytes
    go_dark: bool
    request: bytes = b""
    reply: bytes = b""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.done.wait(), timeout)


class _Link:
    """One client connection and the proxy's own connection to Redis for it."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        redis: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.redis_reader, self.redis_writer = redis
        self.losing: LostReply | None = None

    def cut(self) -> None:
        self.client_writer.close()
        self.redis_writer.close()


class RedisProxy:
    """Forwards 127.0.0.1:``port`` to a redis-server; see :meth:`lose_reply`, :meth:`go_dark`."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.port = 0
        self.dark = False
        self.frozen = False
        """Bytes are dropped both ways and connections stay open: a cut cable."""
        self.refused = 0
        """Connections turned away while dark."""
        self._armed: LostReply | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.cut()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def lose_reply(self, pattern: bytes, *, then_go_dark: bool = False) -> LostReply:
        """Forward the next request containing ``pattern`` to Redis, then cut its connection
        instead of returning the reply; with ``then_go_dark``, refuse everything after it."""
        self._armed = LostReply(pattern, then_go_dark)
        return self._armed

    def go_dark(self) -> None:
        """Cut every connection and turn new ones away, as if Redis could not be reached."""
        self.dark = True
        for link in list(self._links):
            link.cut()

    def restore(self) -> None:
        self.dark = False
        self.frozen = False

    def freeze(self) -> None:
        """Drop every byte both ways from now on but close nothing, as when a cable is cut
        or a host vanishes: a client hears nothing, not even that the connection died."""
        self.frozen = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.dark:
            self.refused += 1
            writer.close()
            return
        try:
            redis = await asyncio.open_connection("127.0.0.1", self.redis_port)
        except OSError:
            writer.close()
            return
        link = _Link((reader, writer), redis)
        self._links.add(link)
        pumps = {
            asyncio.create_task(self._to_redis(link)),
            asyncio.create_task(self._to_client(link)),
        }
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            link.cut()
            self._links.discard(link)
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def _to_redis(self, link: _Link) -> None:
        tail = b""
        with contextlib.suppress(ConnectionError):
            while data := await link.client_reader.read(65536):
                armed = self._armed
                if armed is not None and armed.pattern in tail + data:
                    # Set before forwarding, so not a byte of the reply gets through.
                    self._armed, link.losing = None, armed
                    armed.request = data
                tail = (tail + data)[-256:]
                if self.frozen:
                    continue
                link.redis_writer.write(data)
                await link.redis_writer.drain()

    async def _to_client(self, link: _Link) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await link.redis_reader.read(65536):
                if self.frozen:
                    continue
                if link.losing is None:
                    link.client_writer.write(data)
                    await link.client_writer.drain()
                    continue
                await self._swallow(link, link.losing, data)
                return

    async def _swallow(self, link: _Link, lost: LostReply, first: bytes) -> None:
        """Redis ran the request (it answered): keep the answer from the client and cut."""
        lost.reply = first
        with contextlib.suppress(TimeoutError):
            while more := await asyncio.wait_for(link.redis_reader.read(65536), _QUIET_SECONDS):
                lost.reply += more
        if lost.go_dark:
            self.go_dark()
        link.cut()
        lost.done.set()
