"""What PDF job kinds share on the worker side: this server's limits, and a CPU step whose
PDF failures end the job with their own type (invalid_pdf, encrypted_pdf, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from brokers.lifecycle import JobFailure
from service.settings import Settings
from tasks.deps import JobAttempt
from tasks.pdf_guard import PdfInputError, PdfLimits

P = ParamSpec("P")
T = TypeVar("T")


class PdfJobFailure(JobFailure):
    """An input PDF refused by tasks/pdf_guard.py; running again cannot help."""

    retryable = False

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def pdf_limits_of(settings: Settings) -> PdfLimits:
    return PdfLimits(
        max_pages=settings.pdf_max_pages, max_stream_bytes=settings.pdf_max_stream_bytes
    )


async def run_pdf_step(
    attempt: JobAttempt, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """``attempt.run_cpu(fn, *args)``; a PdfInputError it raises fails the job as its type."""
    try:
        return await attempt.run_cpu(fn, *args, **kwargs)
    except PdfInputError as error:
        raise PdfJobFailure(error.error_type, str(error)) from None
