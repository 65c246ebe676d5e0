"""Uploading files in tests, through the API as a client would."""

from __future__ import annotations

from typing import Any

import httpx


async def upload(
    client: httpx.AsyncClient,
    content: bytes,
    name: str = "in.pdf",
    content_type: str = "application/pdf",
) -> dict[str, Any]:
    """POST ``content`` to /v1/files as the multipart field ``file``; its FileInfo JSON."""
    response = await client.post("/v1/files", files={"file": (name, content, content_type)})
    assert response.status_code == 201, response.text
    info: dict[str, Any] = response.json()
    return info
