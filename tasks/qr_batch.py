"""The bulk QR kind: many codes from inline items or an uploaded CSV, into a ZIP or a PDF.

The task opens the inputs and hands the items to tasks/qr_batch_pipeline.py, which draws
them in chunks on every core and writes them as they come. An item that cannot be drawn is
listed as failed in the manifest; the job fails only when the batch itself is unusable.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from brokers import broker
from brokers.backoff import Backoff
from brokers.lifecycle import JobFailure
from brokers.uploads import Upload
from schemas.jobs import JobResult, Lane
from schemas.qr_batch import MAX_BODY_BYTES, BatchOutput, QrBatchOptions
from schemas.qr_sheet import SheetOptions
from service.settings import Settings
from tasks.deps import AttemptDep, JobAttempt
from tasks.kinds import FileInput, declare_kind
from tasks.qr_batch_draw import DrawOptions
from tasks.qr_batch_items import (
    BatchInputError,
    BatchItem,
    check_csv_header,
    count_csv_rows,
    csv_items,
    inline_items,
)
from tasks.qr_batch_logo import LogoError, check_logo_header, prepare_logo
from tasks.qr_batch_pipeline import InvalidBatchInput, write_pdf, write_zip

QR_BATCH_TIMEOUT_SECONDS = 3600.0
"""100,000 codes take about a minute on two cores; an hour means something is wrong."""

CSV_TYPES = frozenset({"text/csv", "text/plain"})
"""Sniffed types of a CSV upload: text, called CSV by its type or name, or plain text."""
LOGO_TYPES = frozenset({"image/png", "image/jpeg"})


class InvalidLogo(JobFailure):
    """The uploaded logo is not a PNG or JPEG this worker will decode."""

    error_type = "invalid_image"
    retryable = False


async def _items(options: QrBatchOptions, attempt: JobAttempt) -> tuple[Iterator[BatchItem], int]:
    """The batch's items and how many there are (a CSV is read through once to count)."""
    if options.csv_file_id is None:
        return inline_items(options), len(options.items or ())
    upload = await attempt.input(options.csv_file_id)
    try:
        total = await asyncio.to_thread(count_csv_rows, upload.path, options)
    except BatchInputError as error:
        raise InvalidBatchInput(str(error)) from None
    return csv_items(upload.path, options), total


async def _logo(options: QrBatchOptions, attempt: JobAttempt) -> bytes | None:
    if options.logo_file_id is None:
        return None
    upload = await attempt.input(options.logo_file_id)
    try:
        return await attempt.run_cpu(prepare_logo, upload.path)
    except LogoError as error:
        raise InvalidLogo(str(error)) from None


@broker.task(task_name="offload.qr.batch")
async def run_qr_batch(options: QrBatchOptions, attempt: AttemptDep) -> dict[str, Any]:
    settings = attempt.backend.settings
    items, total = await _items(options, attempt)
    draw = DrawOptions(
        format=options.format,
        scale=options.scale,
        border=options.border,
        max_png_pixels=settings.qr_max_pixels,
        logo_png=await _logo(options, attempt),
    )
    try:
        if options.output is BatchOutput.pdf:
            layout = options.sheet or SheetOptions()
            draw = dataclasses.replace(draw, sheet_max_modules=layout.max_symbol_modules)
            files, counts = await write_pdf(attempt, items, total, draw, layout)
            shape = {"output": "pdf"}
        else:
            files, counts = await write_zip(attempt, items, total, draw)
            shape = {"output": "zip", "format": options.format.value}
    finally:
        await close_items(items)
    result = JobResult(data={**counts.as_data(), **shape}, files=files)
    return result.model_dump(mode="json")


async def close_items(items: object, tries: int = 500) -> None:
    """Close a CSV reader (its open file). A cancel can land while a worker thread is inside
    the reader's ``next`` (reading one chunk): closing then raises "generator already
    executing", so it is asked again until that read has returned."""
    close = getattr(items, "close", None)
    if close is None:
        return
    for _ in range(tries - 1):
        try:
            await asyncio.to_thread(close)
        except ValueError:
            await asyncio.sleep(0.01)
        else:
            return
    await asyncio.to_thread(close)


def check_qr_batch(options: QrBatchOptions, settings: Settings) -> None:
    """At submit: exactly one source of items."""
    if (options.items is None) == (options.csv_file_id is None):
        field = "items" if options.items is None else "csv_file_id"
        raise _invalid(field, "give exactly one of items and csv_file_id")
    if options.output is BatchOutput.pdf and options.logo_file_id is not None:
        raise _invalid("logo_file_id", "a logo is drawn on ZIP images only, not on a PDF sheet")


def qr_batch_inputs(options: QrBatchOptions) -> Iterable[FileInput]:
    if options.csv_file_id is not None:
        yield FileInput("csv_file_id", options.csv_file_id, CSV_TYPES)
    if options.logo_file_id is not None:
        yield FileInput("logo_file_id", options.logo_file_id, LOGO_TYPES)


def check_qr_batch_files(
    options: QrBatchOptions, settings: Settings, uploads: dict[str, Upload]
) -> None:
    """At submit, a cheap look: the CSV's header line, the logo's image header."""
    if options.csv_file_id is not None:
        try:
            check_csv_header(uploads[options.csv_file_id].path)
        except BatchInputError as error:
            raise _invalid("csv_file_id", str(error)) from None
    if options.logo_file_id is not None:
        try:
            check_logo_header(uploads[options.logo_file_id].path)
        except LogoError as error:
            raise _invalid("logo_file_id", str(error)) from None


def _invalid(field: str, message: str) -> ValidationError:
    error = PydanticCustomError("qr_batch", message)
    return ValidationError.from_exception_data(
        QrBatchOptions.__name__, [InitErrorDetails(type=error, loc=(field,), input=None)]
    )


QR_BATCH = declare_kind(
    name="qr_batch",
    request=QrBatchOptions,
    task=run_qr_batch,
    summary="Queue up to 10,000 QR codes (100,000 from a CSV) for a ZIP or a PDF sheet.",
    lane=Lane.BULK,
    max_attempts=2,
    timeout_s=QR_BATCH_TIMEOUT_SECONDS,
    backoff=Backoff(base_s=5, cap_s=300),
    check=check_qr_batch,
    inputs=qr_batch_inputs,
    check_files=check_qr_batch_files,
    path="/v1/jobs/qr-batch",
    max_body_bytes=MAX_BODY_BYTES,
)
