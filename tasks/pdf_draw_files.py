"""The watermark and QR stamp as CPU steps on files: open the upload through the PDF guard,
draw on the chosen pages (tasks/pdf_draw.py), write the result.

Pure (no broker): each runs in the worker's process pool (tasks/pdf_jobs.run_pdf_step),
calling ``progress(done, total)`` per page. A bad input, or a code that does not fit a
page, raises a PdfInputError whose type the job reports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError
from pypdf import PdfWriter

from schemas.pdf_draw import PdfStampQrRequest, PdfWatermarkRequest
from schemas.pdf_ranges import PageRange, out_of_range, selected_pages
from tasks.pdf_draw import Progress, check_stamp_qr, stamp_qr, watermark
from tasks.pdf_guard import PdfInputError, PdfLimits, open_pdf, pdf_limits, save_pdf
from tasks.pdf_ops import Source


class PagesOutOfRange(PdfInputError):
    """Pages past the file's end (the submit check refuses them first, with a 422)."""

    error_type = "pages_out_of_range"


class QrDataTooLong(PdfInputError):
    """Data no QR code holds at its level (the submit check refuses it first)."""

    error_type = "qr_capacity"


class StampTooSmall(PdfInputError):
    """A code whose modules would be too small to scan (the submit check refuses it first)."""

    error_type = "qr_too_small"


def watermark_file(
    source: Source,
    request: PdfWatermarkRequest,
    out: Path,
    limits: PdfLimits,
    progress: Progress,
) -> int:
    """Watermark ``request.pages`` of ``source`` into ``out``; returns the pages drawn on."""
    return _draw(source, request.page_ranges(), out, limits, progress, watermark, request)


def stamp_qr_file(
    source: Source,
    request: PdfStampQrRequest,
    out: Path,
    limits: PdfLimits,
    progress: Progress,
) -> int:
    """Stamp the code on ``request.pages`` of ``source`` into ``out``; returns the count.
    Checks again what the submit check did: a job may have been queued without it."""
    try:
        check_stamp_qr(request)
    except ValidationError as refused:
        [fault] = refused.errors()
        failure = QrDataTooLong if fault["loc"] == ("data",) else StampTooSmall
        raise failure(f"{fault['loc'][0]}: {fault['msg']}") from None
    return _draw(source, request.page_ranges(), out, limits, progress, stamp_qr, request)


def _draw(
    source: Source,
    ranges: tuple[PageRange, ...] | None,
    out: Path,
    limits: PdfLimits,
    progress: Progress,
    draw: Callable[..., int],
    request: object,
) -> int:
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        page_count = len(reader.pages)
        if ranges is not None and (fault := out_of_range(ranges, page_count)) is not None:
            raise PagesOutOfRange(f"pages: {fault}")
        writer = PdfWriter(clone_from=reader)
        drawn = draw(writer, request, selected_pages(ranges, page_count), progress)
    save_pdf(writer, out, limits=limits, label=f"the result of {source.name}")
    return drawn
