"""Uploads on a local directory: streamed in, sniffed, tenant-scoped, gone when expired, and
never a partial file, whatever stops the upload."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import brokers.uploads as uploads_module
from brokers.sniffing import ContentSniffer
from brokers.uploads import (
    ABANDONED_SECONDS,
    LocalUploadStore,
    UploadTooLargeError,
    tenant_folder_name,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 20
MiB = 1 << 20


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def save(
    store: LocalUploadStore,
    *parts: bytes,
    tenant: str = "local",
    name: str = "in.pdf",
    max_bytes: int = 10 * MiB,
    ttl: float = 3600,
    declared: str | None = None,
) -> uploads_module.Upload:
    return await store.save(tenant, name, chunks_of(*parts), max_bytes, ttl, declared)


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture
def store(tmp_path: Path) -> LocalUploadStore:
    return LocalUploadStore(tmp_path / "uploads")


async def test_an_upload_is_stored_whole_with_its_metadata(store: LocalUploadStore) -> None:
    content = os.urandom(3 * MiB + 17)
    parts = [PDF, *(content[i : i + 65536] for i in range(0, len(content), 65536))]
    before = time.time()
    upload = await save(store, *parts, name="report.pdf", ttl=60)
    whole = PDF + content
    assert upload.path.read_bytes() == whole
    assert (upload.size, upload.sha256) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert (upload.tenant, upload.name, upload.content_type) == (
        "local",
        "report.pdf",
        "application/pdf",
    )
    assert before <= upload.created_at <= time.time()
    assert upload.expires_at == pytest.approx(upload.created_at + 60)
    assert len(upload.id) == 32 and upload.path.name == upload.id
    assert upload.path.is_relative_to(store.root / tenant_folder_name("local"))
    assert store.get("local", upload.id) == upload
    assert [path.name for path in files_under(store.root)] == [upload.id, upload.id + ".json"]


async def test_another_store_on_the_same_directory_sees_it(store: LocalUploadStore) -> None:
    """Several machines share the directory: the metadata lives beside the content."""
    upload = await save(store, PDF)
    assert LocalUploadStore(store.root).get("local", upload.id) == upload


@pytest.mark.parametrize(
    ("parts", "name", "declared", "expected"),
    [
        ([PDF], "x.bin", None, "application/pdf"),
        ([PNG], "x", "application/pdf", "image/png"),
        ([b"\xff\xd8\xff\xe0\0\x10JFIF"], "x", None, "image/jpeg"),
        ([b"GIF89a\x01\0\x01\0"], "x", None, "image/gif"),
        ([b"GIF87a\x01\0\x01\0"], "x", None, "image/gif"),
        ([b"RIFF\x24\0\0\0WEBPVP8 "], "x", None, "image/webp"),
        ([b"RIFF\x24\0\0\0WAVEfmt "], "x", None, "application/octet-stream"),
        ([b"data,name\nhello,a\n"], "items.csv", None, "text/csv"),
        ([b"data,name\nhello,a\n"], "items", "text/csv; charset=utf-8", "text/csv"),
        ([b"just some text\n"], "notes.txt", None, "text/plain"),
        (["caf\u00e9".encode()[:4], "caf\u00e9".encode()[4:]], "a.csv", None, "text/csv"),
        ([b"text with a \0 NUL"], "a.csv", None, "application/octet-stream"),
        ([b"not utf-8 \xff\xfe"], "a.csv", None, "application/octet-stream"),
        (["caf\u00e9".encode()[:4]], "a.csv", None, "application/octet-stream"),
        ([b"<html><script>alert(1)</script>"], "a.pdf", "application/pdf", "text/plain"),
        ([b"%PD", b"F-1.4\n"], "x", None, "application/pdf"),
        ([b""], "empty.pdf", "application/pdf", "application/octet-stream"),
    ],
)
async def test_the_type_is_sniffed_from_the_bytes(
    store: LocalUploadStore, parts: list[bytes], name: str, declared: str | None, expected: str
) -> None:
    upload = await save(store, *parts, name=name, declared=declared)
    assert upload.content_type == expected


def test_the_sniffer_reads_a_head_split_across_many_small_chunks() -> None:
    sniffer = ContentSniffer()
    for byte in PNG:
        sniffer.feed(bytes([byte]))
    assert sniffer.content_type() == "image/png"


async def test_past_the_limit_nothing_is_kept(store: LocalUploadStore) -> None:
    with pytest.raises(UploadTooLargeError):
        await save(store, PDF, b"x" * 1000, max_bytes=1000)
    assert files_under(store.root) == []
    exact = await save(store, b"x" * 1000, max_bytes=1000)
    assert exact.size == 1000


async def test_a_stream_that_breaks_midway_leaves_no_file(store: LocalUploadStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield PDF
        yield b"x" * MiB
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.save("local", "in.pdf", broken(), 10 * MiB, 60)
    assert files_under(store.root) == []


async def test_a_cancelled_upload_leaves_no_file(store: LocalUploadStore) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield PDF
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    saving = asyncio.create_task(store.save("local", "in.pdf", stalled(), MiB, 60))
    await started.wait()
    await asyncio.sleep(0.05)
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving
    assert files_under(store.root) == []


async def test_a_cancel_while_a_batch_is_being_written_leaves_no_file(
    store: LocalUploadStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    writing = threading.Event()
    release = threading.Event()
    real_write = uploads_module._write

    def slow_write(*args: Any) -> None:
        writing.set()
        release.wait(5)
        real_write(*args)

    monkeypatch.setattr(uploads_module, "_write", slow_write)

    async def big_then_stalled() -> AsyncIterator[bytes]:
        yield PDF + b"x" * (2 * MiB)
        await asyncio.sleep(60)
        yield b"never"

    saving = asyncio.create_task(store.save("local", "in.pdf", big_then_stalled(), 10 * MiB, 60))
    assert await asyncio.to_thread(writing.wait, 5)
    saving.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await saving
    await asyncio.sleep(0.05)
    assert files_under(store.root) == []


@pytest.mark.parametrize("failing_call", ["write", "publish"])
async def test_a_full_disk_leaves_no_file(
    store: LocalUploadStore, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing_call == "write":
        monkeypatch.setattr(uploads_module, "_write", no_space)
    else:
        monkeypatch.setattr(uploads_module, "_write_atomically", no_space)
    with pytest.raises(OSError) as raised:
        await save(store, PDF, b"x" * (2 * MiB))
    assert raised.value.errno == errno.ENOSPC
    assert files_under(store.root) == []


async def test_uploads_belong_to_their_tenant(store: LocalUploadStore) -> None:
    upload = await save(store, PDF, tenant="acme")
    assert store.get("acme", upload.id) is not None
    assert store.get("local", upload.id) is None
    assert store.delete("local", upload.id) is False
    assert store.get("acme", upload.id) is not None


@pytest.mark.parametrize(
    "tenant", ["..", "../..", "a/b", "/etc", "nul\0byte", "\u202eevil", "x" * 300, "C:\\x"]
)
async def test_no_tenant_name_becomes_a_path(store: LocalUploadStore, tenant: str) -> None:
    upload = await save(store, PDF, tenant=tenant)
    folder = upload.path.parent.parent
    assert folder.parent == store.root
    assert set(folder.name) <= set("0123456789abcdefsha-")
    assert store.get(tenant, upload.id) == upload


def test_an_empty_tenant_is_refused() -> None:
    with pytest.raises(ValueError):
        tenant_folder_name("")


@pytest.mark.parametrize("upload_id", ["../../etc/passwd", "", "A" * 32, "0" * 31, "0" * 33])
def test_anything_but_an_id_finds_nothing(store: LocalUploadStore, upload_id: str) -> None:
    assert store.get("local", upload_id) is None
    assert store.delete("local", upload_id) is False


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../etc/passwd", "../../etc/passwd"),
        ("a\0b.pdf", "ab.pdf"),
        ("in\u202efdp.exe", "infdp.exe"),
        ("line\r\nbreak.pdf", "linebreak.pdf"),
        ("", "upload"),
        ("x" * 1000, "x" * 255),
    ],
)
async def test_a_name_is_only_metadata(store: LocalUploadStore, name: str, kept: str) -> None:
    upload = await save(store, PDF, name=name)
    assert upload.name == kept
    assert upload.path.name == upload.id
    assert [path.name for path in files_under(store.root)] == [upload.id, upload.id + ".json"]


async def test_an_expired_upload_is_not_found_and_purged(store: LocalUploadStore) -> None:
    old = await save(store, PDF, ttl=10)
    fresh = await save(store, PNG, ttl=3600)
    later = time.time() + 60
    assert store.get("local", old.id, now=later) is None
    assert store.get("local", fresh.id, now=later) == fresh
    assert store.purge_expired(later) == 1
    assert not old.path.exists() and not old.path.with_name(old.id + ".json").exists()
    assert store.get("local", fresh.id) == fresh
    assert store.purge_expired(later) == 0


async def test_the_purge_removes_what_dead_uploaders_left(store: LocalUploadStore) -> None:
    kept = await save(store, PDF)
    folder = kept.path.parent
    stale = [folder.parent / ".tmp-dead", folder / ("ab" * 16)]
    recent = [folder.parent / ".tmp-running", folder / ("cd" * 16)]
    for path in stale + recent:
        path.write_bytes(b"partial")
    long_ago = time.time() - ABANDONED_SECONDS - 10
    for path in stale:
        os.utime(path, (long_ago, long_ago))
    assert store.purge_expired(time.time()) == 0
    assert [path.exists() for path in stale + recent] == [False, False, True, True]
    assert store.get("local", kept.id) == kept


def test_a_purge_of_an_empty_store_finds_nothing(store: LocalUploadStore) -> None:
    assert store.purge_expired(time.time()) == 0


async def test_delete_removes_content_and_metadata(store: LocalUploadStore) -> None:
    upload = await save(store, PDF)
    assert store.delete("local", upload.id) is True
    assert store.get("local", upload.id) is None
    assert files_under(store.root) == []
    assert store.delete("local", upload.id) is False


async def test_concurrent_uploads_each_keep_their_own_bytes(store: LocalUploadStore) -> None:
    contents = [PDF + os.urandom(MiB + n) for n in range(12)]

    async def slowly(content: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(content), 100_000):
            yield content[start : start + 100_000]
            await asyncio.sleep(0)

    saved = await asyncio.gather(
        *(store.save("local", f"{n}.pdf", slowly(c), 10 * MiB, 60) for n, c in enumerate(contents))
    )
    assert len({upload.id for upload in saved}) == len(contents)
    for upload, content in zip(saved, contents, strict=True):
        assert upload.path.read_bytes() == content
        assert upload.sha256 == hashlib.sha256(content).hexdigest()
