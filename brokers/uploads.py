"""Uploaded files on a local directory (shared as a volume when several machines run).

Layout: ``<root>/<tenant folder>/<last two hex digits of the id>/<id>`` holds the content and
``<id>.json`` beside it its metadata. The id is made here (32 random hex digits), never taken
from a client, and the tenant folder is the tenant's UTF-8 bytes in hex (a digest for long
ones), so no id or tenant string can name a path of its own. The metadata file is written
last and removed first: an upload exists exactly while it is there, for every process that
shares the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from brokers.sniffing import ContentSniffer

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_METADATA = ".json"
_TEMPORARY = ".tmp-"
_WRITE_BATCH = 1 << 20
"""Bytes gathered before one write (and hash) in a worker thread, off the event loop."""
_LONG_TENANT_BYTES = 64
ABANDONED_SECONDS = 86400.0
"""A temporary file, or content without metadata, older than this was left by a process that
died mid-upload: the purge removes it."""
MAX_NAME_CHARS = 255


class UploadTooLargeError(Exception):
    """The content passed the size limit; nothing was kept."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file may be at most {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Upload:
    """One stored upload. Times are seconds since the epoch, as in job records."""

    id: str
    tenant: str
    name: str
    """As the client named it, cleaned of control characters: metadata only, never a path."""
    content_type: str
    """Sniffed from the content, never taken from the client."""
    size: int
    sha256: str
    created_at: float
    expires_at: float
    path: Path

    def is_expired(self, now: float) -> bool:
        return self.expires_at <= now


class LocalUploadStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def save(
        self,
        tenant: str,
        name: str,
        chunks: AsyncIterator[bytes],
        max_bytes: int,
        ttl: float,
        declared_type: str | None = None,
    ) -> Upload:
        """Stream ``chunks`` to a new upload of ``tenant``, hashing and counting as it goes.

        Raises UploadTooLargeError past ``max_bytes``; that, an OSError (a full disk) or
        any error of ``chunks`` (a client gone mid-upload) leaves no file behind.
        ``declared_type`` only tells CSV from other text (the bytes cannot).
        """
        folder = self._tenant_folder(tenant)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        descriptor, temporary_path = tempfile.mkstemp(dir=folder, prefix=_TEMPORARY)
        temporary = Path(temporary_path)
        digest = hashlib.sha256()
        sniffer = ContentSniffer()
        try:
            with os.fdopen(descriptor, "wb") as handle:
                size = await _copy(chunks, handle, max_bytes, digest, sniffer)
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            now = time.time()
            upload_id = secrets.token_hex(16)
            upload = Upload(
                id=upload_id,
                tenant=tenant,
                name=clean_name(name),
                content_type=sniffer.content_type(declared_type, name),
                size=size,
                sha256=digest.hexdigest(),
                created_at=now,
                expires_at=now + ttl,
                path=self._content_path(tenant, upload_id),
            )
            upload = await asyncio.to_thread(self._publish, upload, temporary)
        except BaseException:
            # Also on a cancel (the client went away): no await here, so it always runs.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        return upload

    def get(self, tenant: str, upload_id: str, now: float | None = None) -> Upload | None:
        """The tenant's upload, or None: unknown id, another tenant's, expired, or not an id."""
        if not UPLOAD_ID.fullmatch(upload_id):
            return None
        upload = self._read(self._content_path(tenant, upload_id))
        if upload is None or upload.tenant != tenant:
            return None
        if upload.is_expired(time.time() if now is None else now):
            return None
        return upload

    def delete(self, tenant: str, upload_id: str) -> bool:
        """Remove the tenant's upload; False if there was none (expired ones count as none)."""
        if self.get(tenant, upload_id) is None:
            return False
        self._remove(self._content_path(tenant, upload_id))
        return True

    def purge_expired(self, now: float) -> int:
        """Remove every expired upload, and what dead uploaders left; the uploads removed."""
        purged = 0
        with contextlib.suppress(FileNotFoundError):
            for tenant_folder in self.root.iterdir():
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    purged += self._purge_tenant(tenant_folder, now)
        return purged

    def _purge_tenant(self, tenant_folder: Path, now: float) -> int:
        purged = 0
        for path in list(tenant_folder.rglob("*")):
            if path.name.endswith(_METADATA):
                upload = self._read(path.with_suffix(""))
                if upload is None or upload.is_expired(now):
                    self._remove(path.with_suffix(""))
                    purged += upload is not None
            elif _abandoned(path, now):
                path.unlink(missing_ok=True)
        return purged

    def _publish(self, upload: Upload, temporary: Path) -> Upload:
        """Move the content in place, then write the metadata that makes it visible."""
        content = upload.path
        content.parent.mkdir(exist_ok=True)
        os.replace(temporary, content)
        try:
            _write_atomically(content.with_name(content.name + _METADATA), _metadata(upload))
        except BaseException:
            content.unlink(missing_ok=True)
            raise
        return upload

    def _read(self, content: Path) -> Upload | None:
        try:
            stored = json.loads(content.with_name(content.name + _METADATA).read_bytes())
            return Upload(**stored, path=content)
        except (OSError, ValueError, TypeError):
            return None

    def _remove(self, content: Path) -> None:
        content.with_name(content.name + _METADATA).unlink(missing_ok=True)
        content.unlink(missing_ok=True)

    def _content_path(self, tenant: str, upload_id: str) -> Path:
        if not UPLOAD_ID.fullmatch(upload_id):
            raise ValueError(f"not an upload id (32 lowercase hex digits): {upload_id!r}")
        return self._tenant_folder(tenant) / upload_id[-2:] / upload_id

    def _tenant_folder(self, tenant: str) -> Path:
        return self.root / tenant_folder_name(tenant)


