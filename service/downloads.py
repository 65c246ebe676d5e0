"""Serving a stored file: one set of headers for uploads and job results alike."""

from __future__ import annotations

import asyncio
import os
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import anyio
from fastapi import Request, Response, status
from fastapi.responses import FileResponse
from starlette.responses import MalformedRangeHeader
from starlette.types import Receive, Scope, Send

SAFE_HEADERS = {
    "Cache-Control": "private, max-age=0",
    "X-Content-Type-Options": "nosniff",
    # A PDF or SVG opened from the API's origin runs nothing and reaches nothing.
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Unchanged since the ETag given in If-None-Match."}
}


async def file_download(
    request: Request, path: Path, media_type: str, name: str, sha256: str
) -> Response:
    """``path`` as an attachment named ``name``, its ETag the content's sha256; 304 when the
    client's If-None-Match already names it. Raises FileNotFoundError if ``path`` is gone;
    once this returns, removing the file no longer affects the download."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, **SAFE_HEADERS, "Content-Disposition": content_disposition(name)}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    handle = await asyncio.to_thread(path.open, "rb")
    return OpenedFileResponse(handle, media_type=media_type, headers=headers)


class OpenedFileResponse(FileResponse):
    """A FileResponse streamed from a file opened before the answer began: a DELETE or the
    purge removing the file meanwhile cannot turn it into a 500 or cut it short. A Range
    that is not understood is ignored (the whole file), as RFC 9110 14.2 asks."""

    def __init__(self, handle: BinaryIO, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(
            handle.name,
            media_type=media_type,
            headers=headers,
            stat_result=os.fstat(handle.fileno()),
        )
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._handle.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        yield anyio.wrap_file(self._handle)

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: a list of tags, weak ones compared weakly, or ``*``."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def content_disposition(name: str) -> str:
    """An attachment named ``name`` (RFC 6266): ``filename*`` carries it whole and
    ``filename`` an ASCII stand-in for clients that read only that one (curl -OJ)."""
    name = download_name(name)
    ascii_name = "".join(
        char if " " <= char <= "~" and char not in '"\\%' else "_"
        for char in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(char)
    )
    if ascii_name == name:
        return f'attachment; filename="{name}"'
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_name(name: str) -> str:
    """A file name for Content-Disposition: no control or direction characters (an RTL
    override can make ``x.exe`` look like ``x.pdf``), no folder separators."""
    kept = "".join(
        "_" if char in "/\\" else char
        for char in name
        if unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"}
    ).strip()
    return kept or "download"
