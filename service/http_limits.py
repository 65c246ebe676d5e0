"""What one connection may cost ``offload serve``: a bounded request head, a bounded wait.

uvicorn's httptools protocol buffers a request line and headers of any size (20 connections
sending 50 MB headers that never end took the server from 95 MB to 546 MB) and waits forever
for a request that stops arriving, so idle or stalled connections pile up. This protocol
adds both limits and keeps httptools' speed: uvicorn's h11 protocol has a head limit, but
served a third fewer small requests per second here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_PREFIX, Problem

logger = logging.getLogger("offload.http")

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class LimitedHttpProtocol(HttpToolsProtocol):
    """HTTP/1.1 with a cap on the request head and a deadline for the whole request.

    The head (request line and headers) may be at most ``max_head_bytes``; past that the
    client gets 431 and the connection is closed, so no more of it is buffered. A request
    must arrive in full (head and body) within ``request_timeout`` seconds of the
    connection being made or of its first byte; otherwise the client gets 408 (or, if it
    sent nothing, the connection is simply closed). Idle keep-alive connections are
    uvicorn's to close (``timeout_keep_alive``); a handler's own run time is not limited.
    """

    max_head_bytes: ClassVar[int] = 64 * 1024
    request_timeout: ClassVar[float] = 30.0
    upload_paths: ClassVar[frozenset[str]] = frozenset()
    """Paths whose bodies are large uploads: once their head is in, the deadline becomes
    ``upload_timeout`` from then (50 MiB at 2 MB/s takes 25 s, close to the default 30)."""
    upload_timeout: ClassVar[float] = 600.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._heads_read = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._timeout = self.request_timeout

    # -- the head ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        heads_before, was_reading_head = self._heads_read, self._reading_head
        super().data_received(data)
        # Counted after parsing, and only a chunk read wholly within a head: one that also
        # carries the body of a request whose head ends in it is not held against that head,
        # nor one that ends a body (a large body's last read) against the next request's.
        if heads_before != self._heads_read:
            self._head_bytes = 0
        elif was_reading_head and self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    "Request header fields too large",
                    f"the request line and headers may be at most {self.max_head_bytes} bytes",
                )

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._heads_read += 1
        super().on_headers_complete()
        if self.scope["method"] == "POST" and self.scope["path"] in self.upload_paths:
            self._disarm_deadline()
            self._arm_deadline(self.upload_timeout)

    # -- the deadline ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._arm_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm_deadline()
        self._reading_head = True
        self._head_bytes = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        self._disarm_deadline()  # the connection now belongs to the WebSocket protocol
        super().handle_websocket_upgrade()

    def _arm_deadline(self, timeout: float | None = None) -> None:
        self._timeout = self.request_timeout if timeout is None else timeout
        self._deadline = self.loop.call_later(self._timeout, self._request_timed_out)

    def _disarm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_head and self._head_bytes == 0:
            self.transport.close()  # nothing was asked: nothing to answer
            return
        self._refuse(
            408,
            "Request timeout",
            f"the request did not arrive in full within {self._timeout:g} s",
        )

    # -- refusing ----------------------------------------------------------------------------

    def _refuse(self, status: int, title: str, detail: str) -> None:
        logger.warning("%s from %s: %s", title, _address(self.client), detail)
        if self._no_other_response_pending():
            self.transport.write(self._problem_response(status, title, detail))
        self.transport.close()

    def _no_other_response_pending(self) -> bool:
        """Whether a response written now answers the request being read, in order."""
        if self._reading_head:  # the request has no cycle yet; self.cycle is an earlier one
            return self.cycle is None or self.cycle.response_complete
        return not self.pipeline and (self.cycle is None or not self.cycle.response_started)

    def _problem_response(self, status: int, title: str, detail: str) -> bytes:
        problem = Problem(
            type=PROBLEM_TYPE_PREFIX + title.lower().replace(" ", "-"),
            title=title,
            status=status,
            detail=detail,
        )
        body = problem.model_dump_json(exclude_none=True).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        return b"".join(head) + body


def limited_http_protocol(
    max_head_bytes: int,
    request_timeout: float,
    upload_paths: frozenset[str] = frozenset(),
    upload_timeout: float = 600.0,
) -> type[LimitedHttpProtocol]:
    """The protocol class for uvicorn's ``http=``, with these limits."""

    class Configured(LimitedHttpProtocol):
        pass

    Configured.max_head_bytes = max_head_bytes
    Configured.request_timeout = request_timeout
    Configured.upload_paths = upload_paths
    Configured.upload_timeout = upload_timeout
    return Configured


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown client"
