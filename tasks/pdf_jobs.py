"""What PDF job kinds share on the worker side: this server's limits, and a CPU step that
reports its progress per page or file and fails the job with the PDF failure's own type
(invalid_pdf, encrypted_pdf, ...)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from brokers.lifecycle import JobFailure
from service.settings import Settings
from tasks.deps import JobAttempt
from tasks.pdf_guard import PdfInputError, PdfLimits
from tasks.step_progress import ProgressFile, read_progress

T = TypeVar("T")

POLL_SECONDS = 0.25
"""How often the job reads its step's progress and reports it (its checkpoint)."""


class PdfJobFailure(JobFailure):
    """An input PDF refused by tasks/pdf_guard.py; running again cannot help."""

    retryable = False

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def pdf_limits_of(settings: Settings) -> PdfLimits:
    return PdfLimits(
        max_pages=settings.pdf_max_pages,
        max_stream_bytes=settings.pdf_max_stream_bytes,
        max_merge_bytes=settings.pdf_max_merge_bytes,
    )


async def run_pdf_step(attempt: JobAttempt, unit: str, fn: Callable[..., T], *args: Any) -> T:
    """``attempt.run_cpu(fn, *args, progress)``: ``fn`` takes a ``progress(done, total)``
    last, which this reports as ``<done> of <total> <unit>`` while the step runs. A cancel
    seen at that checkpoint stops the step (its process is killed); a PdfInputError it
    raises fails the job as its type."""
    progress_path = await asyncio.to_thread(_progress_path)
    step = asyncio.ensure_future(attempt.run_cpu(fn, *args, ProgressFile(progress_path)))
    try:
        last: tuple[int, int] | None = None
        while True:
            finished, _ = await asyncio.wait({step}, timeout=POLL_SECONDS)
            current = await asyncio.to_thread(read_progress, progress_path)
            if current is not None and current != last:
                last = current
                done, total = current
                await attempt.report(done, total, f"{done} of {total} {unit}")
            if finished:
                break
        return step.result()
    except PdfInputError as error:
        raise PdfJobFailure(error.error_type, str(error)) from None
    finally:
        if not step.done():
            # Cut short (a cancel seen at the checkpoint, or this task cancelled): cancelling
            # run_cpu kills the step's process.
            step.cancel()
            step.add_done_callback(_retrieve)
        await asyncio.to_thread(progress_path.unlink, missing_ok=True)


def _progress_path() -> Path:
    descriptor, name = tempfile.mkstemp(prefix="offload-progress-")
    os.close(descriptor)
    return Path(name)


def _retrieve(step: asyncio.Future[Any]) -> None:
    if not step.cancelled():
        step.exception()
