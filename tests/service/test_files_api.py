"""POST /v1/files streams an upload to storage; GET downloads it, DELETE removes it."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import subprocess
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

import brokers.uploads as uploads_module
from brokers.factory import Backend
from service.app import create_app
from service.multipart import MAX_PARTS
from tests.support.files import upload

PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
MiB = 1 << 20
BOUNDARY = "offload-test-boundary"


def multipart_head(
    name: str = "in.pdf", field: str = "file", content_type: str = "application/pdf"
) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


def fields(count: int) -> bytes:
    """``count`` small form fields, each closed by the start of the next boundary line."""
    field = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nv\r\n'
    return field.encode() * count


def stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


MULTIPART_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
MULTIPART_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


async def test_an_upload_answers_201_with_its_info_and_location(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/files", files={"file": ("report.pdf", PDF, "text/html")})
    assert response.status_code == 201, response.text
    info = response.json()
    assert set(info) == {"id", "name", "content_type", "size", "sha256", "expires_at"}
    assert info["name"] == "report.pdf"
    assert info["content_type"] == "application/pdf", "sniffed, not the client's word"
    assert (info["size"], info["sha256"]) == (len(PDF), hashlib.sha256(PDF).hexdigest())
    expires = datetime.fromisoformat(info["expires_at"]).timestamp()
    assert expires == pytest.approx(time.time() + 24 * 3600, abs=60)
    assert response.headers["location"] == f"/v1/files/{info['id']}"
    described = await client.get(f"/v1/files/{info['id']}/info")
    assert described.status_code == 200 and described.json() == info


async def test_a_download_is_the_bytes_with_safe_headers(client: httpx.AsyncClient) -> None:
    info = await upload(client, PNG, name="logo.png", content_type="image/png")
    download = await client.get(f"/v1/files/{info['id']}")
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["etag"] == f'"{info["sha256"]}"'
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"] == 'attachment; filename="logo.png"'
    assert "sandbox" in download.headers["content-security-policy"]
    again = await client.get(
        f"/v1/files/{info['id']}", headers={"If-None-Match": download.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == download.headers["etag"]
    other = await client.get(f"/v1/files/{info['id']}", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


async def test_delete_removes_the_file(client: httpx.AsyncClient, any_backend: Backend) -> None:
    info = await upload(client, PDF)
    assert (await client.delete(f"/v1/files/{info['id']}")).status_code == 204
    for response in [
        await client.get(f"/v1/files/{info['id']}"),
        await client.get(f"/v1/files/{info['id']}/info"),
        await client.delete(f"/v1/files/{info['id']}"),
    ]:
        assert response.status_code == 404
        assert response.json()["type"] == "urn:offload:problem:file-not-found"
    assert not any(any_backend.uploads.root.rglob(f"{info['id']}*"))


@pytest.mark.parametrize("file_id", ["0" * 32, "..%2F..%2Fetc%2Fpasswd", "nope", "A" * 32])
async def test_an_unknown_file_is_a_404_problem(client: httpx.AsyncClient, file_id: str) -> None:
    response = await client.get(f"/v1/files/{file_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_another_tenants_or_an_expired_file_is_a_404(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    async def content() -> AsyncIterator[bytes]:
        yield PDF

    theirs = await any_backend.uploads.save("acme", "x.pdf", content(), MiB, 3600)
    expired = await any_backend.uploads.save("local", "x.pdf", content(), MiB, 0.001)
    await asyncio.sleep(0.01)
    for file_id in (theirs.id, expired.id):
        assert (await client.get(f"/v1/files/{file_id}")).status_code == 404
        assert (await client.get(f"/v1/files/{file_id}/info")).status_code == 404
        assert (await client.delete(f"/v1/files/{file_id}")).status_code == 404
    assert any_backend.uploads.get("acme", theirs.id) == theirs


async def test_a_body_declared_too_large_is_refused_before_it_is_read(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(60):
            sent += 1
            yield b"x" * MiB

    response = await client.post(
        "/v1/files",
        content=body(),
        headers={"Content-Type": MULTIPART_TYPE, "Content-Length": str(60 * MiB)},
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:offload:problem:payload-too-large"
    assert sent <= 1


async def test_an_upload_larger_than_the_app_body_limit_passes(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    assert any_backend.settings.max_body_bytes < 3 * MiB
    content = PDF + b"\0" * (3 * MiB)
    info = await upload(client, content)
    assert info["size"] == len(content)
    json_body = await client.post("/v1/jobs/qr", json={"data": "x" * (3 * MiB)})
    assert json_body.status_code == 413, "the JSON routes keep the app's limit"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"file": "x"}', "application/json"),
        (b"", MULTIPART_TYPE),
        (b"no boundary here", "multipart/form-data"),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="other"\r\n\r\nx'.encode()
            + MULTIPART_TAIL,
            MULTIPART_TYPE,
        ),
        (multipart_head() + PDF, MULTIPART_TYPE),
        (multipart_head() + PDF + b"\r\n--" + BOUNDARY.encode(), MULTIPART_TYPE),
        (b"garbage before any boundary\r\n" * 3, MULTIPART_TYPE),
        (
            multipart_head() + PDF + b"\r\n" + multipart_head() + PDF + MULTIPART_TAIL,
            MULTIPART_TYPE,
        ),
        (fields(MAX_PARTS) + multipart_head() + PDF + MULTIPART_TAIL, MULTIPART_TYPE),
        (multipart_head() + PDF + b"\r\n" + fields(5000) + MULTIPART_TAIL[2:], MULTIPART_TYPE),
    ],
    ids=[
        "json",
        "empty",
        "no-boundary",
        "no-file-part",
        "cut-off",
        "unclosed",
        "junk",
        "two-files",
        "file-after-too-many-fields",
        "thousands-of-parts-after-the-file",
    ],
)
async def test_a_body_without_a_whole_file_part_is_a_422_naming_file(
    client: httpx.AsyncClient, any_backend: Backend, body: bytes, content_type: str
) -> None:
    response = await client.post("/v1/files", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["file"]
    assert not stored_files(any_backend.uploads.root)


async def test_a_file_part_without_a_filename_is_named_upload(client: httpx.AsyncClient) -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\na,b\n1,2\n'.encode()
        + MULTIPART_TAIL
    )
    response = await client.post(
        "/v1/files", content=body, headers={"Content-Type": MULTIPART_TYPE}
    )
    assert response.status_code == 201, response.text
    assert (response.json()["name"], response.json()["size"]) == ("upload", 8)


async def test_head_gives_a_files_headers_without_its_body(client: httpx.AsyncClient) -> None:
    info = await upload(client, PDF)
    got = await client.get(f"/v1/files/{info['id']}")
    head = await client.head(f"/v1/files/{info['id']}")
    assert (head.status_code, head.content) == (200, b"")
    for header in ("content-type", "content-length", "etag", "content-disposition"):
        assert head.headers[header] == got.headers[header], header
    assert (await client.head(f"/v1/files/{'0' * 32}")).status_code == 404


async def test_other_fields_beside_the_file_are_skipped(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/files", data={"purpose": "merge"}, files={"file": ("a.pdf", PDF, "application/pdf")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(PDF)


@pytest.mark.parametrize(
    ("sent", "kept", "disposition"),
    [
        ("../../etc/passwd", "../../etc/passwd", 'attachment; filename=".._.._etc_passwd"'),
        ("in\u202efdp.exe", "infdp.exe", 'attachment; filename="infdp.exe"'),
        ("a\0b.pdf", "ab.pdf", 'attachment; filename="ab.pdf"'),
        (
            'a\\"; x=.html',
            'a"; x=.html',
            "attachment; filename=\"a_; x=.html\"; filename*=UTF-8''a%22%3B%20x%3D.html",
        ),
        (
            "caf\u00e9.pdf",
            "caf\u00e9.pdf",
            "attachment; filename=\"cafe.pdf\"; filename*=UTF-8''caf%C3%A9.pdf",
        ),
    ],
)
async def test_a_name_is_kept_only_as_metadata(
    client: httpx.AsyncClient, any_backend: Backend, sent: str, kept: str, disposition: str
) -> None:
    """``sent`` is the filename as it stands in the part's header (quotes escaped)."""
    body = multipart_head(name="NAME").replace(b"NAME", sent.encode()) + PDF + MULTIPART_TAIL
    response = await client.post(
        "/v1/files", content=body, headers={"Content-Type": MULTIPART_TYPE}
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert info["name"] == kept
    stored = sorted(path.name for path in any_backend.uploads.root.rglob("*") if path.is_file())
    assert stored == [info["id"], info["id"] + ".json"]
    download = await client.get(f"/v1/files/{info['id']}")
    assert download.headers.get_list("content-disposition") == [disposition]


@pytest.mark.parametrize(
    ("content", "name"),
    [(PDF, "a.pdf"), (PNG, "a.png"), (b"a,b\n", "a.csv"), (b"hi", "a.txt"), (b"\0", "a")],
)
async def test_a_download_has_a_documented_content_type(
    client: httpx.AsyncClient, content: bytes, name: str
) -> None:
    """A client generated from the spec (or schemathesis) checks the type it gets."""
    info = await upload(client, content, name=name)
    spec = (await client.get("/openapi.json")).json()
    documented = spec["paths"]["/v1/files/{file_id}"]["get"]["responses"]["200"]["content"]
    download = await client.get(f"/v1/files/{info['id']}")
    assert download.headers["content-type"].split(";")[0] in documented


def test_the_operations_are_documented(embedded_backend: Backend) -> None:
    spec = create_app(embedded_backend, embedded_worker=False).openapi()
    operations = {
        ("post", "/v1/files"): ("upload_file", {"201", "400", "413", "422", "503", "507"}),
        ("get", "/v1/files/{file_id}"): ("get_file", {"200", "304", "404", "503"}),
        ("get", "/v1/files/{file_id}/info"): ("get_file_info", {"200", "404", "503"}),
        ("delete", "/v1/files/{file_id}"): ("delete_file", {"204", "404", "503"}),
    }
    for (method, path), (operation_id, statuses) in operations.items():
        operation = spec["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert operation["tags"] == ["files"]
        assert set(operation["responses"]) == statuses, path
        for status_code in statuses - {"200", "201", "204", "304"}:
            content = operation["responses"][status_code]["content"]
            assert "application/problem+json" in content, (path, status_code)
    body = spec["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["file"]


# Memory: the upload is a stream from the socket to the disk, never whole in memory.


async def streamed_body(size: int, chunk: bytes) -> AsyncIterator[bytes]:
    """A multipart body with ``size`` bytes of file, made as it is sent (one chunk reused)."""
    yield multipart_head()
    sent = 0
    while sent < size:
        piece = chunk if size - sent >= len(chunk) else chunk[: size - sent]
        sent += len(piece)
        yield piece
    yield MULTIPART_TAIL


async def test_a_60_mib_upload_is_refused_413_without_being_held_in_memory(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    limit = any_backend.settings.upload_max_bytes
    assert limit == 50 * MiB
    tracemalloc.start()
    try:
        response = await client.post(
            "/v1/files",
            content=streamed_body(60 * MiB, PDF + b"\0" * (MiB - len(PDF))),
            headers={"Content-Type": MULTIPART_TYPE},  # no Content-Length: chunked
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413, response.text
    assert str(limit) in response.json()["detail"]
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while refusing 60 MiB"
    assert not stored_files(any_backend.uploads.root)


async def test_a_40_mib_upload_round_trips_byte_identical_in_bounded_memory(
    client: httpx.AsyncClient,
) -> None:
    chunk = os.urandom(MiB)
    size = 40 * MiB + 123
    expected = hashlib.sha256()
    for start in range(0, size, MiB):
        expected.update(chunk[: min(MiB, size - start)])
    tracemalloc.start()
    try:
        response = await client.post(
            "/v1/files",
            content=streamed_body(size, chunk),
            headers={"Content-Type": MULTIPART_TYPE},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["size"], info["sha256"]) == (size, expected.hexdigest())
    assert info["content_type"] == "application/octet-stream"
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while storing 40 MiB"
    async with client.stream("GET", f"/v1/files/{info['id']}") as download:
        assert download.status_code == 200
        received = hashlib.sha256()
        length = 0
        async for piece in download.aiter_bytes():
            received.update(piece)
            length += len(piece)
    assert (length, received.hexdigest()) == (size, expected.hexdigest())


# Faults: a client gone mid-upload, many at once, a full disk.


async def test_a_client_gone_mid_upload_leaves_no_file(any_backend: Backend) -> None:
    """Straight through ASGI, to send what httpx cannot: a disconnect mid-body."""
    app = create_app(any_backend, embedded_worker=False)
    messages: list[Message] = [
        {"type": "http.request", "body": multipart_head() + PDF, "more_body": True},
        *({"type": "http.request", "body": b"x" * MiB, "more_body": True} for _ in range(3)),
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/files",
        "raw_path": b"/v1/files",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", MULTIPART_TYPE.encode()), (b"host", b"offload.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("offload.test", 80),
    }
    await app(scope, receive, send)
    assert messages == [], "the whole body was read up to the disconnect"
    assert sent[0]["status"] == 400
    assert not stored_files(any_backend.uploads.root)


async def test_concurrent_uploads_each_keep_their_bytes(client: httpx.AsyncClient) -> None:
    contents = [PDF + os.urandom(200_000 + n) for n in range(16)]
    infos = await asyncio.gather(
        *(upload(client, content, f"{n}.pdf") for n, content in enumerate(contents))
    )
    assert len({info["id"] for info in infos}) == len(contents)
    for info, content in zip(infos, contents, strict=True):
        assert info["sha256"] == hashlib.sha256(content).hexdigest()
        assert (await client.get(f"/v1/files/{info['id']}")).content == content


async def test_a_storage_error_is_a_503_that_names_no_server_path(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*_: object, **__: object) -> None:
        raise PermissionError(13, "Permission denied", "/srv/offload/uploads/6c6f63616c/ab")

    monkeypatch.setattr(any_backend.uploads, "save", refused)
    response = await client.post("/v1/files", files={"file": ("a.pdf", PDF, "application/pdf")})
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Permission denied" in response.json()["detail"]
    assert "/srv/offload" not in response.text


async def test_a_full_disk_is_a_507_and_leaves_no_file(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads_module, "_write", no_space)
    response = await client.post(
        "/v1/files", files={"file": ("a.pdf", PDF * 1000, "application/pdf")}
    )
    assert response.status_code == 507, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:offload:problem:insufficient-storage"
    assert "retry-after" in response.headers
    assert not stored_files(any_backend.uploads.root)
    monkeypatch.undo()
    assert (await upload(client, PDF))["size"] == len(PDF), "fine again once there is space"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (mounting needs root, which the test machines and CI have)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_a_really_full_disk_is_a_507_and_leaves_no_file(
    client: httpx.AsyncClient, any_backend: Backend, small_disk: Path
) -> None:
    any_backend.uploads.root = small_disk / "uploads"
    response = await client.post(
        "/v1/files",
        content=streamed_body(8 * MiB, PDF * 30_000),
        headers={"Content-Type": MULTIPART_TYPE},
    )
    assert response.status_code == 507, response.text
    assert stored_files(small_disk) == []
    assert (await upload(client, PDF * 1000))["size"] == len(PDF) * 1000


async def test_fields_read_with_the_file_in_one_chunk_do_not_become_the_file(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    """A small form arrives in one read: each part keeps its own headers."""
    field = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nmerge\r\n'
    body = field.encode() + multipart_head() + PDF + MULTIPART_TAIL
    response = await client.post(
        "/v1/files", content=body, headers={"Content-Type": MULTIPART_TYPE}
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert (info["size"], info["content_type"]) == (len(PDF), "application/pdf")
    stored = any_backend.uploads.get("local", info["id"])
    assert stored is not None and stored.path.read_bytes() == PDF


async def test_a_file_may_follow_the_other_fields_up_to_the_part_limit(
    client: httpx.AsyncClient,
) -> None:
    body = fields(MAX_PARTS - 1) + multipart_head() + PDF + MULTIPART_TAIL
    response = await client.post(
        "/v1/files", content=body, headers={"Content-Type": MULTIPART_TYPE}
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(PDF)


async def test_a_burst_that_fills_the_disk_leaves_only_whole_files(
    client: httpx.AsyncClient, any_backend: Backend, small_disk: Path
) -> None:
    any_backend.uploads.root = small_disk / "uploads"
    size = 900 * 1024  # six of them do not fit in 4 MiB
    responses = await asyncio.gather(
        *(
            client.post(
                "/v1/files",
                content=streamed_body(size, bytes([number]) * 64 * 1024),
                headers={"Content-Type": MULTIPART_TYPE},
            )
            for number in range(6)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) == {201, 507}, statuses
    kept = [response.json() for response in responses if response.status_code == 201]
    files = stored_files(small_disk)
    assert len(files) == 2 * len(kept), files  # content and metadata, nothing half-written
    for info in kept:
        stored = any_backend.uploads.get("local", info["id"])
        assert stored is not None and stored.size == size
        assert hashlib.sha256(stored.path.read_bytes()).hexdigest() == info["sha256"]
