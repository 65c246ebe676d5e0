"""Serving a stored file: one set of headers for uploads and job results alike."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from fastapi import Request, Response, status
from fastapi.responses import FileResponse

SAFE_HEADERS = {
    "Cache-Control": "private, max-age=0",
    "X-Content-Type-Options": "nosniff",
    # A PDF or SVG opened from the API's origin runs nothing and reaches nothing.
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Unchanged since the ETag given in If-None-Match."}
}


def file_download(
    request: Request, path: Path, media_type: str, name: str, sha256: str
) -> Response:
    """``path`` as an attachment named ``name``, its ETag the content's sha256; 304 when the
    client's If-None-Match already names it."""
    etag = f'"{sha256}"'
    headers = {"ETag": etag, **SAFE_HEADERS}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return FileResponse(path, media_type=media_type, filename=download_name(name), headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: a list of tags, weak ones compared weakly, or ``*``."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def download_name(name: str) -> str:
    """A file name for Content-Disposition: no control or direction characters (an RTL
    override can make ``x.exe`` look like ``x.pdf``), no folder separators."""
    kept = "".join(
        "_" if char in "/\\" else char
        for char in name
        if unicodedata.category(char) not in {"Cc", "Cf", "Zl", "Zp"}
    ).strip()
    return kept or "download"
