"""How a bulk QR job moves its items: chunks drawn on every core, written in order as they come.

Items are read one chunk at a time (off the event loop: from a CSV that is file reading); up
to two chunks a core are in the CPU pool at once, and each drawn chunk is written (to the ZIP,
or handed to the PDF sheet writer's thread) in order, so memory holds a few chunks whatever
the batch's size. Progress is reported after each chunk, which is also where a cancel stops
the job; on any stop, steps still running are killed and the scratch files removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Iterator
from itertools import islice

from brokers.lifecycle import JobFailure
from schemas.jobs import ResultFile
from schemas.qr_sheet import SheetOptions
from tasks.deps import JobAttempt
from tasks.qr_batch_archive import QrArchive, manifest_row
from tasks.qr_batch_draw import DrawnItem, DrawOptions, draw_chunk
from tasks.qr_batch_items import BatchInputError, BatchItem
from tasks.qr_batch_manifest import ManifestWriter
from tasks.qr_sheet import SheetCode, write_qr_sheet

CHUNK_ITEMS = 250
"""Items per CPU step: ~0.1 s of drawing, so a cancel or a report is never far away."""
CHUNKS_PER_CORE = 2
"""Chunks in the pool per core: one drawing, one waiting, so no core idles while this
process writes the archive or reports progress (a SQLite progress write of a job with 10,000
inline items rewrites its 2 MB row: ~20-50 ms)."""
SHEET_NAME = "qr-codes.pdf"
REPORT_SECONDS = 1.0
"""Least time between two progress reports of a batch (the last is always made): each write
of a job with 10,000 inline items rewrites its 2 MB SQLite row, and wakes every long-poll
client, which reads it all again."""


class _Reporter:
    """``attempt.report`` at most every REPORT_SECONDS; a cancel between reports is still
    seen within that time here, or by the watcher that kills a step past its grace."""

    def __init__(self, attempt: JobAttempt, total: int) -> None:
        self._attempt, self._total = attempt, total
        self._last = float("-inf")

    async def __call__(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= REPORT_SECONDS or done >= self._total:
            self._last = now
            await self._attempt.report(done, self._total)


class InvalidBatchInput(JobFailure):
    """The uploaded CSV cannot be read as a batch (the message names the line)."""

    error_type = "invalid_csv"
    retryable = False


class Counts:
    def __init__(self, manifest: ManifestWriter, items: int) -> None:
        self.items, self.ok, self.failed = items, manifest.ok, manifest.failed

    def as_data(self) -> dict[str, int]:
        return {"items": self.items, "ok": self.ok, "failed": self.failed}


def chunks(items: Iterator[BatchItem]) -> Iterator[list[BatchItem]]:
    while chunk := list(islice(items, CHUNK_ITEMS)):
        yield chunk


async def drawn_in_order(
    attempt: JobAttempt, items: Iterator[BatchItem], options: DrawOptions
) -> AsyncGenerator[list[DrawnItem], None]:
    """Each chunk of ``items`` drawn, in order, two chunks a core in the pool at once."""
    window = CHUNKS_PER_CORE * attempt.backend.settings.cpu_workers + 1
    source = chunks(items)
    pending: deque[asyncio.Future[list[DrawnItem]]] = deque()
    no_more: list[BatchItem] = []
    try:
        while chunk := await asyncio.to_thread(next, source, no_more):
            pending.append(asyncio.ensure_future(attempt.run_cpu(draw_chunk, chunk, options)))
            if len(pending) >= window:
                yield await pending.popleft()
        while pending:
            yield await pending.popleft()
    except BatchInputError as error:
        raise InvalidBatchInput(str(error)) from None
    finally:
        for step in pending:
            step.cancel()  # kills the pool process running it
        await asyncio.gather(*pending, return_exceptions=True)


def _add_all(archive: QrArchive, drawn: list[DrawnItem]) -> None:
    for one in drawn:
        archive.add(one)


async def write_zip(
    attempt: JobAttempt, items: Iterator[BatchItem], total: int, options: DrawOptions
) -> tuple[list[ResultFile], Counts]:
    """The items drawn into a ZIP with manifest.csv, kept as the result file "archive"."""
    done = 0
    report = _Reporter(attempt, total)
    await report(0)
    async with attempt.scratch_file(".zip") as path:
        archive = await asyncio.to_thread(QrArchive, path)
        try:
            drawn_chunks = drawn_in_order(attempt, items, options)
            async with contextlib.aclosing(drawn_chunks):
                async for drawn in drawn_chunks:
                    await asyncio.to_thread(_add_all, archive, drawn)
                    done += len(drawn)
                    await report(done)
        except BaseException:
            await asyncio.to_thread(archive.discard)
            raise
        await asyncio.to_thread(archive.close)
        stored = await attempt.keep_file("archive", "qr-codes.zip", path, "application/zip")
    return [stored], Counts(archive.manifest, done)


class _SheetStopped(Exception):
    """The job stopped (a cancel, a failure): the sheet writer's thread gives up."""


