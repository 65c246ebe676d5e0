"""Scheduled maintenance: repair jobs that lost their message, purge expired jobs, their
files and expired uploads."""

from __future__ import annotations

import asyncio
import logging
import time

from brokers import broker
from service.settings import get_settings
from tasks.deps import BackendDep

logger = logging.getLogger(__name__)

TOMBSTONE_SECONDS = 86400.0
"""How long an expired job still answers 410 (Gone) for its result before it is forgotten."""


@broker.task(
    task_name="offload.maintenance.purge_expired",
    schedule=[{"cron": get_settings().purge_cron, "schedule_id": "maintenance.purge_expired"}],
)
async def purge_expired(backend: BackendDep) -> dict[str, int]:
    swept = await backend.store.sweep(time.time())
    if swept.requeued or swept.failed:
        logger.warning(
            "found %d unfinished jobs with no message: queued %d again, failed %d as worker_lost",
            len(swept.requeued) + len(swept.failed),
            len(swept.requeued),
            len(swept.failed),
        )
    report = await backend.store.purge_expired(time.time(), TOMBSTONE_SECONDS)
    # Deleting folders on a slow shared volume must not stall the heartbeats on this loop.
    for job_id in report.files_of:
        await asyncio.to_thread(backend.files.delete, job_id)
    uploads_purged = await asyncio.to_thread(backend.uploads.purge_expired, time.time())
    if report.files_of or report.rows_deleted or uploads_purged:
        logger.info(
            "purged files of %d expired jobs, forgot %d, deleted %d expired uploads",
            len(report.files_of),
            report.rows_deleted,
            uploads_purged,
        )
    return {
        "requeued": len(swept.requeued),
        "failed_lost": len(swept.failed),
        "files_purged": len(report.files_of),
        "jobs_forgotten": report.rows_deleted,
        "uploads_purged": uploads_purged,
    }
