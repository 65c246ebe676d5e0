"""Serving a stored file (uploads and job results alike): a file removed while it is being
served, Range requests, and the attachment's name for every client."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from brokers.factory import Backend
from brokers.uploads import LocalUploadStore, Upload
from service.downloads import file_download
from tests.support.files import upload

CONTENT = b"%PDF-1.4\n" + bytes(range(256)) * 64


def get_request(headers: dict[str, str] | None = None, method: str = "GET") -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    return Request({"type": "http", "method": method, "path": "/", "headers": raw})


async def serve(response: object, method: str = "GET") -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": method, "headers": []}
    await response(scope, receive, send)  # type: ignore[operator]
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, b"".join(message.get("body", b"") for message in sent)


async def test_a_file_removed_once_its_download_began_is_still_served_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / "content"
    path.write_bytes(CONTENT)
    response = await file_download(get_request(), path, "application/pdf", "a.pdf", "0" * 64)
    path.unlink()  # a DELETE, or the purge, between the answer and its body
    assert await serve(response) == (200, CONTENT)


async def test_a_file_removed_before_its_download_is_a_404_not_a_500(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = await upload(client, CONTENT)
    found = LocalUploadStore.get

    def found_then_deleted(store: LocalUploadStore, *args: object) -> Upload | None:
        upload = found(store, *args)  # type: ignore[arg-type]
        if upload is not None:
            upload.path.unlink()  # a DELETE racing the lookup
        return upload

    monkeypatch.setattr(LocalUploadStore, "get", found_then_deleted)
    response = await client.get(f"/v1/files/{info['id']}")
    assert response.status_code == 404, response.text
    assert response.json()["type"] == "urn:offload:problem:file-not-found"


@pytest.mark.parametrize(
    ("range_header", "status", "content"),
    [
        ("bytes=0-3", 206, CONTENT[:4]),
        ("bytes=-5", 206, CONTENT[-5:]),
        ("items=0-3", 200, CONTENT),  # RFC 9110 14.2: a unit not understood is ignored
        ("bytes=oops", 200, CONTENT),
        ("bytes=5-2", 200, CONTENT),
    ],
)
async def test_a_range_is_served_and_one_not_understood_is_ignored(
    client: httpx.AsyncClient, range_header: str, status: int, content: bytes
) -> None:
    info = await upload(client, CONTENT)
    response = await client.get(f"/v1/files/{info['id']}", headers={"Range": range_header})
    assert (response.status_code, response.content) == (status, content)
    assert response.headers["etag"] == f'"{info["sha256"]}"'


async def test_a_range_past_the_end_is_416(client: httpx.AsyncClient) -> None:
    info = await upload(client, CONTENT)
    response = await client.get(f"/v1/files/{info['id']}", headers={"Range": "bytes=999999-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(CONTENT)}"


@pytest.mark.parametrize(
    ("name", "disposition"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        (
            "my report.pdf",
            'attachment; filename="my report.pdf"',
        ),
        ("caf\u00e9.pdf", "attachment; filename=\"cafe.pdf\"; filename*=UTF-8''caf%C3%A9.pdf"),
        (
            "\u8acb\u6c42.pdf",
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E8%AB%8B%E6%B1%82.pdf",
        ),
        (
            'a"; x=%41.html',
            "attachment; filename=\"a_; x=_41.html\"; filename*=UTF-8''a%22%3B%20x%3D%2541.html",
        ),
    ],
)
async def test_an_attachment_name_has_an_ascii_fallback_for_every_client(
    tmp_path: Path, name: str, disposition: str
) -> None:
    """RFC 6266 4.3 and appendix D: ``filename*`` for the name, ``filename`` for clients
    that read only it (curl -OJ), ASCII with no quote, backslash or percent."""
    path = tmp_path / "content"
    path.write_bytes(CONTENT)
    response = await file_download(get_request(), path, "application/pdf", name, "0" * 64)
    assert response.headers["content-disposition"] == disposition
