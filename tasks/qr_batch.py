"""The bulk QR job: many codes drawn in chunks on every core, written to a ZIP as they come.

Items are read one chunk at a time (from the request or, streamed, from an uploaded CSV);
up to two chunks a core are drawn at once in the CPU pool and written to the archive
in order, so memory holds a few chunks whatever the batch's size. Progress is reported after
each chunk, which is also where a cancel stops the job. An item that cannot be drawn is
listed as failed in the manifest; the job fails only when the batch itself is unusable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Iterator
from itertools import islice
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from brokers import broker
from brokers.backoff import Backoff
from brokers.lifecycle import JobFailure
from schemas.jobs import JobResult, Lane
from schemas.qr_batch import MAX_BODY_BYTES, QrBatchOptions
from service.settings import Settings
from tasks.deps import AttemptDep, JobAttempt
from tasks.kinds import declare_kind
from tasks.qr_batch_archive import QrArchive
from tasks.qr_batch_draw import DrawnItem, DrawOptions, draw_chunk
from tasks.qr_batch_items import BatchInputError, BatchItem, inline_items

CHUNK_ITEMS = 250
"""Items per CPU step: ~0.1 s of drawing, so a cancel or a report is never far away."""
CHUNKS_PER_CORE = 2
"""Chunks in the pool per core: one drawing, one waiting, so no core idles while this
process writes the archive or reports progress (a SQLite progress write of a job with 10,000
inline items rewrites its 2 MB row: ~20-50 ms)."""
QR_BATCH_TIMEOUT_SECONDS = 3600.0
"""100,000 codes take about a minute on two cores; an hour means something is wrong."""


class InvalidBatchInput(JobFailure):
    """The uploaded CSV cannot be read as a batch (the message names the line)."""

    error_type = "invalid_csv"
    retryable = False


def _chunks(items: Iterator[BatchItem]) -> Iterator[list[BatchItem]]:
    while chunk := list(islice(items, CHUNK_ITEMS)):
        yield chunk


async def _drawn_in_order(
    attempt: JobAttempt, chunks: Iterable[list[BatchItem]], options: DrawOptions, window: int
) -> AsyncGenerator[list[DrawnItem], None]:
    """Each chunk drawn, in order, with up to ``window`` chunks in the pool at once."""
    pending: deque[asyncio.Future[list[DrawnItem]]] = deque()
    try:
        for chunk in chunks:
            pending.append(asyncio.ensure_future(attempt.run_cpu(draw_chunk, chunk, options)))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    finally:
        # Stopped early (a cancel, a failure): steps still running are killed.
        for step in pending:
            step.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _add_all(archive: QrArchive, drawn: list[DrawnItem]) -> None:
    for one in drawn:
        archive.add(one)


@broker.task(task_name="offload.qr.batch")
async def run_qr_batch(options: QrBatchOptions, attempt: AttemptDep) -> dict[str, Any]:
    settings = attempt.backend.settings
    items = inline_items(options)
    total = len(options.items or ())
    draw = DrawOptions(
        format=options.format,
        scale=options.scale,
        border=options.border,
        max_png_pixels=settings.qr_max_pixels,
    )
    window = CHUNKS_PER_CORE * settings.cpu_workers + 1
    done = 0
    await attempt.report(0, total)
    async with attempt.scratch_file(".zip") as path:
        archive = await asyncio.to_thread(QrArchive, path)
        try:
            drawn_chunks = _drawn_in_order(attempt, _chunks(items), draw, window)
            async with contextlib.aclosing(drawn_chunks):
                async for drawn in drawn_chunks:
                    await asyncio.to_thread(_add_all, archive, drawn)
                    done += len(drawn)
                    await attempt.report(done, total)
        except BatchInputError as error:
            await asyncio.to_thread(archive.discard)
            raise InvalidBatchInput(str(error)) from None
        except BaseException:
            await asyncio.to_thread(archive.discard)
            raise
        await asyncio.to_thread(archive.close)
        stored = await attempt.keep_file("archive", "qr-codes.zip", path, "application/zip")
    counts = {"items": done, "ok": archive.manifest.ok, "failed": archive.manifest.failed}
    result = JobResult(data={**counts, "format": options.format.value}, files=[stored])
    return result.model_dump(mode="json")


def check_qr_batch(options: QrBatchOptions, settings: Settings) -> None:
    """At submit: exactly one source of items."""
    if (options.items is None) == (options.csv_file_id is None):
        field = "items" if options.items is None else "csv_file_id"
        raise _invalid(field, "give exactly one of items and csv_file_id")
    # Until uploads land (branch files), a file id cannot be read.
    for field in ("csv_file_id", "logo_file_id"):
        if getattr(options, field) is not None:
            raise _invalid(field, "uploaded files are not available on this server yet")


def _invalid(field: str, message: str) -> ValidationError:
    error = PydanticCustomError("qr_batch", message)
    return ValidationError.from_exception_data(
        QrBatchOptions.__name__, [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


QR_BATCH = declare_kind(
    name="qr_batch",
    request=QrBatchOptions,
    task=run_qr_batch,
    summary="Queue up to 10,000 QR codes (100,000 from a CSV) drawn into a ZIP with a manifest.",
    lane=Lane.BULK,
    max_attempts=2,
    timeout_s=QR_BATCH_TIMEOUT_SECONDS,
    backoff=Backoff(base_s=5, cap_s=300),
    check=check_qr_batch,
    path="/v1/jobs/qr-batch",
    max_body_bytes=MAX_BODY_BYTES,
)
