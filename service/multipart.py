"""A multipart/form-data body read as a stream: one part's bytes go where they are wanted as
they arrive, so no upload is ever whole in memory or spooled to a second temporary file.

python-multipart's push parser calls back for each piece it finds; this turns those calls
into ``await stream.next_part()`` and ``async for chunk in stream.data()``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

MAX_PARTS = 16
"""Parts read before the one wanted (form fields beside the file); more is not an upload."""


class MalformedMultipartError(Exception):
    """The body is not a complete multipart/form-data stream."""


class BodyTooLargeError(Exception):
    """The body passed the bytes allowed in all."""


@dataclass(frozen=True)
class Part:
    field: str
    filename: str | None
    content_type: str | None


_Event = tuple[str, bytes]


class MultipartStream:
    def __init__(self, content_type: str, body: AsyncIterator[bytes], max_body_bytes: int) -> None:
        media_type, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if media_type != b"multipart/form-data" or not boundary:
            raise MalformedMultipartError("the body must be multipart/form-data with a boundary")
        self._body = body
        self._max_body_bytes = max_body_bytes
        self._received = 0
        self._events: deque[_Event] = deque()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    async def next_part(self) -> Part | None:
        """The next part's headers (skipping what is left of the current one), or None at
        the end of the body."""
        while True:
            kind, _ = await self._next_event()
            if kind == "headers":
                return _part(self._headers)
            if kind == "end":
                return None

    async def find(self, field: str) -> Part | None:
        """The first part named ``field``; the parts before it are skipped."""
        for _ in range(MAX_PARTS):
            part = await self.next_part()
            if part is None or part.field == field:
                return part
        raise MalformedMultipartError(f"no {field!r} part among the first {MAX_PARTS}")

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes; ends when the part does (an error if the body ends
        first: a cut-off upload must never look complete)."""
        while True:
            kind, value = await self._next_event()
            if kind == "data":
                yield value
            elif kind == "part_end":
                return
            else:
                raise MalformedMultipartError("a part ended without its boundary")

    async def finish(self) -> None:
        """Read the rest of the body, so that it is known to be a whole multipart stream."""
        while (await self._next_event())[0] != "end":
            pass

    async def _next_event(self) -> _Event:
        while not self._events:
            if self._ended:
                return ("end", b"")
            try:
                chunk = await anext(self._body)
            except StopAsyncIteration:
                raise MalformedMultipartError(
                    "the body ended before its closing boundary"
                ) from None
            self._received += len(chunk)
            if self._received > self._max_body_bytes:
                raise BodyTooLargeError(f"the body may be at most {self._max_body_bytes} bytes")
            try:
                self._parser.write(chunk)
            except MultipartParseError as error:
                raise MalformedMultipartError(f"not a multipart/form-data body: {error}") from None
        return self._events.popleft()

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(("headers", b""))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(("data", data[start:end]))

    def _on_part_end(self) -> None:
        self._events.append(("part_end", b""))

    def _on_end(self) -> None:
        self._ended = True
        self._events.append(("end", b""))


def _part(headers: dict[bytes, bytes]) -> Part:
    disposition, options = parse_options_header(headers.get(b"content-disposition"))
    if disposition != b"form-data" or b"name" not in options:
        raise MalformedMultipartError("a part has no Content-Disposition: form-data; name=...")
    filename = options.get(b"filename")
    content_type = headers.get(b"content-type")
    return Part(
        field=options[b"name"].decode("utf-8", "replace"),
        filename=None if filename is None else filename.decode("utf-8", "replace"),
        content_type=None if content_type is None else content_type.decode("latin-1"),
    )