def tenant_folder_name(tenant: str) -> str:
    """Hex of the tenant's bytes (``local`` -> ``6c6f63616c``); a digest when long. Only
    ``[0-9a-f-]`` can come out, so a tenant is never ``..``, a slash or a NUL on disk."""
    encoded = tenant.encode()
    if not encoded:
        raise ValueError("a tenant name may not be empty")
    if len(encoded) > _LONG_TENANT_BYTES:
        return "sha256-" + hashlib.sha256(encoded).hexdigest()
    return encoded.hex()


def clean_name(name: str) -> str:
    """The client's file name as metadata: no control characters, at most 255 characters."""
    cleaned = "".join(char for char in name if char.isprintable() or char == " ").strip()
    return cleaned[:MAX_NAME_CHARS] or "upload"


async def _copy(
    chunks: AsyncIterator[bytes], handle: Any, max_bytes: int, digest: Any, sniffer: ContentSniffer
) -> int:
    """Write ``chunks`` to ``handle`` in batches, each in a worker thread while the next
    arrives (hashing and writing release the GIL); the bytes written."""
    size = 0
    batch: list[bytes] = []
    batched = 0
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLargeError(max_bytes)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _WRITE_BATCH:
                if writing is not None:
                    await writing
                data, batch, batched = b"".join(batch), [], 0
                writing = asyncio.ensure_future(
                    asyncio.to_thread(_write, handle, data, digest, sniffer)
                )
        if writing is not None:
            await writing
        await asyncio.to_thread(_write, handle, b"".join(batch), digest, sniffer)
    except BaseException:
        if writing is not None:
            writing.add_done_callback(_retrieved)  # it fails too once the file is gone
        raise
    return size


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _write(handle: Any, data: bytes, digest: Any, sniffer: ContentSniffer) -> None:
    handle.write(data)
    digest.update(data)
    sniffer.feed(data)


def _metadata(upload: Upload) -> bytes:
    stored = asdict(upload)
    del stored["path"]
    return json.dumps(stored).encode()


def _write_atomically(path: Path, content: bytes) -> None:
    descriptor, temporary_path = tempfile.mkstemp(dir=path.parent, prefix=_TEMPORARY)
    temporary = Path(temporary_path)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _abandoned(path: Path, now: float) -> bool:
    """A temporary file, or content whose metadata never came, from long ago."""
    if path.is_dir():
        return False
    is_orphan = (
        UPLOAD_ID.fullmatch(path.name) is not None
        and not path.with_name(path.name + _METADATA).exists()
    )
    if not (path.name.startswith(_TEMPORARY) or is_orphan):
        return False
    try:
        return path.stat().st_mtime < now - ABANDONED_SECONDS
    except FileNotFoundError:
        return False
