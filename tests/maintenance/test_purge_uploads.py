"""The maintenance cron deletes expired uploads, on either backend, and keeps the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx

from brokers.factory import Backend
from tasks.maintenance import purge_expired
from tests.support.files import upload

PDF = b"%PDF-1.4\n%%EOF\n"


async def one(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def test_the_cron_task_purges_expired_uploads(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    kept = await upload(client, PDF)
    expired = await any_backend.uploads.save("local", "old.pdf", one(PDF), 1 << 20, ttl=0.001)
    theirs = await any_backend.uploads.save("acme", "old.pdf", one(PDF), 1 << 20, ttl=0.001)
    await asyncio.sleep(0.01)
    assert expired.path.exists() and theirs.path.exists()

    # The backend is injected (TaskiqDepends); mypy sees only the parameter.
    task = await purge_expired.kicker().with_broker(any_backend.broker).kiq()  # type: ignore[call-overload]
    any_backend.wake_workers()
    result = await task.wait_result(timeout=20)
    assert not result.is_err, result.error
    assert result.return_value["uploads_purged"] == 2
    assert not expired.path.exists() and not theirs.path.exists()
    assert not any(any_backend.uploads.root.rglob(f"{expired.id}*"))
    assert (await client.get(f"/v1/files/{kept['id']}")).status_code == 200


async def test_uploads_are_kept_for_their_ttl_then_purged(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    fresh = await upload(client, PDF)
    assert any_backend.uploads.purge_expired(time.time()) == 0
    assert any_backend.uploads.purge_expired(time.time() + 25 * 3600) == 1
    assert (await client.get(f"/v1/files/{fresh['id']}")).status_code == 404