class _SheetFeed:
    """Hands drawn chunks to the sheet writer's thread, which writes the manifest rows and
    yields the codes that ``write_qr_sheet`` lays out; at most a few chunks wait between."""

    def __init__(self, manifest: ManifestWriter, per_page: int, size: int) -> None:
        self.manifest = manifest
        self.per_page = per_page
        self._chunks: queue.Queue[list[DrawnItem] | None] = queue.Queue(maxsize=size)
        self._stopped = threading.Event()

    def codes(self) -> Iterator[SheetCode]:
        placed = 0
        while True:
            drawn = self._chunks.get()
            if self._stopped.is_set():
                raise _SheetStopped
            if drawn is None:
                return
            for one in drawn:
                row = manifest_row(one)
                if one.modules is not None:
                    page = placed // self.per_page + 1
                    row = dataclasses.replace(row, file=f"{SHEET_NAME}#page={page}")
                    placed += 1
                self.manifest.write(row)
                if one.modules is not None:
                    yield SheetCode(one.modules, one.item.label)

    async def put(self, drawn: list[DrawnItem] | None, writer: asyncio.Future[int]) -> None:
        pause = 0.001
        while True:
            if writer.done():
                await writer  # its error, if it failed; else it ended early: a bug
                raise RuntimeError("the sheet writer ended before its last code")
            try:
                self._chunks.put_nowait(drawn)
                return
            except queue.Full:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(queue.Full):
            self._chunks.put_nowait(None)  # wakes a writer waiting on an empty queue


async def write_pdf(
    attempt: JobAttempt,
    items: Iterator[BatchItem],
    total: int,
    options: DrawOptions,
    layout: SheetOptions,
) -> tuple[list[ResultFile], Counts]:
    """The items laid out on a PDF sheet (tasks/qr_sheet.py, in a thread, fed in order as
    chunks are drawn), and manifest.csv naming each item's page: result files "sheet" and
    "manifest"."""
    done = 0
    report = _Reporter(attempt, total)
    await report(0)
    async with (
        attempt.scratch_file(".pdf") as sheet_path,
        attempt.scratch_file(".csv") as manifest_path,
    ):
        with manifest_path.open("w", encoding="utf-8", newline="") as manifest_file:
            window = CHUNKS_PER_CORE * attempt.backend.settings.cpu_workers + 1
            feed = _SheetFeed(ManifestWriter(manifest_file), layout.per_page, window)
            writer = asyncio.ensure_future(
                asyncio.to_thread(write_qr_sheet, feed.codes(), layout, sheet_path)
            )
            try:
                drawn_chunks = drawn_in_order(attempt, items, options)
                async with contextlib.aclosing(drawn_chunks):
                    async for drawn in drawn_chunks:
                        await feed.put(drawn, writer)
                        done += len(drawn)
                        await report(done)
                await feed.put(None, writer)
                await writer
            except BaseException:
                feed.stop()
                await asyncio.gather(writer, return_exceptions=True)
                raise
        sheet = await attempt.keep_file("sheet", SHEET_NAME, sheet_path, "application/pdf")
        listing = await attempt.keep_file("manifest", "manifest.csv", manifest_path, "text/csv")
    return [sheet, listing], Counts(feed.manifest, done)
